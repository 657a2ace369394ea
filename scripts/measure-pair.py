#!/usr/bin/env python3
"""A/B/C at the same time: closed-loop msg/s of servers that share one core.

On this VM the speed of a core drifts by 10-20% from one minute to the next,
so servers measured one after another differ by more than most changes
worth measuring. Here every server of a run is started at once, each pinned
to CPU 1 in its own cgroup v1 CPU group held to --share percent of the core
(default 20; the shares must leave the core headroom), each driven by its own
loadgen pinned to CPU 0, over the same window: they see the same machine, and
the ratio of their msg/s within a run is what they do with the same CPU. The
servers rotate through the start order and the CPU groups from run to run (a
group's quota period has a phase of its own, which otherwise favours one
slot); each figure is the median over the runs of the ratio to the first
server, with its range. Same-config runs (A/A) land within about 1% of 1.00
over 12 runs.

Servers: LABEL=KIND[:OPTIONS], KIND one of
- `uring`, `epoll`: target/release/ringecho (or RINGECHO=PATH) with one
  worker, keep-alive off, and OPTIONS (e.g. `--receive-buffer-size 64KiB`);
  `BIN=PATH` as the first option runs another ringecho binary;
- `floor`: the C floor (scripts/measure-engine.py's; its 32 KiB-buffer
  build for messages over 4 KiB);
- `fws`: the fastwebsockets example (fws_echo).

Usage: scripts/measure-pair.py [--runs 12] [--duration 3] [--share 20]
           [--out FILE.json] CONNSxSIZE LABEL=KIND[:OPTIONS] LABEL=KIND[:OPTIONS] ...
Example: scripts/measure-pair.py 200x16384 floor=floor 'b64k=uring:--receive-buffer-size 64KiB'
Run it alone on the machine (the team's measure wrapper); needs root for the
CPU groups.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("measure_engine", os.path.join(ROOT, "scripts", "measure-engine.py"))
engine = importlib.util.module_from_spec(spec)
spec.loader.exec_module(engine)
engine.SERVER = os.environ.get("RINGECHO", engine.SERVER)


def parse_server(text):
    label, _, rest = text.partition("=")
    kind, _, options = rest.partition(":")
    if not label or kind not in ("uring", "epoll", "floor", "fws"):
        sys.exit(f"bad server {text!r}: want LABEL=uring|epoll|floor|fws[:OPTIONS]")
    options = options.split()
    binary = options.pop(0)[4:] if options and options[0].startswith("BIN=") else None
    return {"label": label, "kind": kind, "options": options, "binary": binary}


def start(server, group, big):
    with group:
        if server["kind"] in ("uring", "epoll"):
            return engine.start_server(server["kind"], server["options"], binary=server["binary"])
        if server["kind"] == "floor":
            return engine.start_floor(engine.floor_binary(big), "uring")
        return engine.start_peer(engine.FWS_ECHO)


def load_all(started, args, duration, warmup):
    """One loadgen per server, all at once; returns [(report, loadgen CPU s)]."""
    outs = [tempfile.NamedTemporaryFile(suffix=".json") for _ in started]
    procs = [subprocess.Popen(engine.loadgen_command(addr, args, duration, warmup, out.name),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for (_, addr), out in zip(started, outs)]
    results = []
    for proc, out in zip(procs, outs):
        code, cpu = engine.wait_with_usage(proc, duration + warmup + 60)
        results.append((engine.read_report(out.name, code, ["loadgen"]), cpu))
        out.close()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("workload", help="CONNSxSIZE, e.g. 200x16384 (closed loop, 1 in flight)")
    parser.add_argument("servers", nargs="+", help="LABEL=KIND[:OPTIONS], the first is the reference")
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per run")
    parser.add_argument("--share", type=int, default=20, help="percent of CPU 1 for each server")
    parser.add_argument("--out", help="write every run as JSON here")
    args = parser.parse_args()
    try:
        conns, size = (int(x) for x in args.workload.split("x"))
    except ValueError:
        sys.exit(f"workload {args.workload!r} is not CONNSxSIZE")
    servers = [parse_server(s) for s in args.servers]
    if len(servers) * args.share > 90:
        sys.exit(f"{len(servers)} servers x {args.share}% leave CPU 1 no headroom; lower --share")
    if any(s["kind"] == "floor" for s in servers):
        engine.ensure_floor()
    os.sched_setaffinity(0, {int(engine.LOAD_CPU)})
    load = ["-c", str(conns), "-s", str(size), "--mode", "closed"]
    groups = []
    for i in range(len(servers)):
        group = engine.HeldCore(args.share)
        group.path += f"-{i}"
        group.create()
        groups.append(group)
    runs = {s["label"]: [] for s in servers}
    try:
        for run in range(args.runs):
            n = len(servers)
            order = [(run + j) % n for j in range(n)]
            started = {}
            try:
                for i in order:
                    started[i] = start(servers[i], groups[(i + run) % n], size > 4096)
                ordered = [started[i] for i in order]
                load_all(ordered, load, 1.0, 0.5)
                cpu0 = [engine.cpu_seconds(proc.pid) for proc, _ in ordered]
                t0 = time.time()
                results = load_all(ordered, load, args.duration, 0)
                wall = time.time() - t0
                line = []
                for (proc, _), c0, (report, client_cpu), i in zip(ordered, cpu0, results, order):
                    cpu = engine.cpu_seconds(proc.pid) - c0
                    row = {"rate": report["msgs_per_sec"], "cpu_us": cpu * 1e6 / max(report["messages"], 1),
                           "server_pct": 100 * cpu / wall, "client_pct": 100 * client_cpu / wall,
                           "errors": report["exit"]["code"] != 0}
                    runs[servers[i]["label"]].append(row)
                    line.append(f"{servers[i]['label']} {row['rate']:,.0f} msg/s ({row['cpu_us']:.2f} us/echo, "
                                f"server {row['server_pct']:.0f}% client {row['client_pct']:.0f}%"
                                + (", ERRORS" if row["errors"] else "") + ")")
                print(f"run {run + 1}/{args.runs}: " + " | ".join(line), flush=True)
            finally:
                for proc, _ in started.values():
                    engine.stop_server(proc)
            if args.out:
                with open(args.out, "w") as f:
                    json.dump(runs, f, indent=1)
    finally:
        for group in groups:
            group.remove()
    first = servers[0]["label"]
    print(f"{args.workload} closed loop, {len(servers)} servers at once, each held to {args.share}% of CPU 1; "
          f"ratio to {first} within each run, median [min-max] over {args.runs} runs:")
    for s in servers:
        rows = runs[s["label"]]
        ratios = [r["rate"] / ref["rate"] for r, ref in zip(rows, runs[first])]
        print(f"  {s['label']:12s} {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]  "
              f"{statistics.median(r['rate'] for r in rows):,.0f} msg/s, "
              f"{statistics.median(r['cpu_us'] for r in rows):.2f} us/echo, "
              f"client {statistics.median(r['client_pct'] for r in rows):.0f}%"
              + (f", errors in {sum(r['errors'] for r in rows)} runs" if any(r["errors"] for r in rows) else ""))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
