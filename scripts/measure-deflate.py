#!/usr/bin/env python3
"""What permessage-deflate costs ringecho, side by side in one run: server
CPU per compressed echo (the passthrough echo, and inflate + deflate) against
the same messages uncompressed, and memory per WebSocket with compression
negotiated, without and with context takeover.

Scenarios (`--scenarios`, default `cpu,idle,context`):

- `cpu`: 100 connections x 100 Hz x 1 KiB JSON state snapshots (loadgen
  `--snapshots`), open loop, 10,000 echoes/s offered. One fresh ringecho
  `--permessage-deflate` per run (one worker, keep-alive off) pinned to CPU 1
  and held to `--held-share` percent of it (cgroup v1 quota, default 40);
  loadgen pinned to CPU 0. Three clients against the same server:
  `plain` (no offer: the messages go uncompressed), `passthrough` (loadgen
  `--permessage-deflate`: no context takeover either way, so the echo is the
  client's own compressed bytes, inflated only to be checked) and
  `recompress` (the same offer with `server_max_window_bits=14`: the
  client's 15-bit window does not fit the server's, so every echo is
  inflated and deflated again). Both backends; the order of the six runs
  rotates every repeat. Server CPU is utime+stime over the measured run
  divided by the echoes loadgen checked; the ratios are taken within each
  repeat, then their median.
- `idle`: RSS per idle WebSocket with 9,000 idle connections open, by
  scripts/measure-engine.py's method (a warm baseline, the connections
  opened in two halves, settled RSS, and the marginal cost of the second
  half): loadgen offering permessage-deflate to ringecho
  `--permessage-deflate`, beside the same server with no extension offered.
- `context`: what context takeover costs per connection. 2,000 WebSockets
  each send one compressed 1 KiB message, read its echo, and stay open; the
  settled RSS over the RSS before they opened, per connection. A minimal
  client written here (Python's zlib over raw sockets) plays the client,
  since loadgen compresses every message on its own: `none` (ringecho
  `--permessage-deflate`, the default answer: no context either way),
  `client` (`--deflate-context-takeover`, an offer with only
  `server_no_context_takeover`: the server keeps an inflater per
  connection) and `both` (`--deflate-context-takeover`, a bare offer: an
  inflater and a deflater per connection).

Nothing here sends traffic anywhere but 127.0.0.1, and every run is bounded.
Build first, then run alone on the machine:
  cargo build --release -p ringecho -p loadgen
  flock /tmp/ringecho-measure.lock scripts/measure-deflate.py
"""

import argparse
import base64
import importlib.util
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_engine_measurements():
    """scripts/measure-engine.py as a module (its name has a dash): its
    servers, held core, loadgen runs and settled-RSS probes."""
    path = os.path.join(ROOT, "scripts", "measure-engine.py")
    spec = importlib.util.spec_from_file_location("measure_engine", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ME = load_engine_measurements()

CPU_LOAD = ["-c", "100", "--mode", "open", "--rate", "100", "-s", "1024", "--snapshots"]
PASSTHROUGH_OFFER = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
CLIENTS = {
    "plain": [],
    "passthrough": ["--deflate-offer", PASSTHROUGH_OFFER],
    "recompress": ["--deflate-offer", PASSTHROUGH_OFFER + "; server_max_window_bits=14"],
}
CONTEXT = {
    # name: (server options, offer, parameters the answer must hold, must not hold)
    "none": ([], "permessage-deflate; client_max_window_bits",
             ["server_no_context_takeover", "client_no_context_takeover"], []),
    "client": (["--deflate-context-takeover"], "permessage-deflate; server_no_context_takeover",
               ["server_no_context_takeover"], ["client_no_context_takeover"]),
    "both": (["--deflate-context-takeover"], "permessage-deflate", [],
             ["server_no_context_takeover", "client_no_context_takeover"]),
}


def server(backend, extra=("--permessage-deflate",)):
    return ME.Server(f"{backend}", backend, lambda big: ME.start_server(backend, extra=list(extra)))


# ------------------------------------------------------------------ cpu

def measure_cpu(backends, repeats, duration, held, log):
    runs = {}  # (backend, client) -> [result]
    combos = [(b, c) for b in backends for c in CLIENTS]
    for repeat in range(repeats):
        shift = repeat % len(combos)
        for backend, client in combos[shift:] + combos[:shift]:
            result = ME.measure_load(server(backend), CPU_LOAD + CLIENTS[client], duration, held=held)
            result["repeat"] = repeat
            runs.setdefault((backend, client), []).append(result)
            log(f"cpu {backend} {client}: {result['cpu_us']:.2f} us/echo, {result['rate']:.0f} msg/s, "
                f"server {result['server_pct']:.0f}%, client {result['client_pct']:.0f}%"
                + (" (loadgen reported errors)" if result["errors"] else ""))
    return runs


# ------------------------------------------------------------------ idle

def idle_with(loadgen_args, fn, *args):
    """Runs fn with every loadgen that measure-engine starts given
    `loadgen_args` too."""
    original = ME.loadgen_command

    def command(addr, args, duration, warmup, json_out):
        return original(addr, [*args, *loadgen_args], duration, warmup, json_out)

    ME.loadgen_command = command
    try:
        return fn(*args)
    finally:
        ME.loadgen_command = original


IDLE_VARIANTS = {
    # name: (server options, loadgen options)
    "no extension": ((), ()),
    "permessage-deflate": (("--permessage-deflate",), ("--permessage-deflate",)),
}


def measure_idle(backends, repeats, conns, log):
    runs = {}
    combos = [(b, v) for b in backends for v in IDLE_VARIANTS]
    for repeat in range(repeats):
        shift = repeat % len(combos)
        for backend, variant in combos[shift:] + combos[:shift]:
            server_args, loadgen_args = IDLE_VARIANTS[variant]
            result = idle_with(list(loadgen_args), ME.idle_rss, server(backend, server_args), conns, True)
            runs.setdefault((backend, variant), []).append(result)
            log(f"idle {backend} {variant}: {result['per_conn']:.0f} B/conn warm, marginal "
                f"{result['slope'] or 0:.0f} B/conn, {result['open']} open")
    return runs


# ------------------------------------------------------------------ context

def snapshot_json(length):
    records, i = [], 0
    while sum(map(len, records)) < length:
        records.append(f'{{"id":{i},"x":{(i * 7919) % 20000 - 10000}.{i % 10},'
                       f'"y":{(i * 104729) % 20000 - 10000}.{i % 7},"hp":{i * 37 % 101},'
                       f'"state":"{["idle", "running", "jumping"][i % 3]}"}},')
        i += 1
    return "".join(records)[:length].encode()


def masked_frame(first_byte, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([first_byte, 0x80 | n])
    elif n < 65536:
        head = bytes([first_byte, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first_byte, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def open_compressing(addr, offer, must, must_not, message):
    """One WebSocket that offers `offer`, checks the answer, sends `message`
    compressed and reads its echo; returns the open socket."""
    host, port = addr.split(":")
    assert host == "127.0.0.1", addr
    sock = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Sec-WebSocket-Extensions: {offer}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += read_exactly(sock, 1)
    lines = head.decode().split("\r\n")
    assert " 101 " in lines[0], lines[0]
    answer = next((line.split(":", 1)[1].strip() for line in lines
                   if line.lower().startswith("sec-websocket-extensions:")), None)
    assert answer and answer.startswith("permessage-deflate"), (offer, answer)
    params = [p.strip() for p in answer.split(";")[1:]]
    assert all(p in params for p in must) and not any(p in params for p in must_not), (offer, answer)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert payload.endswith(b"\x00\x00\xff\xff")
    sock.sendall(masked_frame(0x80 | 0x40 | 0x1, payload[:-4]))
    b0, b1 = read_exactly(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(read_exactly(sock, 2), "big")
    elif n == 127:
        n = int.from_bytes(read_exactly(sock, 8), "big")
    read_exactly(sock, n)
    assert b0 == 0x80 | 0x40 | 0x1, f"echo first byte {b0:#x}"
    return sock


def context_rss(backend, variant, conns):
    server_args, offer, must, must_not = CONTEXT[variant]
    proc, addr = ME.start_server(backend, extra=["--permessage-deflate", *server_args])
    sockets = []
    try:
        message = snapshot_json(1024)
        # Warm: the worker's shared inflater and deflater, and its buffers.
        for _ in range(50):
            open_compressing(addr, CONTEXT["none"][1], [], [], message).close()
        time.sleep(0.5)
        before = ME.settled_rss(proc.pid)
        for _ in range(conns):
            sockets.append(open_compressing(addr, offer, must, must_not, message))
        after = ME.settled_rss(proc.pid)
        return {"per_conn": (after - before) / conns, "before": before, "after": after}
    finally:
        for sock in sockets:
            sock.close()
        ME.stop_server(proc)


def measure_context(backends, repeats, conns, log):
    runs = {}
    combos = [(b, v) for b in backends for v in CONTEXT]
    for repeat in range(repeats):
        shift = repeat % len(combos)
        for backend, variant in combos[shift:] + combos[:shift]:
            result = context_rss(backend, variant, conns)
            runs.setdefault((backend, variant), []).append(result)
            log(f"context {backend} {variant}: {result['per_conn']:.0f} B/conn")
    return runs


# ------------------------------------------------------------------ report

def med(values):
    return statistics.median(values) if values else None


def commit():
    out = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %cs"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def write_report(path, args, cpu, idle, context, elapsed):
    lines = [
        "# permessage-deflate: CPU per compressed echo and memory per WebSocket",
        "",
        f"- command: `scripts/measure-deflate.py --repeats {args.repeats} --duration {args.duration:g} "
        f"--backends {','.join(args.backends)} --memory-backends {','.join(args.memory_backends)} "
        f"--scenarios {','.join(args.scenarios)} --idle-connections {args.idle_connections} "
        f"--idle-repeats {args.idle_repeats or args.repeats} --context-connections {args.context_connections} "
        f"--context-repeats {args.context_repeats or args.repeats}` "
        f"under `flock /tmp/ringecho-measure.lock` (release builds), {elapsed / 60:.0f} min",
        f"- commit: `{commit()}`",
        f"- machine: {ME.machine_line()}; server on CPU 1, loadgen (and the context client) on CPU 0",
        "- how: see the docstring of `scripts/measure-deflate.py`",
        "",
    ]
    if cpu:
        lines += [
            f"## Server CPU per echo: 100 x 100 Hz x 1 KiB JSON snapshots (10k echoes/s), "
            f"server held to {args.held_share}% of CPU 1",
            "",
            "Medians of the repeats; the ratios are taken within each repeat (same server binary, "
            "runs interleaved), then the median and range. `plain` sends the same messages "
            "uncompressed to the same server.",
            "",
            "| backend | client | CPU us/echo | min–max | / plain (median) | / plain (range) | msg/s | "
            "server CPU | client CPU | loadgen errors |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for backend in args.backends:
            plain = {r["repeat"]: r["cpu_us"] for r in cpu.get((backend, "plain"), [])}
            for client in CLIENTS:
                runs = cpu.get((backend, client), [])
                if not runs:
                    continue
                values = [r["cpu_us"] for r in runs]
                ratios = [r["cpu_us"] / plain[r["repeat"]] for r in runs if r["repeat"] in plain]
                lines.append(
                    f"| {backend} | {client} | {med(values):.2f} | {min(values):.2f}–{max(values):.2f} | "
                    f"{med(ratios):.2f}x | {min(ratios):.2f}–{max(ratios):.2f} | "
                    f"{med([r['rate'] for r in runs]):,.0f} | {med([r['server_pct'] for r in runs]):.0f}% | "
                    f"{med([r['client_pct'] for r in runs]):.0f}% | "
                    f"{sum(1 for r in runs if r['errors'])} of {len(runs)} runs |")
        lines += ["", "Raw runs (CPU us per echo, in run order):", ""]
        for (backend, client), runs in cpu.items():
            lines.append(f"- {backend} {client}: " + ", ".join(f"{r['cpu_us']:.2f}" for r in runs))
        lines.append("")
    if idle:
        lines += [
            f"## RSS per idle WebSocket, {args.idle_connections:,} idle connections",
            "",
            "scripts/measure-engine.py's method: warm = (RSS with all open − the warm baseline) / "
            "connections; marginal = the RSS growth from the first half to all / the second half.",
            "",
            "| backend | variant | warm B/conn | min–max | marginal B/conn | min–max | open |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for (backend, variant), runs in idle.items():
            warm = [r["per_conn"] for r in runs]
            slope = [r["slope"] for r in runs if r["slope"] is not None]
            lines.append(f"| {backend} | {variant} | {med(warm):.0f} | {min(warm):.0f}–{max(warm):.0f} | "
                         f"{med(slope):.0f} | {min(slope):.0f}–{max(slope):.0f} | "
                         f"{min(r['open'] for r in runs)}–{max(r['open'] for r in runs)} |")
        lines += ["", "Raw runs (warm / marginal B per connection):", ""]
        for (backend, variant), runs in idle.items():
            lines.append(f"- {backend} {variant}: " + ", ".join(
                f"{r['per_conn']:.0f} / {r['slope'] or 0:.0f}" for r in runs))
        lines.append("")
    if context:
        lines += [
            f"## Context takeover: RSS per WebSocket after one compressed message, "
            f"{args.context_connections:,} connections",
            "",
            "(settled RSS with the connections open − settled RSS before) / connections; each "
            "connection sent one compressed 1 KiB JSON message and read its echo.",
            "",
            "| backend | context kept | offer | B/conn (median) | min–max | over `none` |",
            "|---|---|---|---:|---:|---:|",
        ]
        for backend in args.memory_backends:
            base = med([r["per_conn"] for r in context.get((backend, "none"), [])])
            for variant, (_, offer, _, _) in CONTEXT.items():
                runs = context.get((backend, variant), [])
                if not runs:
                    continue
                values = [r["per_conn"] for r in runs]
                over = f"{med(values) - base:+,.0f}" if base is not None else "–"
                lines.append(f"| {backend} | {variant} | `{offer}` | {med(values):,.0f} | "
                             f"{min(values):,.0f}–{max(values):,.0f} | {over} |")
        lines += ["", "Raw runs (B per connection):", ""]
        for (backend, variant), runs in context.items():
            lines.append(f"- {backend} {variant}: " + ", ".join(f"{r['per_conn']:,.0f}" for r in runs))
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (default 5)")
    parser.add_argument("--duration", type=float, default=5, help="measured seconds per CPU run (default 5)")
    parser.add_argument("--backends", default="uring,epoll", help="comma-separated (default uring,epoll)")
    parser.add_argument("--scenarios", default="cpu,idle,context", help="comma-separated: cpu, idle, context")
    parser.add_argument("--idle-connections", type=int, default=9000)
    parser.add_argument("--idle-repeats", type=int, help="repeats of the idle scenario (default --repeats)")
    parser.add_argument("--memory-backends", help="backends of the idle and context scenarios (default --backends)")
    parser.add_argument("--context-repeats", type=int, help="repeats of the context scenario (default --repeats)")
    parser.add_argument("--context-connections", type=int, default=2000)
    parser.add_argument("--held-share", type=int, default=40, metavar="PCT",
                        help="hold the server to PCT%% of CPU 1 in the cpu scenario (default 40)")
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "deflate-cost.md"))
    args = parser.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.memory_backends = ([b.strip() for b in args.memory_backends.split(",") if b.strip()]
                            if args.memory_backends else args.backends)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [b for b in args.backends + args.memory_backends if b not in ("uring", "epoll")]
    unknown += [s for s in args.scenarios if s not in ("cpu", "idle", "context")]
    if unknown:
        sys.exit(f"unknown backend or scenario: {', '.join(unknown)}")
    for binary in (ME.SERVER, ME.LOADGEN):
        if not os.path.exists(binary):
            sys.exit(f"missing {binary}: cargo build --release -p ringecho -p loadgen")
    os.sched_setaffinity(0, {int(ME.LOAD_CPU)})
    # The context client holds --context-connections sockets itself.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = time.time()

    def log(text):
        print(f"[{time.time() - started:6.0f} s] {text}", flush=True)

    cpu, idle, context = {}, {}, {}

    def report():
        # After every scenario, so a run cut short keeps what it measured.
        write_report(args.out, args, cpu, idle, context, time.time() - started)
        print(f"wrote {args.out}", flush=True)

    held = ME.HeldCore(args.held_share) if args.held_share else None
    if held:
        held.create()
    try:
        if "cpu" in args.scenarios:
            cpu = measure_cpu(args.backends, args.repeats, args.duration, held, log)
            report()
    finally:
        if held:
            held.remove()
    if "idle" in args.scenarios:
        idle = measure_idle(args.memory_backends, args.idle_repeats or args.repeats, args.idle_connections, log)
        report()
    if "context" in args.scenarios:
        context = measure_context(args.memory_backends, args.context_repeats or args.repeats,
                                  args.context_connections, log)
        report()


if __name__ == "__main__":
    main()
