#!/usr/bin/env python3
"""Side-by-side io_uring vs epoll measurement of the ringecho engine.

Runs the release `ringecho` (pinned to CPU 1, one worker) against the release
`loadgen` (pinned to CPU 0) on 127.0.0.1 only, alternating the backends in
one run and repeating each point, and writes a Markdown table with medians
and ratios to results/engine-io.md. Measures, per backend:

- closed-loop msg/s at 100 x 20 B and 200 x 16 KiB;
- server CPU time per message (utime+stime from /proc/PID/stat divided by
  the echoed messages), in the closed loop and at a fixed open-loop rate
  that leaves both cores unsaturated (100 connections x 500 Hz x 20 B);
- server CPU time per message with both backends running *at the same
  time* (each at 100 connections x 250 Hz x 20 B, each with its own loadgen):
  this VM's host noise drifts by 10-20% between runs a few seconds apart,
  which swamps a sequential comparison of a few percent, but hits servers
  that run side by side alike. Per-run ratios, median and range. Servers
  that share a core also gather more messages per wake-up than one alone,
  which favours io_uring: read it next to the one-at-a-time row.
  `--baseline LABEL=PATH` adds another ringecho binary (an older commit, say)
  to that scenario, run with `--io uring`;
- server RSS per idle WebSocket with 9,000 idle connections.

Usage: scripts/measure-engine.py [--repeats 3] [--duration 5] [--ring-sizes 128,1024,4096]
                                 [--baseline LABEL=PATH] [--out results/engine-io.md]
Needs release builds: cargo build --release -p ringecho -p loadgen
Hand-written notes after the NOTES_MARKER line of the output file are kept.
Every run is bounded: loadgen stops by itself after warmup + duration.
"""

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, "target", "release", "ringecho")
LOADGEN = os.environ.get("LOADGEN", os.path.join(ROOT, "target", "release", "loadgen"))
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


EXTRA_SERVER_ARGS = []
NOTES_MARKER = "<!-- hand-written notes below: kept when measure-engine.py rewrites the tables -->"


def start_server(backend, extra=(), binary=SERVER):
    env = dict(os.environ, RUST_LOG="info")
    proc = subprocess.Popen(
        ["taskset", "-c", "1", binary, "--listen", "127.0.0.1:0", "--threads", "1",
         "--io", backend, "--keep-alive-interval", "0", *EXTRA_SERVER_ARGS, *extra],
        stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 10
    while time.time() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"listening on http://([0-9.]+:\d+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    sys.exit(f"server ({backend}) did not start")


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def loadgen_command(addr, args, duration, warmup, json_out):
    return ["taskset", "-c", "0", LOADGEN, f"ws://{addr}/ws", "--json", json_out,
            "--duration", f"{duration}s", "--warmup", f"{warmup}s", *args]


def loadgen(addr, args, duration, warmup):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(loadgen_command(addr, args, duration, warmup, out.name), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=duration + warmup + 120)
        with open(out.name) as f:
            return json.load(f)


def messages(report):
    return report["messages"]


def throughput(backend, conns, size, duration):
    proc, addr = start_server(backend)
    try:
        # The warmup runs before we read the CPU counter; the measured window
        # is then a second, separate run of `duration` seconds.
        loadgen(addr, ["-c", str(conns), "-s", str(size), "--mode", "closed"], 1, 0.5)
        cpu0 = cpu_seconds(proc.pid)
        report = loadgen(addr, ["-c", str(conns), "-s", str(size), "--mode", "closed"], duration, 0)
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        stop_server(proc)
    rate = report["msgs_per_sec"]
    return rate, cpu * 1e6 / max(messages(report), 1)


def fixed_rate_cpu(backend, duration):
    proc, addr = start_server(backend)
    try:
        args = ["-c", "100", "-s", "20", "--mode", "open", "--rate", "500"]
        loadgen(addr, args, 1, 0.5)
        cpu0 = cpu_seconds(proc.pid)
        report = loadgen(addr, args, duration, 0)
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        stop_server(proc)
    return cpu * 1e6 / max(messages(report), 1), report["latency_us"]["corrected"]["p99"]


def concurrent_fixed_rate_cpu(servers, duration):
    """One run of every (label, backend, binary) server at once on CPU 1,
    each loaded by its own open-loop loadgen on CPU 0 at 100 x 250 Hz x 20 B.
    Returns {label: server CPU-us per message}."""
    args = ["-c", "100", "-s", "20", "--mode", "open", "--rate", "250"]
    running = []
    try:
        for label, backend, binary in servers:
            proc, addr = start_server(backend, binary=binary)
            running.append((label, proc, addr))

        def load_all(seconds, warmup):
            outs = {label: tempfile.NamedTemporaryFile(suffix=".json") for label, _, _ in running}
            procs = [subprocess.Popen(loadgen_command(addr, args, seconds, warmup, outs[label].name),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for label, _, addr in running]
            for p in procs:
                if p.wait(timeout=seconds + warmup + 120) != 0:
                    sys.exit("loadgen failed in the concurrent fixed-rate scenario")
            reports = {}
            for label, out in outs.items():
                with open(out.name) as f:
                    reports[label] = json.load(f)
                out.close()
            return reports

        load_all(1, 0.5)
        cpu0 = {label: cpu_seconds(proc.pid) for label, proc, _ in running}
        reports = load_all(duration, 0)
        return {label: (cpu_seconds(proc.pid) - cpu0[label]) * 1e6 / max(messages(reports[label]), 1)
                for label, proc, _ in running}
    finally:
        for _, proc, _ in running:
            stop_server(proc)


def idle_rss(backend, conns):
    proc, addr = start_server(backend)
    try:
        time.sleep(0.5)
        before = rss_bytes(proc.pid)
        # Open `conns` connections that send nothing for the whole run: a
        # rate so low that no tick falls inside the window.
        lg = subprocess.Popen(
            ["taskset", "-c", "0", LOADGEN, f"ws://{addr}/ws", "-c", str(conns),
             "--connect-rate", "3000", "--mode", "open", "--rate", "0.001",
             "--duration", "12s", "--warmup", "0s"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak_open, after = 0, before
        deadline = time.time() + 14
        while time.time() < deadline and lg.poll() is None:
            time.sleep(0.5)
            health = subprocess.run(["curl", "-s", f"http://{addr}/healthz"], capture_output=True, text=True).stdout
            try:
                open_now = sum(w["connections"] for w in json.loads(health)["workers"])
            except (ValueError, KeyError):
                continue
            if open_now >= peak_open:
                peak_open, after = open_now, rss_bytes(proc.pid)
        lg.wait(timeout=30)
    finally:
        stop_server(proc)
    return (after - before) / max(peak_open, 1), peak_open


def median_of(runs):
    return statistics.median(runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--idle-connections", type=int, default=9000)
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "engine-io.md"))
    parser.add_argument("--ring-sizes", default="",
                        help="also sweep --receive-buffers for uring, e.g. 128,1024,4096")
    parser.add_argument("--baseline", action="append", default=[], metavar="LABEL=PATH",
                        help="another ringecho binary for the concurrent fixed-rate scenario (--io uring)")
    args = parser.parse_args()
    baselines = []
    for spec in args.baseline:
        label, _, path = spec.partition("=")
        if not label or not os.path.exists(path):
            sys.exit(f"--baseline wants LABEL=PATH to an existing binary, got {spec!r}")
        baselines.append((label, "uring", path))
    for binary in (SERVER, LOADGEN):
        if not os.path.exists(binary):
            sys.exit(f"missing {binary}: run cargo build --release --workspace")
    backends = ["uring", "epoll"]
    rows = {}
    for conns, size in [(100, 20), (200, 16384)]:
        runs = {b: [] for b in backends}
        for i in range(args.repeats):
            for b in backends:
                runs[b].append(throughput(b, conns, size, args.duration))
                print(f"closed {conns}x{size} {b} run {i + 1}: {runs[b][-1][0]:.0f} msg/s, "
                      f"{runs[b][-1][1]:.2f} CPU-us/msg", flush=True)
        rows[f"{conns} x {size} B closed"] = {
            b: (median_of([r[0] for r in runs[b]]), median_of([r[1] for r in runs[b]])) for b in backends}
    fixed = {b: [] for b in backends}
    for i in range(args.repeats):
        for b in backends:
            fixed[b].append(fixed_rate_cpu(b, args.duration))
            print(f"fixed 50k msg/s {b} run {i + 1}: {fixed[b][-1][0]:.2f} CPU-us/msg", flush=True)
    together = [("uring", "uring", SERVER), ("epoll", "epoll", SERVER), *baselines]
    concurrent = {label: [] for label, _, _ in together}
    for i in range(args.repeats):
        run = concurrent_fixed_rate_cpu(together, args.duration)
        for label, value in run.items():
            concurrent[label].append(value)
        print(f"fixed 25k msg/s each, at once, run {i + 1}: "
              + ", ".join(f"{label} {value:.2f}" for label, value in run.items()) + " CPU-us/msg", flush=True)
    idle = {b: idle_rss(b, args.idle_connections) for b in backends}
    ring_rows = []
    for conns, size in ([(200, 16384), (100, 20)] if args.ring_sizes else []):
        runs = {}
        for i in range(args.repeats):
            for count in ["epoll"] + args.ring_sizes.split(","):
                EXTRA_SERVER_ARGS[:] = [] if count == "epoll" else ["--receive-buffers", count]
                runs.setdefault(count, []).append(throughput("epoll" if count == "epoll" else "uring",
                                                             conns, size, args.duration))
                print(f"ring {count} {conns}x{size} run {i + 1}: {runs[count][-1][1]:.2f} CPU-us/msg", flush=True)
        EXTRA_SERVER_ARGS[:] = []
        ring_rows.append((f"{conns} x {size} B closed", {
            k: (median_of([r[0] for r in v]), median_of([r[1] for r in v])) for k, v in runs.items()}))
    for b in backends:
        print(f"idle {b}: {idle[b][0]:.0f} B/conn over {idle[b][1]} connections", flush=True)

    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    lines = [
        "# ringecho engine: io_uring vs epoll",
        "",
        f"- command: `scripts/measure-engine.py --repeats {args.repeats} --duration {args.duration:g}"
        f"{' --ring-sizes ' + args.ring_sizes if args.ring_sizes else ''}"
        + "".join(f" --baseline {label}={path}" for label, _, path in baselines) + "`",
        f"- commit: `{commit}{' (+uncommitted changes)' if dirty else ''}`",
        f"- machine: {os.cpu_count()} cores, kernel {platform.release()}; server on CPU 1 (1 worker), "
        "loadgen on CPU 0 (1 thread); loopback",
        f"- every figure is the median of {args.repeats} runs; backends alternate within each repeat",
        "",
        "| scenario | uring msg/s | epoll msg/s | uring/epoll | uring CPU-us/msg | epoll CPU-us/msg | uring/epoll CPU |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['uring'][0]:,.0f} | {r['epoll'][0]:,.0f} | {r['uring'][0] / r['epoll'][0]:.2f}x "
                     f"| {r['uring'][1]:.2f} | {r['epoll'][1]:.2f} | {r['uring'][1] / r['epoll'][1]:.2f}x |")
    fu = median_of([x[0] for x in fixed["uring"]])
    fe = median_of([x[0] for x in fixed["epoll"]])
    lines.append(f"| 100 x 500 Hz x 20 B open (50k msg/s offered), one server at a time | | | | {fu:.2f} | {fe:.2f} | {fu / fe:.2f}x |")
    lines += [
        "",
        "Fixed rate with the servers running at the same time (each 100 x 250 Hz x 20 B from its own "
        "loadgen, all servers on CPU 1, all loadgens on CPU 0), server CPU per message; the ratio is "
        "taken within each run, then the median and range over the runs:",
        "",
        "| server | CPU-us/msg (median) | / epoll, median | / epoll, range |",
        "|---|---:|---:|---:|",
    ]
    for label, _, _ in together:
        ratios = [a / b for a, b in zip(concurrent[label], concurrent["epoll"])]
        lines.append(f"| {label} | {median_of(concurrent[label]):.2f} | {median_of(ratios):.3f}x "
                     f"| {min(ratios):.3f}-{max(ratios):.3f} |")
    lines += [
        "",
        f"Server RSS per idle WebSocket ({args.idle_connections} idle connections, RSS delta / open connections):",
        "",
        "| backend | bytes per idle connection | connections open at the sample |",
        "|---|---:|---:|",
    ]
    for b in backends:
        lines.append(f"| {b} | {idle[b][0]:,.0f} | {idle[b][1]} |")
    if ring_rows:
        sizes = args.ring_sizes.split(",")
        lines += [
            "",
            "Receive ring size (`--receive-buffers`, 4 KiB buffers, uring) against epoll: msg/s and server "
            "CPU-us/msg (medians):",
            "",
            "| scenario | epoll | " + " | ".join(f"uring ring {n}" for n in sizes) + " |",
            "|---|---:|" + "---:|" * len(sizes),
        ]
        for name, r in ring_rows:
            cells = [f"{r[k][0]:,.0f} / {r[k][1]:.2f}" for k in ["epoll"] + sizes]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    notes = ""
    if os.path.exists(args.out):
        with open(args.out) as f:
            previous = f.read()
        if NOTES_MARKER in previous:
            notes = previous[previous.index(NOTES_MARKER):]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + ("\n" + notes if notes else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
