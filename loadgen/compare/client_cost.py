#!/usr/bin/env python3
"""What loadgen costs per message, against lt_equiv and against itself.

Runs the client cases below against the project's C floor server
(bench/floor) pinned to CPU 1, with every client pinned to CPU 0, and
writes a markdown report of medians (the command, the commit and the
machine included):

- closed-100x20:  100 connections x 20 B, closed loop, one message in
  flight: lt_equiv (uWebSockets' load_test traffic, nothing else),
  loadgen --io uring and loadgen --io epoll, interleaved in each repeat
  (the order rotates). The figure is the client's CPU per message: its
  utime + stime over the measured window / the echoes in it (lt_equiv and
  loadgen both measure their own, over their own measured window).
- closed-200x16k: 200 x 16 KiB, closed loop, against the floor built with
  32 KiB receive buffers (floor-32k): the server's share of its core
  (from /proc over the measured window) beside loadgen's.
- open-200x128:   200 x 128 Hz x 20 B, open loop.
- open-15000x0.2: 15,000 x 0.2 Hz x 20 B, open loop (connects at 5,000/s).
- self-10x100:    10 x 100 Hz x 20 B, open loop: light load, where the
  corrected p50, p99 and p99.9 loadgen reports are its own latency floor
  (the floor server adds almost nothing).

Every client run has its warmup, then DURATION s measured. Each case
starts one server and keeps it for all of its runs.

Usage (from the repository root, under the machine's measurement lock):
  loadgen/compare/client_cost.py [--floor DIR] [--lt-equiv PATH]
      [--loadgen PATH] [--also LABEL=PATH ...] [--repeats 5] [--duration 5]
      [--cases closed-100x20,...] [--out results/loadgen/client-cost.md]
Builds nothing: build loadgen (cargo build --release -p loadgen), lt_equiv
(cc -O2 -o target/lt_equiv loadgen/compare/lt_equiv.c) and the floor
servers (make -C bench/floor OUT=target/floor) first. `--also` adds
another loadgen build (for a before/after), run on io_uring beside the
others in the closed cases. Every run is bounded (its duration plus 60 s).
"""

import argparse
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLK_TCK = os.sysconf("SC_CLK_TCK")
WARMUP_S = 1.0
SERVER_CPU, CLIENT_CPU = "1", "0"

CASES = {
    "closed-100x20": {"server": "floor", "clients": ["lt_equiv", "uring", "epoll"],
                      "args": ["-c", "100", "-s", "20"], "also": True},
    "closed-200x16k": {"server": "floor-32k", "clients": ["uring", "epoll"],
                       "args": ["-c", "200", "-s", "16KiB"], "also": True},
    "open-200x128": {"server": "floor", "clients": ["uring", "epoll"],
                     "args": ["-c", "200", "-s", "20", "--rate", "128", "--mode", "open"]},
    "open-15000x0.2": {"server": "floor", "clients": ["uring", "epoll"],
                       "args": ["-c", "15000", "-s", "20", "--rate", "0.2", "--mode", "open",
                                "--connect-rate", "5000"],
                       # The ramp takes 3 s; the first ticks spread over the next 5 s.
                       "warmup": 8.0},
    "self-10x100": {"server": "floor", "clients": ["uring", "epoll"],
                    "args": ["-c", "10", "-s", "20", "--rate", "100", "--mode", "open"]},
}


def proc_cpu_s(pid):
    """utime + stime of a process, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def raise_nofile():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_server(path):
    """The floor server on CPU 1, on a free port; returns (process, port)."""
    server = subprocess.Popen(["taskset", "-c", SERVER_CPU, path, "uring", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              preexec_fn=raise_nofile)
    line = server.stderr.readline()
    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not m:
        server.kill()
        sys.exit(f"{path} did not start: {line.strip()} {server.stderr.read().strip()}")
    return server, int(m.group(1))


def run_client(kind, case, args, server, port, tmp):
    """One client run; returns its figures."""
    warmup = case.get("warmup", WARMUP_S)
    out = os.path.join(tmp, "report.json")
    if kind == "lt_equiv":
        conns = case["args"][case["args"].index("-c") + 1]
        cmd = ["taskset", "-c", CLIENT_CPU, args.lt_equiv, conns, "127.0.0.1", str(port),
               str(int(args.duration)), "/ws"]
        warmup = 1.0  # lt_equiv measures after its first second
    else:
        io, _, label = kind.partition("@")
        binary = args.loadgen if not label else dict(args.also)[label]
        cmd = ["taskset", "-c", CLIENT_CPU, binary, f"ws://127.0.0.1:{port}/ws", *case["args"],
               "--io", io, "-w", str(warmup), "-d", str(args.duration), "-q", "--json", out]
    started = time.time()
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=raise_nofile)
    # The measured window opens about `warmup` after the start.
    time.sleep(max(0.0, started + warmup + 0.05 - time.time()))
    s0, t0 = proc_cpu_s(server.pid), time.time()
    time.sleep(max(0.0, args.duration - 0.1))
    s1, t1 = proc_cpu_s(server.pid), time.time()
    stdout, stderr = client.communicate(timeout=args.duration + warmup + 60)
    server_util = (s1 - s0) / (t1 - t0)
    if kind == "lt_equiv":
        last = stdout.strip().splitlines()[-1].split()
        # "average: N msg/s cpu/msg X us util U"
        return {"rate": float(last[1]), "cpu_us": float(last[4]),
                "client_util": float(last[7]), "server_util": server_util, "errors": 0}
    if client.returncode != 0:
        print(f"    loadgen exit {client.returncode}: {stderr.strip()[-300:]}", file=sys.stderr)
    with open(out) as f:
        r = json.load(f)
    c = r["client"]
    lat = r["latency_us"]["corrected"]
    return {"rate": r["msgs_per_sec"], "cpu_us": c["cpu_per_msg_us"],
            "client_util": c["busiest_thread_util"], "server_util": server_util,
            "warning": c.get("warning"),
            "errors": r["errors"]["total"] + r["connections"]["failed"],
            "p50": lat["p50"], "p99": lat["p99"], "p99_9": lat["p99_9"]}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def label(kind):
    if kind == "lt_equiv":
        return "lt_equiv"
    io, _, build = kind.partition("@")
    return f"loadgen {io}" + (f" ({build})" if build else "")


def git(*a):
    return subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True).stdout.strip()


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, kernel `{platform.release()}`"


def report(args, results, started):
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    lines = [
        "# loadgen's own cost per message, and its latency floor", "",
        f"- command: `{shlex.join(['loadgen/compare/client_cost.py', *sys.argv[1:]])}` "
        "(under the machine's measurement lock)",
        f"- commit: `{git('rev-parse', '--short', 'HEAD')}`{dirty}",
        f"- machine: {machine()}; load average at start {started['loadavg']}",
        f"- date: {started['date']} UTC",
        f"- server: the project's C floor (`bench/floor`, io_uring; `floor-32k` for 16 KiB) "
        f"pinned to CPU {SERVER_CPU}; every client pinned to CPU {CLIENT_CPU}",
        f"- {args.repeats} repeats per case, the clients interleaved within each repeat (the "
        f"order rotates); each run {WARMUP_S:g} s warmup (8 s at 15,000 connections) then "
        f"{args.duration:g} s measured; figures are medians",
        "- client CPU per message: the client's own utime + stime over its measured window "
        "divided by the echoes in it (loadgen: the `client.cpu_per_msg_us` of its JSON report, "
        "every thread; lt_equiv: `getrusage` over its window); client %: loadgen's busiest "
        "thread (lt_equiv has one); server %: the floor's utime + stime from /proc over the "
        "same window", "",
        "| case | client | msg/s | client CPU per message | client % of a core | server % of a core | runs |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        for kind, rs in runs.items():
            lines.append(
                f"| {name} | {label(kind)} | {med([r['rate'] for r in rs]):,.0f} | "
                f"{med([r['cpu_us'] for r in rs]):.2f} us | "
                f"{100 * med([r['client_util'] for r in rs]):.0f}% | "
                f"{100 * med([r['server_util'] for r in rs]):.0f}% | {len(rs)} |")
    lines += ["", "Each run, client CPU per message (us):", ""]
    for name, runs in results.items():
        for kind, rs in runs.items():
            lines.append(f"- {name} / {label(kind)}: " + ", ".join(f"{r['cpu_us']:.2f}" for r in rs))
    ratios = []
    for name, runs in results.items():
        if "lt_equiv" not in runs:
            continue
        for kind in runs:
            if kind == "lt_equiv":
                continue
            each = [a["cpu_us"] / b["cpu_us"] for a, b in zip(runs[kind], runs["lt_equiv"])]
            ratios.append(f"- {name}: {label(kind)} / lt_equiv, CPU per message, same repeat: "
                          f"median **{med(each):.3f}x** (each: {', '.join(f'{x:.3f}' for x in each)})")
    for name, runs in results.items():
        if not name.startswith("open-"):
            continue
        for kind, rs in runs.items():
            closed = results.get("closed-100x20", {}).get(kind)
            if closed:
                ratios.append(
                    f"- {name}: {label(kind)} CPU per message / its closed-loop 100 x 20 B "
                    f"figure: **{med([r['cpu_us'] for r in rs]) / med([r['cpu_us'] for r in closed]):.2f}x**")
    if ratios:
        lines += ["", "## Ratios", ""] + ratios
    lat = [(n, k, rs) for n, runs in results.items() if "--rate" in CASES[n]["args"]
           for k, rs in runs.items()]
    if lat:
        lines += ["", "## Corrected latency (coordinated omission corrected), medians", "",
                  "| case | client | p50 | p99 | p99.9 | runs |", "|---|---|---:|---:|---:|---:|"]
        for n, k, rs in lat:
            lines.append(f"| {n} | {label(k)} | {med([r['p50'] for r in rs]):.1f} us | "
                         f"{med([r['p99'] for r in rs]):.1f} us | "
                         f"{med([r['p99_9'] for r in rs]):.1f} us | {len(rs)} |")
    warned = [(n, k, i + 1, r["warning"]) for n, runs in results.items() for k, rs in runs.items()
              for i, r in enumerate(rs) if r.get("warning")]
    if warned:
        lines += ["", "## Runs where loadgen warned that it was the limit", ""]
        lines += [f"- {n} / {label(k)} / run {i}: {w}" for n, k, i, w in warned]
    errors = [(n, k, i + 1, r["errors"]) for n, runs in results.items() for k, rs in runs.items()
              for i, r in enumerate(rs) if r.get("errors")]
    if errors:
        lines += ["", "## Runs with errors", ""]
        lines += [f"- {n} / {label(k)} / run {i}: {e} errors" for n, k, i, e in errors]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--floor", default=os.path.join(ROOT, "target", "floor"),
                   help="the directory with the floor and floor-32k builds")
    p.add_argument("--lt-equiv", default=os.path.join(ROOT, "target", "lt_equiv"))
    p.add_argument("--loadgen", default=os.path.join(ROOT, "target", "release", "loadgen"))
    p.add_argument("--also", action="append", default=[], metavar="LABEL=PATH",
                   help="another loadgen build, run on io_uring in the closed cases")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--out", help="write the markdown report here (default: stdout only)")
    args = p.parse_args()
    args.also = [tuple(a.split("=", 1)) for a in args.also]
    for name in args.cases.split(","):
        if name not in CASES:
            p.error(f"unknown case {name!r}; known: {', '.join(CASES)}")
    started = {"date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
               "loadavg": open("/proc/loadavg").read().split()[0]}
    results = {}
    for name in args.cases.split(","):
        case = CASES[name]
        clients = case["clients"] + ([f"uring@{lb}" for lb, _ in args.also] if case.get("also") else [])
        server, port = start_server(os.path.join(args.floor, case["server"]))
        try:
            runs = {k: [] for k in clients}
            with tempfile.TemporaryDirectory() as tmp:
                for rep in range(args.repeats):
                    order = clients[rep % len(clients):] + clients[:rep % len(clients)]
                    for kind in order:
                        r = run_client(kind, case, args, server, port, tmp)
                        runs[kind].append(r)
                        print(f"  {name} repeat {rep + 1} {label(kind):22} {r['rate']:>9.0f} msg/s "
                              f"client {r['cpu_us']:.2f} us/msg at {100 * r['client_util']:.0f}% "
                              f"server {100 * r['server_util']:.0f}%"
                              + (f" errors {r['errors']}" if r["errors"] else ""), flush=True)
            results[name] = runs
        finally:
            server.terminate()
            server.wait()
    md = report(args, results, started)
    print(md)
    with open(os.path.join(ROOT, "target", "client-cost.json"), "w") as f:
        json.dump(results, f)
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)


if __name__ == "__main__":
    main()
