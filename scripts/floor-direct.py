#!/usr/bin/env python3
"""Would io_uring direct descriptors make the echo cheaper? Asked of the C floor.

Issue "io_uring path owns its loop" asks to consider direct descriptors
(registered files: multishot accept into a fixed file table, recv and send
with IOSQE_FIXED_FILE, no fd in the process table) and to keep them if they
win. They save the kernel's per-operation file lookup and, in a process
with more than one thread, its reference count. ringecho's io_uring path
builds on an fd in every connection (TCP_NODELAY, the fault tests' fd
counts, the fd-limit handling), so before rebuilding it this script measures
what the change is worth where it is cheapest to make: in the C floor
(bench/floor/floor.c), at the fixed rate where the engine stands level
with its peers (100 connections x 500 Hz x 20 B, open loop).

Variants, each built from floor.c by the text substitutions below:
- `plain`: floor.c's io_uring server as it is;
- `direct`: multishot accept into a sparse fixed-file table
  (`io_uring_prep_multishot_accept_direct`), recv and send on the fixed
  file, close and shutdown through the ring, TCP_NODELAY set on the listener
  (accepted sockets inherit it; a direct descriptor has no fd for
  setsockopt);
- `plain-2t`, `direct-2t`: the same with a second, sleeping thread, so the
  process's file table is shared, as in ringecho (the kernel then takes a
  reference on every file lookup, which a direct descriptor skips).

Each server is pinned to CPU 1 and loadgen to CPU 0 (127.0.0.1 only, bounded
runs); a fresh server per point, a warm-up run, then the measured run; the
servers take turns within a repeat and the order rotates. Server CPU is
utime+stime over the measured run divided by loadgen's echoes.

Usage: flock /tmp/ringecho-measure.lock scripts/floor-direct.py [--repeats 5]
       [--duration 5] [--out results/floor-direct.md]
Needs the release loadgen (cargo build --release -p loadgen), gcc and the
liburing headers (installed with apt-get when missing, as by
measure-engine.py, whose helpers this script uses).
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

VARIANT_DIR = os.path.join(me.FLOOR_DIR, "variants")
ARGS = ["-c", "100", "-s", "20", "--mode", "open", "--rate", "500"]

# (old, new) substitutions that turn floor.c's io_uring server into one on
# direct descriptors; each must match exactly once. A connection's number
# is then its index in the ring's file table instead of an fd.
DIRECT = [
    # Accept into the fixed-file table.
    ("io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, 0);",
     "io_uring_prep_multishot_accept_direct(sqe, listen_fd, NULL, NULL, 0);"),
    # recv and send on the fixed file.
    ("sqe->flags |= IOSQE_BUFFER_SELECT;", "sqe->flags |= IOSQE_BUFFER_SELECT | IOSQE_FIXED_FILE;"),
    ("io_uring_prep_send(sqe, fd, c->cur.data + c->cur.at, c->cur.len - c->cur.at, MSG_NOSIGNAL);",
     "io_uring_prep_send(sqe, fd, c->cur.data + c->cur.at, c->cur.len - c->cur.at, MSG_NOSIGNAL);\n"
     "    sqe->flags |= IOSQE_FIXED_FILE;"),
    # A sparse file table, and TCP_NODELAY on the listener (inherited on
    # accept: a direct descriptor has no fd for setsockopt).
    ("    int listen_fd = listener(port);\n    char how[96];",
     "    int listen_fd = listener(port);\n    set_nodelay(listen_fd);\n"
     "    if (io_uring_register_files_sparse(&ring, (unsigned)(max_fd < 65536 ? max_fd : 65536))) exit(1);\n"
     "    char how[96];"),
    ("                    set_nodelay(cqe->res);\n", ""),
    # shutdown and close through the ring, on the fixed file.
    ("                    close(cqe->res);", "                    ring_close(cqe->res);"),
    ("if (!c->shut) shutdown(fd, SHUT_RDWR), c->shut = 1;", "if (!c->shut) ring_shutdown(fd), c->shut = 1;"),
    ("    reset_conn(c);\n    close(fd);\n}\n\nstatic void on_recv",
     "    reset_conn(c);\n    ring_close(fd);\n}\n\nstatic void on_recv"),
    # The two helpers, before their first use (their completions carry op 0: ignored).
    ("static void release(struct out *o) {",
     "static void ring_close(int fd) {\n"
     "    struct io_uring_sqe *sqe = next_sqe();\n"
     "    io_uring_prep_close_direct(sqe, (unsigned)fd);\n"
     "    io_uring_sqe_set_data64(sqe, 0);\n"
     "}\n\n"
     "static void ring_shutdown(int fd) {\n"
     "    struct io_uring_sqe *sqe = next_sqe();\n"
     "    io_uring_prep_shutdown(sqe, fd, SHUT_RDWR);\n"
     "    sqe->flags |= IOSQE_FIXED_FILE;\n"
     "    io_uring_sqe_set_data64(sqe, 0);\n"
     "}\n\n"
     "static void release(struct out *o) {"),
]

# A second thread that only sleeps: the process's file table becomes shared.
SECOND_THREAD = """
#include <pthread.h>
static void *sleeper(void *arg) { (void)arg; for (;;) pause(); return NULL; }
__attribute__((constructor)) static void second_thread(void) { pthread_t t; pthread_create(&t, NULL, sleeper, NULL); }
"""

VARIANTS = [("plain", False, False), ("direct", True, False), ("plain-2t", False, True), ("direct-2t", True, True)]


def variant_source(direct, second_thread):
    with open(me.FLOOR_SRC) as f:
        text = f.read()
    if direct:
        for old, new in DIRECT:
            if text.count(old) != 1:
                sys.exit(f"floor.c changed: {old!r} occurs {text.count(old)} times (want 1)")
            text = text.replace(old, new)
    if second_thread:
        text += SECOND_THREAD
    return text


def build(name, direct, second_thread):
    os.makedirs(VARIANT_DIR, exist_ok=True)
    source = os.path.join(VARIANT_DIR, f"{name}.c")
    binary = os.path.join(VARIANT_DIR, name)
    with open(source, "w") as f:
        f.write(variant_source(direct, second_thread))
    me.run_logged(["gcc", "-O3", "-march=native", "-o", binary, source, "-luring", "-lpthread"])
    return binary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "floor-direct.md"))
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(me.LOAD_CPU)})
    if not os.path.exists(me.LOADGEN):
        sys.exit(f"missing {me.LOADGEN}: run cargo build --release -p loadgen")
    me.ensure_liburing()
    binaries = {name: build(name, direct, threads) for name, direct, threads in VARIANTS}
    servers = [me.Server(name, name, lambda big, b=binary: me.start_floor(b, "uring"), idle=False)
               for name, binary in binaries.items()]
    started = time.time()
    runs = {s.key: [] for s in servers}
    total = args.repeats * len(servers)
    for rep in range(args.repeats):
        order = servers[rep % len(servers):] + servers[:rep % len(servers)]
        for s in order:
            r = me.measure_load(s, ARGS, args.duration)
            runs[s.key].append(r)
            done = sum(len(v) for v in runs.values())
            print(f"[{done}/{total} {time.time() - started:4.0f}s] repeat {rep + 1}/{args.repeats} {s.key}: "
                  f"{r['cpu_us']:.2f} CPU-us/echo, {r['rate']:,.0f} echoes/s"
                  + (" (loadgen errors)" if r["errors"] else ""), flush=True)
    write_report(args, runs, time.time() - started)


def write_report(args, runs, elapsed):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    cpu = {k: me.med([r["cpu_us"] for r in v]) for k, v in runs.items()}
    lines = [
        "# Direct descriptors in the C floor: CPU per echo at a fixed rate",
        "",
        f"- command: `scripts/floor-direct.py {shlex.join(sys.argv[1:])}`".replace("py `", "py`"),
        f"- commit: `{commit}`; the variants are built from `{os.path.relpath(me.FLOOR_SRC, ROOT)}` by the "
        "substitutions in the script (`target/floor/variants/*.c`), gcc -O3 -march=native",
        f"- machine: {me.machine_line()}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {elapsed / 60:.1f} min",
        f"- load: loadgen `{' '.join(ARGS)}` (100 connections x 500 Hz x 20 B, 50k echoes/s offered) on CPU 0; "
        "server on CPU 1; a fresh server per point, a warm-up run, then "
        f"{args.duration:g} s measured; {args.repeats} repeats, servers interleaved, order rotating"
,
        "- server CPU per echo: utime+stime over the measured run / loadgen's echoes; medians, min-max over "
        "the repeats",
        "",
        "| variant | CPU us/echo | min–max | / plain | / plain-2t | echoes/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, values in runs.items():
        c = [r["cpu_us"] for r in values]
        lines.append(f"| {key} | {cpu[key]:.2f} | {min(c):.2f}–{max(c):.2f} | {cpu[key] / cpu['plain']:.3f}x "
                     f"| {cpu[key] / cpu['plain-2t']:.3f}x | {me.med([r['rate'] for r in values]):,.0f} |")
    lines += ["", "Raw runs (CPU us/echo, in run order):", ""]
    for key, values in runs.items():
        lines.append(f"- {key}: " + ", ".join(f"{r['cpu_us']:.2f}" for r in values))
    marker = "<!-- hand-written notes below: kept when floor-direct.py rewrites the tables -->"
    notes = ""
    if os.path.exists(args.out):
        with open(args.out) as f:
            old = f.read()
        if marker in old:
            notes = old.split(marker, 1)[1]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n\n" + marker + notes.rstrip("\n") + "\n")
    print(f"wrote {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
