#!/usr/bin/env python3
"""Game latency: corrected p50, p99 and p99.9 per game preset on both backends.

For every open-loop loadgen preset (a game's tick rate, message sizes and
players: `loadgen --list-presets`), ringecho on io_uring and on epoll (one
worker, pinned to CPU 1, keep-alive off) serves `loadgen --preset NAME`
(pinned to CPU 0, 127.0.0.1 only, bounded runs): a fresh server per run,
loadgen's own warm-up (its samples are left out), then the measured window.
Servers and presets take turns within a repeat, the order rotating from
repeat to repeat; every figure is the median over the repeats.

Beside them, loadgen's own latency floor: the same measurement against the
project's C floor server (bench/floor, io_uring) at a light load, 10
connections x 100 Hz x 20 B: the least round trip loadgen can resolve on
this machine. A game figure close to it is mostly loadgen and the kernel.

Latency is the round trip from the *intended* send time (loadgen's tick):
the coordinated-omission correction. That is the latency a game would see,
since a game sends on its tick whether or not the last echo is back. The
uncorrected p99 (from the actual send) is listed too: when the two differ,
loadgen or the server fell behind its ticks.

Writes results/game-latency.md (`--out`); with `--readme`, also rewrites the
table in README.md between its game-latency markers.

Usage: flock /tmp/ringecho-measure.lock scripts/game-latency.py
       [--repeats 5] [--duration 10] [--warmup 2] [--presets a,b] [--readme] [--no-build]
"""

import argparse
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("measure_engine", os.path.join(ROOT, "scripts", "measure-engine.py"))
me = importlib.util.module_from_spec(spec)
spec.loader.exec_module(me)

BACKENDS = ["uring", "epoll"]
FLOOR_LOAD = ["-c", "10", "--mode", "open", "--rate", "100", "-s", "20"]
README = os.path.join(ROOT, "README.md")
README_BEGIN = "<!-- game-latency table: written by scripts/game-latency.py --readme -->"
README_END = "<!-- end of game-latency table -->"
NOTES_MARKER = "<!-- hand-written notes below: kept when game-latency.py rewrites the tables -->"
PERCENTILES = [("p50", "p50"), ("p99", "p99"), ("p99.9", "p99_9")]


def open_presets():
    """(name, summary) of every open-loop preset loadgen knows, in its order."""
    listing = subprocess.run([me.LOADGEN, "--list-presets"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in listing.splitlines():
        match = re.match(r"^  (\S+)\s+(\d+ conns x .* open at [\d.]+ Hz)\s*$", line)
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def run_point(start, args, duration, warmup):
    """A fresh server from `start()`; one loadgen run with its own warm-up;
    returns the report's latency, rate, errors and client CPU."""
    proc, addr = start()
    try:
        report = me.loadgen(addr, args, duration, warmup)
    finally:
        me.stop_server(proc)
    client_cpu, wall = report["client_cpu"]
    return {"corrected": report["latency_us"]["corrected"], "uncorrected": report["latency_us"]["uncorrected"],
            "rate": report["msgs_per_sec"], "errors": report["exit"]["code"] != 0,
            "client_pct": 100 * client_cpu / max(wall, 1e-9)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=float, default=10, help="measured seconds per run (default 10)")
    parser.add_argument("--warmup", type=float, default=2, help="loadgen's warm-up per run (default 2)")
    parser.add_argument("--presets", help="comma-separated (default: every open-loop preset)")
    parser.add_argument("--readme", action="store_true", help="also rewrite README.md's game-latency table")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "game-latency.md"))
    args = parser.parse_args()
    if args.repeats < 1 or args.duration <= 0 or args.warmup < 0:
        sys.exit("--repeats must be at least 1, --duration positive, --warmup not negative")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
        sys.exit(f"--out {args.out}: cannot write into {out_dir}")

    os.sched_setaffinity(0, {int(me.LOAD_CPU)})
    if not args.no_build:
        me.ensure_builds(False)
    me.ensure_floor()
    presets = open_presets()
    if args.presets:
        wanted = [p.strip() for p in args.presets.split(",") if p.strip()]
        known = dict(presets)
        unknown = [p for p in wanted if p not in known]
        if unknown:
            sys.exit(f"not an open-loop preset: {', '.join(unknown)} (known: {', '.join(known)})")
        presets = [(p, known[p]) for p in wanted]

    points = [(name, backend) for name, _ in presets for backend in BACKENDS] + [("floor", "floor")]
    results = {point: [] for point in points}
    started = time.time()
    total, done = len(points) * args.repeats, 0
    for rep in range(args.repeats):
        order = points[rep % len(points):] + points[:rep % len(points)]
        for name, backend in order:
            if backend == "floor":
                r = run_point(lambda: me.start_floor(me.floor_binary(False), "uring"), FLOOR_LOAD,
                              args.duration, args.warmup)
            else:
                r = run_point(lambda b=backend: me.start_server(b), ["--preset", name], args.duration, args.warmup)
            results[(name, backend)].append(r)
            done += 1
            c = r["corrected"]
            print(f"[{done}/{total} {time.time() - started:5.0f}s] repeat {rep + 1} {name} {backend}: "
                  f"p50 {c['p50']:.0f} us, p99 {c['p99']:.0f} us, p99.9 {c['p99_9']:.0f} us, "
                  f"{r['rate']:,.0f} msg/s, client {r['client_pct']:.0f}%"
                  + (" (loadgen errors)" if r["errors"] else ""), flush=True)
    write_report(args, presets, results, time.time() - started)


def med(runs, kind, key):
    return me.med([r[kind][key] for r in runs])


def us(value):
    """A latency in µs for a table: µs below 1 ms, else ms."""
    return f"{value:.0f} µs" if value < 1000 else f"{value / 1000:.2f} ms"


def commit_line():
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.split("\n")
    dirty = [line[3:] for line in dirty if line.strip()]
    return commit, (f" (+uncommitted changes in {', '.join(dirty[:6])})" if dirty else "")


def write_report(args, presets, results, elapsed):
    commit, dirty = commit_line()
    floor = results[("floor", "floor")]
    lines = [
        "# Game latency: what a game's players would see, per preset, on both backends",
        "",
        f"- command: `scripts/game-latency.py {shlex.join(sys.argv[1:])}`".replace("py `", "py`"),
        f"- commit: `{commit}`{dirty}",
        f"- machine: {me.machine_line()}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {elapsed / 60:.1f} min",
        f"- ringecho `--threads 1 --keep-alive-interval 0 --io uring|epoll` pinned to CPU {me.SERVER_CPU}; "
        f"loadgen `--preset NAME` (1 thread) pinned to CPU {me.LOAD_CPU}, 127.0.0.1; a fresh server per run, "
        f"{args.warmup:g} s of loadgen warm-up (left out), {args.duration:g} s measured; {args.repeats} repeats, "
        "servers and presets interleaved, the order rotating; medians over the repeats, min–max in brackets",
        "- latency: the round trip from the intended send time (the tick), corrected for coordinated omission; "
        "µs unless marked ms",
        "- loadgen's own floor: the same measurement against the project's C floor "
        "(bench/floor, io_uring) at 10 connections x 100 Hz x 20 B",
        "",
        "| preset | backend | p50 | p99 | p99.9 | max | uncorrected p99 | msg/s | client CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def row(label, backend, runs):
        cells = []
        for _, key in PERCENTILES:
            values = [r["corrected"][key] for r in runs]
            cells.append(f"{us(me.med(values))} ({min(values):.0f}–{max(values):.0f})")
        return (f"| {label} | {backend} | " + " | ".join(cells)
                + f" | {us(med(runs, 'corrected', 'max'))} | {us(med(runs, 'uncorrected', 'p99'))}"
                + f" | {me.med([r['rate'] for r in runs]):,.0f} | {me.med([r['client_pct'] for r in runs]):.0f}% |")

    for name, summary in presets:
        for backend in BACKENDS:
            lines.append(row(f"`{name}` ({summary})", backend, results[(name, backend)]))
    lines.append(row("loadgen's own floor (10 x 100 Hz x 20 B)", "C floor io_uring", floor))
    errors = [f"{name} {backend} repeat {i + 1}" for (name, backend), runs in results.items()
              for i, r in enumerate(runs) if r["errors"]]
    if errors:
        lines += ["", "loadgen reported connection or echo errors in: " + ", ".join(errors) + "."]
    lines += ["", "Raw runs (corrected p50 / p99 / p99.9 µs, in run order):", ""]
    for (name, backend), runs in results.items():
        lines.append(f"- {name} {backend}: " + ", ".join(
            "/".join(f"{r['corrected'][key]:.0f}" for _, key in PERCENTILES) for r in runs))
    lines.append("")
    notes = ""
    if os.path.exists(args.out):
        with open(args.out) as f:
            previous = f.read()
        if NOTES_MARKER in previous:
            notes = previous[previous.index(NOTES_MARKER):]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n" + (notes or NOTES_MARKER + "\n"))
    print("\n".join(lines))
    print(f"wrote {args.out}", flush=True)
    if args.readme:
        write_readme(args, presets, results, commit)


def write_readme(args, presets, results, commit):
    """The short table in README.md between its markers: per preset, p50,
    p99 and p99.9 on each backend, and loadgen's own floor."""
    with open(README) as f:
        text = f.read()
    if README_BEGIN not in text or README_END not in text:
        sys.exit(f"README.md has no game-latency markers ({README_BEGIN!r} ... {README_END!r})")
    floor = results[("floor", "floor")]
    table = [
        README_BEGIN,
        f"| preset (`{commit}`, corrected) | io_uring p50 | p99 | p99.9 | epoll p50 | p99 | p99.9 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, _ in presets:
        cells = [us(med(results[(name, b)], "corrected", key)) for b in BACKENDS for _, key in PERCENTILES]
        table.append(f"| `{name}` | " + " | ".join(cells) + " |")
    floor_cells = [us(med(floor, "corrected", key)) for _, key in PERCENTILES]
    table.append("| loadgen's own floor (C floor, 10 x 100 Hz x 20 B) | " + " | ".join(floor_cells)
                 + " | | | |")
    table.append(README_END)
    before, rest = text.split(README_BEGIN, 1)
    after = rest.split(README_END, 1)[1]
    with open(README, "w") as f:
        f.write(before + "\n".join(table) + after)
    print(f"rewrote the game-latency table in {README}", flush=True)


if __name__ == "__main__":
    main()
