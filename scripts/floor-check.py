#!/usr/bin/env python3
"""Checks the project's C floor (bench/floor/floor.c) against another floor server.

The figures in results/ are stated against bench/floor/floor.c, so that they
reproduce from a clone. This script shows how that floor compares with a
reference floor server of the user's choice (one C file serving
`BINARY uring|epoll PORT` on 127.0.0.1 and printing nothing), side by side,
on both backends:

- `fixed`: 100 connections x 500 Hz x 20 B, open loop: server CPU per echo;
- `held-100x20`: 100 x 20 B closed loop, the server held to --held-share percent of its
  core (a cgroup v1 CPU quota), the client on a whole core: msg/s ranks the
  servers by what they do with the same CPU;
- `held-200x16k`: 200 x 16 KiB closed loop, held the same way, with the
  builds whose buffers hold a whole 16 KiB frame (`floor-32k`, and the
  reference built with --reference-big-flags).

Every row gives the server's and the client's CPU (share of a core over the
measured run); above 90% the client, not the server, set the pace, and the
row is marked. Servers on CPU 1, loadgen on CPU 0 (127.0.0.1 only, bounded
runs); a fresh server per point, a warm-up run, then the measured run; the
servers take turns within a repeat and the order rotates; medians over the
repeats.

Usage: flock /tmp/ringecho-measure.lock scripts/floor-check.py --reference SRC.c
       [--reference-flags '...'] [--reference-big-flags '-DX=..'] [--reference-libs '-luring']
       [--repeats 5] [--duration 5] [--held-share 40] [--scenarios ...] [--out results/floor-check.md]
"""

import argparse
import importlib.util
import os
import shlex
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("measure_engine", os.path.join(ROOT, "scripts", "measure-engine.py"))
me = importlib.util.module_from_spec(spec)
spec.loader.exec_module(me)

REFERENCE_DIR = os.path.join(me.FLOOR_DIR, "reference")
SCENARIOS = {
    "fixed": {"title": "100 connections x 500 Hz x 20 B, open loop: server CPU per echo", "held": False,
              "big": False, "args": ["-c", "100", "-s", "20", "--mode", "open", "--rate", "500"]},
    "held-100x20": {"title": "100 x 20 B closed loop, server held to {share} of its core", "held": True,
                    "big": False, "args": ["-c", "100", "-s", "20", "--mode", "closed"]},
    "held-200x16k": {"title": "200 x 16 KiB closed loop, server held to {share} of its core (16 KiB builds)",
                     "held": True, "big": True, "args": ["-c", "200", "-s", "16384", "--mode", "closed"]},
}
CLIENT_BOUND = 90  # percent of a core
NOTES_MARKER = "<!-- hand-written notes below: kept when floor-check.py rewrites the tables -->"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_silent(binary, mode):
    """A server that takes `uring|epoll PORT` and prints nothing: a free port,
    then wait until it accepts a TCP connect."""
    for _ in range(5):
        port = free_port()
        proc = me.spawn_pinned([binary, mode, str(port)])
        me.watch_stderr(proc)
        deadline = time.time() + 10
        while time.time() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return proc, f"127.0.0.1:{port}"
            except OSError:
                time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    sys.exit(f"{binary} {mode} did not start; its stderr:\n" + "\n".join(proc.stderr_tail))


def build_reference(args):
    """target/floor/reference/{floor,floor-big}, from --reference."""
    os.makedirs(REFERENCE_DIR, exist_ok=True)
    built = {}
    for name, flags in (("floor", args.reference_flags), ("floor-big", args.reference_big_flags)):
        binary = os.path.join(REFERENCE_DIR, name)
        me.run_logged(["gcc", "-O3", "-march=native", *shlex.split(flags), "-o", binary, args.reference,
                       *shlex.split(args.reference_libs)])
        built[name] = binary
    return built


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("--reference", required=True, metavar="SRC.c", help="the other floor server's C source")
    parser.add_argument("--reference-name", default="the reference floor server",
                        help="how the report names it (its path is not written into the report)")
    parser.add_argument("--reference-flags", default="", help="extra gcc flags of its default build")
    parser.add_argument("--reference-big-flags", default="",
                        help="extra gcc flags of its build for 16 KiB frames (buffers that hold one)")
    parser.add_argument("--reference-libs", default="-luring", help="libraries it links (default -luring)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5, help="measured seconds per point")
    parser.add_argument("--held-share", type=int, default=40, metavar="PCT",
                        help="percent of a core the held scenarios allow the server (default 40)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "floor-check.md"))
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown or not os.path.isfile(args.reference):
        sys.exit(f"unknown scenarios {unknown}" if unknown else f"no such file: {args.reference}")

    os.sched_setaffinity(0, {int(me.LOAD_CPU)})
    me.ensure_builds(False)
    me.ensure_floor()
    reference = build_reference(args)
    ours = {False: me.floor_binary(False), True: me.floor_binary(True)}
    servers = []
    for mode in ("uring", "epoll"):
        servers.append(me.Server(f"floor-{mode}", f"bench/floor {mode}",
                                 lambda big, m=mode: me.start_floor(ours[big], m), idle=False))
        servers.append(me.Server(f"reference-{mode}", f"reference {mode}",
                                 lambda big, m=mode: start_silent(reference["floor-big" if big else "floor"], m),
                                 idle=False))

    held = me.HeldCore(args.held_share)
    held.create()
    try:
        results = measure_all(args, scenarios, servers, held)
    finally:
        held.remove()


def measure_all(args, scenarios, servers, held):
    """Every scenario, repeat and server, interleaved; writes the report."""
    started = time.time()
    results = {name: {s.key: [] for s in servers} for name in scenarios}
    total, done = len(scenarios) * args.repeats * len(servers), 0
    for name in scenarios:
        sc = SCENARIOS[name]
        for rep in range(args.repeats):
            order = servers[rep % len(servers):] + servers[:rep % len(servers)]
            for s in order:
                r = me.measure_load(s, sc["args"], args.duration, big=sc["big"],
                                    held=held if sc["held"] else None)
                # The server's share of a core over the measured window itself.
                r["server_window_pct"] = r["cpu_us"] * r["rate"] / 1e4
                results[name][s.key].append(r)
                done += 1
                print(f"[{done}/{total} {time.time() - started:4.0f}s] {name} repeat {rep + 1} {s.key}: "
                      f"{r['rate']:,.0f} msg/s, {r['cpu_us']:.2f} CPU-us/echo, server {r['server_window_pct']:.0f}%, "
                      f"client {r['client_pct']:.0f}%" + (" (loadgen errors)" if r["errors"] else ""), flush=True)
    write_report(args, scenarios, servers, results, time.time() - started)
    return results


def write_report(args, scenarios, servers, results, elapsed):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    floor_link = me.link_to(me.FLOOR_SRC, args.out)
    lines = [
        "# The project's C floor against a reference floor server",
        "",
        "- command: `scripts/floor-check.py "
        + shlex.join(["REFERENCE.c" if a == args.reference else a for a in sys.argv[1:]]) + "`",
        f"- REFERENCE.c: {args.reference_name}",
        f"- commit: `{commit}`; ours: [bench/floor/floor.c]({floor_link}) (`floor`, and `floor-32k` for 16 KiB); "
        f"the reference: built with gcc -O3 -march=native{f' `{args.reference_flags}`' if args.reference_flags else ''} and, for 16 KiB, "
        f"`{args.reference_big_flags}`, linked with `{args.reference_libs}`",
        f"- machine: {me.machine_line()}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {elapsed / 60:.1f} min",
        f"- servers on CPU {me.SERVER_CPU}, loadgen (1 thread) on CPU {me.LOAD_CPU}, 127.0.0.1; a fresh server "
        f"per point, a {me.WARM[0] + me.WARM[1]:g} s warm-up run, then {args.duration:g} s measured; "
        f"{args.repeats} repeats, servers interleaved, order rotating; medians, min–max in brackets",
        f"- held: the server in a cgroup v1 CPU group with cpu.cfs_quota_us {args.held_share * 100} per "
        "cpu.cfs_period_us 10000; server CPU: CPU per echo x msg/s, percent of one core over the measured "
        "window; client CPU: loadgen's utime+stime over its whole run (connects and closes too) per wall "
        f"second; a row whose client was above {CLIENT_BOUND}% is client-bound and ranks nothing",
        "",
    ]
    for name in scenarios:
        sc = SCENARIOS[name]
        res = results[name]
        lines += [f"## {sc['title'].format(share=f'{args.held_share}%')}", "", f"loadgen `{shlex.join(sc['args'])}`", ""]
        lines += ["| server | msg/s | CPU us/echo | ours / reference (CPU per echo) | ours / reference (msg/s) "
                  "| server CPU | client CPU |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for s in servers:
            runs = res[s.key]
            mode = s.key.split("-")[1]

            def median(key, k=s.key):
                return me.med([r[key] for r in res[k]])

            cpu_ratio = rate_ratio = "–"
            if s.key.startswith("floor-"):
                cpu_ratio = f"{median('cpu_us') / median('cpu_us', f'reference-{mode}'):.3f}x"
                rate_ratio = f"{median('rate') / median('rate', f'reference-{mode}'):.3f}x"
            client = median("client_pct")
            lines.append(
                f"| {s.label} | {median('rate'):,.0f} ({cell(runs, 'rate', ',.0f')}) "
                f"| {median('cpu_us'):.2f} ({cell(runs, 'cpu_us', '.2f')}) | {cpu_ratio} | {rate_ratio} "
                f"| {median('server_window_pct'):.0f}% | {client:.0f}%"
                + (" **client-bound**" if client > CLIENT_BOUND else "") + " |")
        errors = [f"{k} repeat {i + 1}" for k, runs in res.items() for i, r in enumerate(runs) if r["errors"]]
        if errors:
            lines += ["", "loadgen reported connection or echo errors in: " + ", ".join(errors) + "."]
        copied = {k: [r["staged"] for r in runs if "staged" in r] for k, runs in res.items()}
        copied = {k: v for k, v in copied.items() if v}
        if copied:
            lines += ["", "bench/floor receives copied (a frame cut by a receive boundary, over a server's life): "
                      + "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in copied.items()) + "."]
        lines.append("")
    lines += ["## Raw runs", "", "msg/s / server CPU us per echo / server CPU / client CPU, in run order:", ""]
    for name in scenarios:
        for s in servers:
            lines.append(f"- {name}, {s.key}: " + ", ".join(
                f"{r['rate']:,.0f} / {r['cpu_us']:.2f} / {r['server_window_pct']:.0f}% / {r['client_pct']:.0f}%"
                for r in results[name][s.key]))
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
    print(f"wrote {args.out}", flush=True)


def cell(runs, key, spec):
    values = [r[key] for r in runs]
    return f"{format(min(values), spec)}–{format(max(values), spec)}"


if __name__ == "__main__":
    main()
