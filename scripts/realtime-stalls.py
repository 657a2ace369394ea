#!/usr/bin/env python3
"""Why results/engine-io.md once read a corrected p99 of 32-35 ms for every
server at 100 connections x 500 Hz x 20 B: the same load with and without
SCHED_FIFO, side by side.

That run put the servers and loadgen under SCHED_FIFO priority 10 (the
`--realtime` option measure-engine.py had then). Linux lets real-time tasks
run at most `kernel.sched_rt_runtime_us` of every `kernel.sched_rt_period_us`
(950 ms of 1 s by default) and stops them for the rest. The question this
script answers by measuring: is that what the 32-35 ms were, loadgen (which
needs most of its core at that rate) stopped at the limit, every tick that
fell into a stop sent late, and the corrected latency (from the tick)
counting the wait?

Three setups per server, interleaved, the order rotating by repeat; a fresh
server per run, server on CPU 1 and loadgen on CPU 0, 127.0.0.1 only:
- `normal`: no real-time policy (how measure-engine.py runs now);
- `fifo-both`: server and loadgen under `chrt -f 10` (the old run);
- `fifo-loadgen`: only loadgen under `chrt -f 10`.
Servers: ringecho on io_uring and the project's C floor (bench/floor,
io_uring). Figures are medians over the repeats, min-max in brackets.

Writes results/realtime-stalls.md (`--out`).

Usage: flock /tmp/ringecho-measure.lock scripts/realtime-stalls.py
       [--repeats 3] [--duration 5] [--warmup 1.5] [--no-build]
"""

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("measure_engine", os.path.join(ROOT, "scripts", "measure-engine.py"))
me = importlib.util.module_from_spec(spec)
spec.loader.exec_module(me)

LOAD = ["-c", "100", "-s", "20", "--mode", "open", "--rate", "500"]
FIFO = ["chrt", "-f", "10"]
SETUPS = [("normal", False, False), ("fifo-both", True, True), ("fifo-loadgen", False, True)]
SERVERS = [("ringecho io_uring", lambda: me.start_server("uring")),
           ("C floor io_uring", lambda: me.start_floor(me.floor_binary(False), "uring"))]


def read_int(path):
    with open(path) as f:
        return int(f.read())


def run(server_start, fifo_server, fifo_loadgen, duration, warmup):
    """One run: a fresh server, one loadgen run; the setup's real-time policy
    wraps the server's and loadgen's commands."""
    spawn, command = me.spawn_pinned, me.loadgen_command
    if fifo_server:
        me.spawn_pinned = lambda cmd, env=None: spawn(FIFO + cmd, env)
    if fifo_loadgen:
        me.loadgen_command = lambda *a: FIFO + command(*a)
    try:
        proc, addr = server_start()
        try:
            report = me.loadgen(addr, LOAD, duration, warmup)
        finally:
            me.stop_server(proc)
    finally:
        me.spawn_pinned, me.loadgen_command = spawn, command
    cpu, wall = report["client_cpu"]
    return {"corrected": report["latency_us"]["corrected"], "uncorrected": report["latency_us"]["uncorrected"],
            "rate": report["msgs_per_sec"], "client_pct": 100 * cpu / max(wall, 1e-9),
            "errors": report["exit"]["code"] != 0}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.5, help="loadgen's warm-up per run (default 1.5)")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "realtime-stalls.md"))
    args = parser.parse_args()
    if args.repeats < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--repeats must be at least 1, --duration positive, --warmup not negative")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
        parser.error(f"--out {args.out}: cannot write into {out_dir}")
    if os.geteuid() != 0:
        sys.exit("chrt -f needs root (or CAP_SYS_NICE)")

    os.sched_setaffinity(0, {int(me.LOAD_CPU)})
    if not args.no_build:
        me.ensure_builds(False)
    me.ensure_floor()
    points = [(s, setup) for s, _ in SERVERS for setup in SETUPS]
    starts = dict(SERVERS)
    results = {(s, setup[0]): [] for s, setup in points}
    started, total, done = time.time(), len(points) * args.repeats, 0
    for rep in range(args.repeats):
        order = points[rep % len(points):] + points[:rep % len(points)]
        for server, (name, fifo_server, fifo_loadgen) in order:
            r = run(starts[server], fifo_server, fifo_loadgen, args.duration, args.warmup)
            results[(server, name)].append(r)
            done += 1
            print(f"[{done}/{total} {time.time() - started:4.0f}s] {server} {name}: "
                  f"corrected p99 {r['corrected']['p99']:.0f} us, max {r['corrected']['max']:.0f} us, "
                  f"uncorrected p99 {r['uncorrected']['p99']:.0f} us, client {r['client_pct']:.0f}%"
                  + (" (loadgen errors)" if r["errors"] else ""), flush=True)
    write_report(args, results, time.time() - started)


def cell(runs, kind, key):
    values = [r[kind][key] for r in runs]
    return f"{me.med(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def write_report(args, results, elapsed):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.split()
    runtime = read_int("/proc/sys/kernel/sched_rt_runtime_us")
    period = read_int("/proc/sys/kernel/sched_rt_period_us")
    lines = [
        "# The 32-35 ms corrected p99 at 100 x 500 Hz: loadgen stopped by real-time throttling",
        "",
        f"- command: `scripts/realtime-stalls.py {shlex.join(sys.argv[1:])}`".replace("py `", "py`"),
        f"- commit: `{commit}`" + (" (+uncommitted changes)" if dirty else ""),
        f"- machine: {me.machine_line()}; `kernel.sched_rt_runtime_us` {runtime}, "
        f"`kernel.sched_rt_period_us` {period}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {elapsed / 60:.1f} min",
        f"- loadgen `{' '.join(LOAD)}` (1 thread) on CPU {me.LOAD_CPU}; the server (1 worker, keep-alive off) "
        f"on CPU {me.SERVER_CPU}; a fresh server per run; {args.warmup:g} s warm-up (left out), "
        f"{args.duration:g} s measured; {args.repeats} repeats interleaved, medians (min–max); µs",
        "- `normal`: no real-time policy; `fifo-both`: server and loadgen under `chrt -f 10`, as the "
        "old engine-io run; `fifo-loadgen`: only loadgen",
        "",
        "| server | setup | corrected p50 | corrected p99 | corrected max | uncorrected p99 | msg/s | loadgen CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (server, name), runs in results.items():
        lines.append(f"| {server} | {name} | {cell(runs, 'corrected', 'p50')} | {cell(runs, 'corrected', 'p99')} "
                     f"| {cell(runs, 'corrected', 'max')} | {cell(runs, 'uncorrected', 'p99')} "
                     f"| {me.med([r['rate'] for r in runs]):,.0f} "
                     f"| {me.med([r['client_pct'] for r in runs]):.0f}% |")
    stop_ms = (period - runtime) / 1000
    lines += [
        "",
        f"A real-time task may run {runtime / 1000:.0f} ms of every {period / 1000:.0f} ms here; past that "
        f"it waits up to {stop_ms:.0f} ms for the next period, and a tick that falls into the wait is "
        "sent late.",
        "",
    ]
    errors = [f"{s} {n}" for (s, n), runs in results.items() for r in runs if r["errors"]]
    if errors:
        lines += ["loadgen reported errors in: " + ", ".join(errors) + ".", ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
