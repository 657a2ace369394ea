#!/usr/bin/env python3
"""Side-by-side measurement of the ringecho engine against its peers and the floor.

Servers (`--servers`, comma-separated keys, default all):

- `ringecho-uring`, `ringecho-epoll`: release `ringecho --io uring|epoll`, one
  worker, keep-alive pings off;
- `fws_echo`: the upstream fastwebsockets echo example on a tokio
  current-thread runtime (bench's peer; built here when missing);
- `c-uring`, `c-epoll`: the C floor, bench/floor/floor.c (`floor uring|epoll
  PORT`), built here into target/floor/ when missing or older than the source
  (`floor`, 4096 x 4 KiB buffers, and `floor-32k`, 2048 x 32 KiB buffers that
  hold a whole 16 KiB frame, for the 16 KiB cases; installs liburing-dev with
  apt-get when its header is missing).

Every server is pinned to CPU 1 and started fresh for every point; loadgen is
pinned to CPU 0 and only ever targets 127.0.0.1, with a bounded duration (it
stops by itself). Within a repeat the servers take turns, and the order rotates
from repeat to repeat (interleaved, round-robin), so host drift hits them alike.
Scenarios (`--scenarios`, default `fixed,shooter,closed-200x16k,closed-500x16k,
closed-100x20,concurrent,idle`; `closed-100x1k` and `closed-50x64k` on request):

- `fixed`: 100 conns x 500 Hz x 20 B open loop (`-m open -r 500 -s 20`): server
  CPU us per echo, and syscalls per echo (`perf stat -e raw_syscalls:sys_enter
  -p PID` over a second, separate loadgen run on the same server, so the
  tracepoint's cost stays out of the CPU figure);
- `shooter`: loadgen `--preset shooter-128hz` (200 conns x 128 Hz x 18-64 B,
  open loop): server CPU us per echo;
- `closed-200x16k`, `closed-500x16k`, `closed-100x20` (and `closed-100x1k`,
  `closed-50x64k`): closed-loop msg/s and server CPU us per echo, each server
  held to `--held-share` percent of its core (default 40) by a cgroup v1 CPU
  quota so that the client, on a whole core, is never the bottleneck: msg/s
  then ranks the servers by what they do with the same CPU;
- `concurrent`: ringecho uring and epoll (plus `--baseline` builds) running at
  the same time on CPU 1, each at 100 x 250 Hz x 20 B from its own loadgen;
  per-run ratios to epoll;
- `idle`: server RSS per idle WebSocket at 9,000 idle connections (not for
  the C floor), two ways: "warm" (a fresh server first opens and closes
  2,000 WebSockets that send 10 Hz x 20 B, so fixed per-worker pools such as
  the receive-buffer ring are touched; baseline RSS taken after they closed)
  and "cold" (a separate fresh server, baseline RSS right after start); the
  connections open in two halves, each RSS read once it has settled, which
  also gives the marginal cost of the second half.

Server CPU is utime+stime from /proc/PID/stat over the measured loadgen run
(after a separate 1.5 s warm-up run on the same server), divided by the echoes
*loadgen* received, the same count for every server. Every row also gives the
server's and the client's CPU as percent of a core over that run; a row whose
client was above 90% of its core measures the client: it is marked
client-bound and not ranked.

Usage: scripts/measure-engine.py [--repeats 5] [--duration 5] [--servers KEYS]
                                 [--scenarios NAMES] [--held-share 40]
                                 [--quick] [--no-syscalls]
                                 [--ring-sizes 128,1024,4096] [--baseline LABEL=PATH]
                                 [--build LABEL=PATH] [--no-build]
                                 [--out results/engine-io.md]
`--build before=PATH` adds a second ringecho build (both backends) to every
scenario, side by side with this tree's, for a before/after comparison.
It runs `cargo build --release` for ringecho, loadgen and fws_echo first (a
no-op when they are up to date) and builds the C floor with make. Run it
alone on the machine (other work on the two CPUs shows in every figure), for
example under a lock that builds also take: flock /tmp/ringecho-measure.lock
scripts/measure-engine.py. Hand-written notes after the NOTES_MARKER line of
the output file are kept.

Nothing here runs under a real-time policy. On Linux a SCHED_FIFO process
that needs more than sched_rt_runtime_us of every sched_rt_period_us (950 ms
of each second by default) is stopped for the rest of the second: loadgen at
100 x 500 Hz x 20 B needs about 90% of its core, was stopped for up to 50 ms
once a second, and every tick due in that gap counted its wait (the
coordinated-omission correction), which put the corrected p99 at 32-35 ms
for every server (results/engine-io.md, notes). A CPU quota (the held core)
does not apply to real-time processes either.
"""

import argparse
import collections
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(ROOT, "target", "release", "ringecho")
LOADGEN = os.environ.get("LOADGEN", os.path.join(ROOT, "target", "release", "loadgen"))
FWS_ECHO = os.environ.get("FWS_ECHO", os.path.join(ROOT, "target", "release", "fws_echo"))
FLOOR_DIR = os.path.join(ROOT, "target", "floor")
FLOOR_SRC = os.path.join(ROOT, "bench", "floor", "floor.c")
# The default build and the one for 16 KiB frames (bench/floor/Makefile).
FLOOR_BUILDS = ["floor", "floor-32k"]
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SERVER_CPU, LOAD_CPU = "1", "0"
SYSCALL_EVENT = "raw_syscalls:sys_enter"


EXTRA_SERVER_ARGS = []
NOTES_MARKER = "<!-- hand-written notes below: kept when measure-engine.py rewrites the tables -->"
LISTENING = re.compile(r"listening on http://([0-9.]+:\d+)")
# The floor's last line: how many receives ended inside a frame (and were copied).
FLOOR_COPIED = re.compile(r"receives copied[^:]*: (\d+)")


# ------------------------------------------------------------------ servers

def watch_stderr(proc):
    """Reads the server's stderr for its whole life (a full pipe would stall
    it) into proc.stderr_tail; returns (event, found) where found["addr"] is
    the address of the first `listening on http://ADDR` line."""
    tail = collections.deque(maxlen=40)
    found = {}
    ready = threading.Event()

    def reader():
        for line in proc.stderr:
            tail.append(line.rstrip())
            if not ready.is_set():
                match = LISTENING.search(line)
                if match:
                    found["addr"] = match.group(1)
                    ready.set()
        ready.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    proc.stderr_tail, proc.stderr_thread = tail, thread
    return ready, found


class HeldCore:
    """A cgroup v1 CPU group that holds a server to `share` percent of one
    core: `cpu.cfs_quota_us` = share x 100 per `cpu.cfs_period_us` 10000.
    A server started while the group is active (`with group:`) enters it
    before its first instruction, so the client, on a whole core of its
    own, never becomes the bottleneck and msg/s ranks servers by what they
    do with the same CPU. The quota binds only SCHED_OTHER tasks, so held
    servers are started under SCHED_OTHER whatever the caller's policy."""

    ROOT = "/sys/fs/cgroup/cpu"
    PERIOD_US = 10000

    def __init__(self, share):
        self.share = share
        self.path = os.path.join(self.ROOT, f"ringecho-held-{os.getpid()}")

    def create(self):
        """Makes the group; exits with what to do when cgroup v1's cpu
        controller is missing or not writable."""
        why = None
        if not os.path.isfile(os.path.join(self.ROOT, "cpu.cfs_quota_us")):
            why = f"no cgroup v1 cpu controller at {self.ROOT}"
        else:
            try:
                os.makedirs(self.path, exist_ok=True)
                with open(os.path.join(self.path, "cpu.cfs_period_us"), "w") as f:
                    f.write(str(self.PERIOD_US))
                with open(os.path.join(self.path, "cpu.cfs_quota_us"), "w") as f:
                    f.write(str(self.PERIOD_US * self.share // 100))
            except OSError as error:
                why = f"cannot set up {self.path}: {error}"
        if why:
            sys.exit(f"--held-share {self.share}: {why} (it needs root and cgroup v1's cpu controller; "
                     "--held-share 0 runs the closed-loop scenarios unheld, where a saturated client "
                     "ranks nothing)")

    def remove(self):
        """Removes the group (its servers have exited by now)."""
        try:
            os.rmdir(self.path)
        except OSError:
            pass

    def wrap(self, cmd):
        """`cmd`, entering the group and SCHED_OTHER before it execs."""
        procs = os.path.join(self.path, "cgroup.procs")
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, "chrt", "-o", "0", *cmd]

    def __enter__(self):
        global SPAWN_GROUP
        SPAWN_GROUP = self
        return self

    def __exit__(self, *exc):
        global SPAWN_GROUP
        SPAWN_GROUP = None


# The HeldCore that servers started now enter (set by `with group:`).
SPAWN_GROUP = None


def spawn_pinned(cmd, env=None):
    cmd = ["taskset", "-c", SERVER_CPU, *cmd]
    if SPAWN_GROUP is not None:
        cmd = SPAWN_GROUP.wrap(cmd)
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NO_COLOR="1", **(env or {})))


def wait_listening(proc, what):
    ready, found = watch_stderr(proc)
    ready.wait(10)
    if "addr" in found:
        return found["addr"]
    proc.kill()
    proc.wait()
    proc.stderr_thread.join(2)
    sys.exit(f"{what} did not start; its stderr:\n" + "\n".join(proc.stderr_tail))


def start_server(backend, extra=(), binary=None):
    """ringecho (`binary`, default SERVER at call time) with one worker on
    `backend`, keep-alive off; returns (proc, "127.0.0.1:PORT")."""
    binary = binary or SERVER
    proc = spawn_pinned([binary, "--listen", "127.0.0.1:0", "--threads", "1", "--io", backend,
                         "--keep-alive-interval", "0", *EXTRA_SERVER_ARGS, *extra],
                        env={"RUST_LOG": "info"})
    return proc, wait_listening(proc, f"ringecho ({backend})")


def start_peer(binary):
    """A bench peer (fws_echo) on a free port."""
    proc = spawn_pinned([binary, "--listen", "127.0.0.1:0"])
    return proc, wait_listening(proc, os.path.basename(binary))


def start_floor(binary, mode):
    """The C floor `floor uring|epoll 0` on a free port of 127.0.0.1."""
    proc = spawn_pinned([binary, mode, "0"])
    return proc, wait_listening(proc, f"C floor {os.path.basename(binary)} {mode}")


def stop_server(proc):
    """SIGTERM, then kill after 15 s; returns the server's last stderr lines."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    thread = getattr(proc, "stderr_thread", None)
    if thread:
        thread.join(2)
    return list(getattr(proc, "stderr_tail", []))


class Server:
    """One server of the comparison; start(big) -> (proc, addr), where big
    asks for the build for 16 KiB messages (only the C floor has one)."""

    def __init__(self, key, label, start, idle=True):
        self.key, self.label, self._start, self.idle = key, label, start, idle

    def start(self, big=False):
        return self._start(big)


def floor_binary(big):
    return os.path.join(FLOOR_DIR, FLOOR_BUILDS[1 if big else 0])


SERVERS = [
    Server("ringecho-uring", "ringecho io_uring", lambda big: start_server("uring")),
    Server("ringecho-epoll", "ringecho epoll", lambda big: start_server("epoll")),
    Server("fws_echo", "fastwebsockets example (fws_echo)", lambda big: start_peer(FWS_ECHO)),
    Server("c-uring", "C floor io_uring", lambda big: start_floor(floor_binary(big), "uring"), idle=False),
    Server("c-epoll", "C floor epoll", lambda big: start_floor(floor_binary(big), "epoll"), idle=False),
]
# Ratios are given to these, when they ran: (key, column title).
REFERENCES = [("fws_echo", "/ fws_echo"), ("ringecho-epoll", "/ ringecho epoll"), ("c-uring", "/ C io_uring")]


# ------------------------------------------------------------------ builds

def run_logged(cmd, **kw):
    print("+ " + shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def apt_install(packages):
    if not shutil.which("apt-get"):
        sys.exit(f"need {' '.join(packages)} and there is no apt-get")
    run_logged(["apt-get", "update", "-q"])
    run_logged(["apt-get", "install", "-y", "-q", *packages], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def ensure_liburing():
    """The liburing header the floor needs (apt-get install liburing-dev when missing)."""
    if not os.path.exists("/usr/include/liburing.h"):
        apt_install(["liburing-dev"])


def ensure_floor():
    """target/floor/floor and floor-32k, (re)built by bench/floor/Makefile when
    missing or older than the source."""
    ensure_liburing()
    run_logged(["make", "--no-print-directory", "-s", "-C", os.path.dirname(FLOOR_SRC), f"OUT={FLOOR_DIR}"])


def ensure_builds(fws_echo):
    """`cargo build --release` of ringecho and loadgen, and of fws_echo when
    it is measured (no-ops when up to date, so a measurement never runs stale
    binaries); binaries named by the LOADGEN or FWS_ECHO variables are used
    as they are."""
    run_logged(["cargo", "build", "--release", "-p", "ringecho"]
               + ([] if "LOADGEN" in os.environ else ["-p", "loadgen"]), cwd=ROOT)
    if fws_echo and "FWS_ECHO" not in os.environ:
        run_logged(["cargo", "build", "--release", "-p", "bench", "--bin", "fws_echo"], cwd=ROOT)


def perf_status():
    """None when `perf stat -e raw_syscalls:sys_enter` works (installing
    linux-perf if perf is missing), else why not."""
    if not shutil.which("perf"):
        try:
            apt_install(["linux-perf"])
        except (subprocess.CalledProcessError, SystemExit) as e:
            return f"perf is missing and installing linux-perf failed ({e})"
    if not shutil.which("perf"):
        return "perf is missing"
    probe = subprocess.run(["perf", "stat", "-x,", "-e", SYSCALL_EVENT, "--", "true"],
                           capture_output=True, text=True)
    if probe.returncode == 0 and parse_perf_count(probe.stderr) is not None:
        return None
    last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
    return f"`perf stat -e {SYSCALL_EVENT}` does not work here: {last}"


def parse_perf_count(text):
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[2] == SYSCALL_EVENT and fields[0].strip().isdigit():
            return int(fields[0])
    return None


# ------------------------------------------------------------------ probes

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def count_sockets(pid):
    """Socket fds the process holds (works for every server, /healthz or not)."""
    n = 0
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n


def loadgen_command(addr, args, duration, warmup, json_out):
    assert addr.startswith("127.0.0.1:"), addr
    return ["taskset", "-c", LOAD_CPU, LOADGEN, f"ws://{addr}/ws", "--json", json_out, "--quiet",
            "--duration", f"{duration:.3f}", "--warmup", f"{warmup:.3f}", *args]


def read_report(path, returncode, args):
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        sys.exit(f"loadgen wrote no report (exit {returncode}): {shlex.join(args)}")
    if returncode != 0:
        print(f"  warning: loadgen exit {returncode}: {report.get('exit', {}).get('message', '')}", flush=True)
    warning = loadgen_warning(report)
    if warning:
        print(f"  WARNING: {warning}", flush=True)
    return report


def loadgen_warning(report):
    """loadgen's own warning that its busiest thread was above 90% of its
    core (the run then measured loadgen, not the server), or None."""
    return (report.get("client") or {}).get("warning")


def wait_with_usage(proc, timeout):
    """Waits for `proc` (killed after `timeout` s); returns (exit code, its
    CPU seconds, utime+stime from wait4, so every thread it ran counts)."""
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def loadgen(addr, args, duration, warmup):
    """One bounded loadgen run to completion; returns its JSON report, with
    the client's own CPU over its life added as report["client_cpu"]
    (seconds, wall seconds)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = loadgen_command(addr, args, duration, warmup, out.name)
        started = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        code, cpu = wait_with_usage(proc, duration + warmup + 120)
        report = read_report(out.name, code, cmd)
        report["client_cpu"] = (cpu, time.time() - started)
        return report


def messages(report):
    return report["messages"]


# ------------------------------------------------------------------ measurements

WARM = (1.0, 0.5)  # duration, warmup of the unmeasured run before each measured one


def measure_load(server, args, duration, big=False, syscalls=False, held=None):
    """Fresh server (inside the HeldCore `held`, if given); a warm-up
    loadgen run; then the measured run: server CPU over it / loadgen's
    echoes, and the server's and the client's CPU as percent of a core over
    the client's whole measured run. With syscalls, a further run on the
    same server under `perf stat -e raw_syscalls:sys_enter -p PID`."""
    if held is not None:
        with held:
            proc, addr = server.start(big)
    else:
        proc, addr = server.start(big)
    result = {}
    try:
        loadgen(addr, args, *WARM)
        cpu0 = cpu_seconds(proc.pid)
        report = loadgen(addr, args, duration, 0)
        cpu = cpu_seconds(proc.pid) - cpu0
        client_cpu, wall = report["client_cpu"]
        result = {"rate": report["msgs_per_sec"], "echoes": messages(report),
                  "cpu_us": cpu * 1e6 / max(messages(report), 1),
                  "server_pct": 100 * cpu / max(wall, 1e-9),
                  "client_pct": 100 * client_cpu / max(wall, 1e-9),
                  "p99": report["latency_us"]["corrected"]["p99"],
                  "errors": report["exit"]["code"] != 0,
                  "loadgen_warning": loadgen_warning(report)}
        if syscalls:
            result.update(syscalls_per_echo(proc.pid, addr, args, duration))
    finally:
        tail = stop_server(proc)
    copied = [m for m in map(FLOOR_COPIED.search, tail) if m]
    if copied:
        result["staged"] = int(copied[-1].group(1))
    return result


def syscalls_per_echo(pid, addr, args, duration):
    """perf counts the server's syscalls from before loadgen starts until
    after it exits; divided by the echoes loadgen received (warmup 0, so the
    whole run is measured). The count also holds the connects and closes of
    the run's connections (~10 syscalls per connection, well under 1% here)."""
    perf = subprocess.Popen(["taskset", "-c", LOAD_CPU, "perf", "stat", "-x,", "-e", SYSCALL_EVENT,
                             "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    if perf.poll() is not None:
        return {"syscalls_error": (perf.stderr.read().strip().splitlines() or ["perf exited"])[-1]}
    try:
        report = loadgen(addr, args, duration, 0)
        time.sleep(0.1)
    finally:
        perf.send_signal(signal.SIGINT)
        try:
            _, err = perf.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            perf.kill()
            _, err = perf.communicate()
    count = parse_perf_count(err)
    if count is None:
        return {"syscalls_error": (err.strip().splitlines() or ["no perf output"])[-1]}
    return {"syscalls": count / max(messages(report), 1), "syscalls_raw": count,
            "syscalls_echoes": messages(report)}


def throughput(backend, conns, size, duration, held=None):
    """ringecho `backend`, closed loop (held by the HeldCore `held`, if
    given): (msg/s, server CPU-us per message, client CPU % of its core).
    (Also used by scripts/measure-metrics-cost.py, which sets SERVER first.)"""
    server = Server(backend, backend, lambda big: start_server(backend))
    r = measure_load(server, ["-c", str(conns), "-s", str(size), "--mode", "closed"], duration, held=held)
    return r["rate"], r["cpu_us"], r["client_pct"]


def concurrent_fixed_rate_cpu(servers, duration):
    """One run of every (label, backend, binary) server at once on CPU 1,
    each loaded by its own open-loop loadgen on CPU 0 at 100 x 250 Hz x 20 B.
    Returns ({label: server CPU-us per message}, the loadgens' CPU together
    as percent of their core)."""
    args = ["-c", "100", "-s", "20", "--mode", "open", "--rate", "250"]
    running = []
    try:
        for label, backend, binary in servers:
            proc, addr = start_server(backend, binary=binary)
            running.append((label, proc, addr))

        def load_all(seconds, warmup):
            outs = {label: tempfile.NamedTemporaryFile(suffix=".json") for label, _, _ in running}
            cmds = {label: loadgen_command(addr, args, seconds, warmup, outs[label].name)
                    for label, _, addr in running}
            started = time.time()
            procs = {label: subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for label, cmd in cmds.items()}
            reports, client_cpu = {}, 0.0
            for label, p in procs.items():
                code, cpu = wait_with_usage(p, seconds + warmup + 120)
                client_cpu += cpu
                reports[label] = read_report(outs[label].name, code, cmds[label])
                outs[label].close()
            return reports, 100 * client_cpu / max(time.time() - started, 1e-9)

        load_all(*WARM)
        cpu0 = {label: cpu_seconds(proc.pid) for label, proc, _ in running}
        reports, client_pct = load_all(duration, 0)
        per_msg = {label: (cpu_seconds(proc.pid) - cpu0[label]) * 1e6 / max(messages(reports[label]), 1)
                   for label, proc, _ in running}
        return per_msg, client_pct
    finally:
        for _, proc, _ in running:
            stop_server(proc)


IDLE = {"connections": 9000, "warm_connections": 2000, "connect_rate": 3000}
# Settled: the RSS moved by less than this over SETTLE_SPAN (or SETTLE_MAX passed).
SETTLE_BYTES, SETTLE_SPAN, SETTLE_MAX = 32 * 1024, 2.0, 8.0


def settled_rss(pid):
    """The RSS once it has stopped moving: sampled every 250 ms until it
    changed by less than SETTLE_BYTES over SETTLE_SPAN seconds (at most
    SETTLE_MAX). Handshakes in flight, a receive ring's cold buffers still
    to be given back, or an allocator's pending purge move it for a moment
    after a burst of connects; an idle connection's cost is what stays."""
    samples = [(time.time(), rss_bytes(pid))]
    deadline = samples[0][0] + SETTLE_MAX
    while time.time() < deadline:
        time.sleep(0.25)
        samples.append((time.time(), rss_bytes(pid)))
        window = [r for t, r in samples if t >= samples[-1][0] - SETTLE_SPAN]
        if samples[-1][0] - samples[0][0] >= SETTLE_SPAN and max(window) - min(window) < SETTLE_BYTES:
            break
    return samples[-1][1]


def open_idle(addr, count, hold, out):
    """Starts loadgen holding `count` WebSockets that stay idle (open loop at
    1e-5 Hz: loadgen spreads first ticks over 1e5 s / count, so only the
    first one or two ever send) for up to `hold` seconds."""
    return subprocess.Popen(
        loadgen_command(addr, ["-c", str(count), "--connect-rate", str(IDLE["connect_rate"]),
                               "--mode", "open", "--rate", "0.00001", "-s", "20"], hold, 0, out),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def idle_rss(server, conns, warm):
    """A fresh server; with `warm`, first `warm_connections` WebSockets send
    10 Hz x 20 B for ~1.5 s and close; the settled RSS is the baseline. Then
    two loadgens open `conns` idle WebSockets in two halves; once each half
    is open the settled RSS is read. Returns bytes per open connection over
    the baseline, the marginal cost between the halves, and more."""
    proc, addr = server.start(False)
    loadgens = []
    try:
        time.sleep(0.5)
        sockets0 = count_sockets(proc.pid)
        fresh = rss_bytes(proc.pid)
        if warm:
            loadgen(addr, ["-c", str(IDLE["warm_connections"]), "--connect-rate", str(IDLE["connect_rate"]),
                           "--mode", "open", "--rate", "10", "-s", "20"],
                    IDLE["warm_connections"] / IDLE["connect_rate"] + 1, 0)
            deadline = time.time() + 10
            while time.time() < deadline and count_sockets(proc.pid) > sockets0:
                time.sleep(0.1)
        base = settled_rss(proc.pid) if warm else fresh
        hold = conns / IDLE["connect_rate"] + 2 * SETTLE_MAX + 20
        steps = []
        with tempfile.TemporaryDirectory() as tmp:
            for i, count in enumerate((conns // 2, conns - conns // 2)):
                loadgens.append(open_idle(addr, count, hold, os.path.join(tmp, f"{i}.json")))
                target = conns // 2 if i == 0 else conns
                deadline = time.time() + count / IDLE["connect_rate"] + 20
                while time.time() < deadline and count_sockets(proc.pid) - sockets0 < target:
                    if any(lg.poll() is not None for lg in loadgens):
                        break
                    time.sleep(0.1)
                rss = settled_rss(proc.pid)
                steps.append((count_sockets(proc.pid) - sockets0, rss))
    finally:
        for lg in loadgens:
            if lg.poll() is None:
                lg.kill()
            lg.wait()
        stop_server(proc)
    (half_open, at_half), (peak_open, at_peak) = steps
    # The marginal cost: RSS growth from the first half to all, free of
    # one-off pools and of memory the warm-up left in the allocator.
    slope = (at_peak - at_half) / (peak_open - half_open) if peak_open > half_open else None
    return {"per_conn": (at_peak - base) / max(peak_open, 1), "open": peak_open,
            "base": base, "fresh": fresh, "peak": at_peak, "slope": slope}


# ------------------------------------------------------------------ scenarios

SCENARIOS = {
    "fixed": {"kind": "cpu", "syscalls": True, "offered": 50000,
              "title": "100 conns x 500 Hz x 20 B, open loop (50k echoes/s offered)",
              "args": ["-c", "100", "-s", "20", "--mode", "open", "--rate", "500"]},
    "shooter": {"kind": "cpu", "offered": 25600,
                "title": "preset shooter-128hz (200 conns x 128 Hz x 18-64 B, open loop, 25.6k echoes/s offered)",
                "args": ["--preset", "shooter-128hz"]},
    "closed-200x16k": {"kind": "closed", "big": True, "title": "200 conns x 16 KiB, closed loop, 1 in flight",
                       "args": ["-c", "200", "-s", "16384", "--mode", "closed"]},
    "closed-500x16k": {"kind": "closed", "big": True, "title": "500 conns x 16 KiB, closed loop, 1 in flight",
                       "args": ["-c", "500", "-s", "16384", "--mode", "closed"]},
    "closed-100x20": {"kind": "closed", "title": "100 conns x 20 B, closed loop, 1 in flight",
                      "args": ["-c", "100", "-s", "20", "--mode", "closed"]},
    "closed-100x1k": {"kind": "closed", "title": "100 conns x 1 KiB, closed loop, 1 in flight",
                      "args": ["-c", "100", "-s", "1024", "--mode", "closed"]},
    "closed-50x64k": {"kind": "closed", "big": True, "title": "50 conns x 64 KiB, closed loop, 1 in flight",
                      "args": ["-c", "50", "-s", "65536", "--mode", "closed"]},
    "concurrent": {"kind": "concurrent"},
    "idle": {"kind": "idle"},
}
DEFAULT_SCENARIOS = "fixed,shooter,closed-200x16k,closed-500x16k,closed-100x20,concurrent,idle"
# A client above this share of its core measures itself: its row is marked
# client-bound and ranks nothing.
CLIENT_BOUND_PCT = 90


def med(values):
    return statistics.median(values) if values else None


def fmt(value, spec):
    return "–" if value is None else format(value, spec)


def client_bound(runs):
    """Whether the client's median CPU over these runs was above
    CLIENT_BOUND_PCT of its core: the row then measures the client."""
    pct = med([r["client_pct"] for r in runs if "client_pct" in r])
    return pct is not None and pct > CLIENT_BOUND_PCT


def ratio_cells(results, key, field, servers):
    """Ratios of this server's median to each reference's median; none for
    or against a client-bound row, which ranks nothing."""
    if client_bound(results[key]):
        return ["client-bound"] * len(REFERENCES)
    mine = med([r[field] for r in results[key] if field in r])
    cells = []
    for ref, _ in REFERENCES:
        theirs = med([r[field] for r in results.get(ref, []) if field in r])
        ranked = ref in results and not client_bound(results[ref])
        cells.append(f"{mine / theirs:.2f}x" if mine is not None and theirs and ranked else "–")
    return cells


def cpu_cells(runs):
    """The server's and the client's CPU, percent of a core (medians)."""
    server = med([r["server_pct"] for r in runs if "server_pct" in r])
    client = med([r["client_pct"] for r in runs if "client_pct" in r])
    return [fmt(server, ".0f") + ("%" if server is not None else ""),
            fmt(client, ".0f") + ("%" if client is not None else "")
            + (" **client-bound**" if client_bound(runs) else "")]


def ranks(results, servers, field, best_high):
    """{server key: rank by the median of `field`} over the rows that are
    not client-bound (1 is best)."""
    ranked = [s.key for s in servers if results.get(s.key) and not client_bound(results[s.key])]
    ranked.sort(key=lambda k: med([r[field] for r in results[k]]), reverse=best_high)
    return {k: i + 1 for i, k in enumerate(ranked)}


def range_cell(values, spec):
    return f"{format(min(values), spec)}–{format(max(values), spec)}" if values else "–"


def link_to(path, from_file):
    """A relative Markdown link target to `path` from the file `from_file`."""
    return os.path.relpath(path, os.path.dirname(os.path.abspath(from_file)))


def machine_line():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores (nproc), kernel `{platform.release()}`, {model}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[1:]))
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 5)")
    parser.add_argument("--duration", type=float, help="measured seconds per run (default 5)")
    parser.add_argument("--servers", default=",".join(s.key for s in SERVERS),
                        help="comma-separated: " + ", ".join(s.key for s in SERVERS))
    parser.add_argument("--scenarios", default=DEFAULT_SCENARIOS,
                        help="comma-separated: " + ", ".join(SCENARIOS) + f" (default {DEFAULT_SCENARIOS})")
    parser.add_argument("--idle-connections", type=int, help=f"default {IDLE['connections']}")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 repeat, 1 s runs, 0.7 s warm-ups, 500 idle connections (200 warm-up)")
    parser.add_argument("--held-share", type=int, default=40, metavar="PCT",
                        help="hold each server to PCT%% of its core (cgroup v1 CPU quota, PCT x 100 us per "
                             "10 ms) in the closed-loop scenarios, so the client never saturates first and "
                             "msg/s ranks capacity (default 40; 0 runs them unheld)")
    parser.add_argument("--no-syscalls", action="store_true", help="skip the perf syscall count")
    parser.add_argument("--out", default=os.path.join(ROOT, "results", "engine-io.md"))
    parser.add_argument("--ring-sizes", default="",
                        help="also sweep --receive-buffers for uring, e.g. 128,1024,4096")
    parser.add_argument("--baseline", action="append", default=[], metavar="LABEL=PATH",
                        help="another ringecho binary for the concurrent fixed-rate scenario (--io uring)")
    parser.add_argument("--build", action="append", default=[], metavar="LABEL=PATH",
                        help="another ringecho binary measured as two more servers, LABEL-uring and "
                             "LABEL-epoll, in every scenario (say, the commit before a change), with "
                             "ratio columns against them")
    parser.add_argument("--no-build", action="store_true",
                        help="use the release binaries as they are (default: cargo build --release first)")
    args = parser.parse_args()
    # --quick only changes what was not given explicitly.
    quick = {"repeats": 1, "duration": 1, "idle_connections": 500}
    full = {"repeats": 5, "duration": 5, "idle_connections": IDLE["connections"]}
    for field in quick:
        if getattr(args, field) is None:
            setattr(args, field, (quick if args.quick else full)[field])
    if args.quick:
        IDLE["warm_connections"] = 200
        global WARM
        WARM = (0.5, 0.2)

    if not 0 <= args.held_share <= 100:
        sys.exit(f"--held-share wants a percentage from 0 (unheld) to 100, got {args.held_share}")
    keys = [k.strip() for k in args.servers.split(",") if k.strip()]
    unknown = [k for k in keys if k not in {s.key for s in SERVERS}]
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown += [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown server or scenario: {', '.join(unknown)}")
    servers = [s for s in SERVERS if s.key in keys]
    baselines = []
    for spec in args.baseline:
        label, _, path = spec.partition("=")
        if not label or not os.path.exists(path):
            sys.exit(f"--baseline wants LABEL=PATH to an existing binary, got {spec!r}")
        baselines.append((label, "uring", path))
    for spec in args.build:
        label, _, path = spec.partition("=")
        if not label or not os.path.exists(path):
            sys.exit(f"--build wants LABEL=PATH to an existing binary, got {spec!r}")
        for backend, name in (("uring", "io_uring"), ("epoll", "epoll")):
            servers.append(Server(f"{label}-{backend}", f"ringecho {name} ({label})",
                                  lambda big, b=backend, p=path: start_server(b, binary=p)))
            REFERENCES.append((f"{label}-{backend}", f"/ {label} {name}"))

    # Everything this script does itself stays off the server's core.
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    if not args.no_build:
        ensure_builds(any(s.key == "fws_echo" for s in servers))
    for binary in (SERVER, LOADGEN) + ((FWS_ECHO,) if any(s.key == "fws_echo" for s in servers) else ()):
        if not os.path.exists(binary):
            sys.exit(f"missing {binary}: run cargo build --release -p ringecho -p loadgen -p bench")
    if any(s.key.startswith("c-") for s in servers):
        ensure_floor()
    syscall_note = "skipped (--no-syscalls)" if args.no_syscalls else perf_status()
    if "fixed" in scenarios and syscall_note:
        print(f"syscalls per echo: {syscall_note}", flush=True)

    held = None
    if args.held_share and (args.ring_sizes or any(SCENARIOS[n]["kind"] == "closed" for n in scenarios)):
        held = HeldCore(args.held_share)
        held.create()
    try:
        run_all(args, scenarios, servers, baselines, syscall_note, held)
    finally:
        if held is not None:
            held.remove()


def run_all(args, scenarios, servers, baselines, syscall_note, held):
    """Measures every scenario and writes the report."""
    started = time.time()
    plan = []  # (scenario, repeat, server) points, for the progress count
    for name in scenarios:
        kind = SCENARIOS[name]["kind"]
        if kind in ("cpu", "closed"):
            plan += [1] * args.repeats * len(servers)
        elif kind == "idle":
            plan += [1] * args.repeats * 2 * sum(1 for s in servers if s.idle)
        elif kind == "concurrent":
            plan += [1] * args.repeats
    total, done = len(plan), 0

    def progress(text):
        nonlocal done
        done += 1
        print(f"[{done}/{total} {time.time() - started:5.0f}s] {text}", flush=True)

    results = {}  # scenario -> server key -> [result dict per repeat]
    concurrent, concurrent_client = {}, []
    for name in scenarios:
        sc = SCENARIOS[name]
        if sc["kind"] in ("cpu", "closed"):
            results[name] = {s.key: [] for s in servers}
            for rep in range(args.repeats):
                order = servers[rep % len(servers):] + servers[:rep % len(servers)]
                for s in order:
                    want_sys = sc.get("syscalls", False) and not syscall_note
                    r = measure_load(s, sc["args"], args.duration, big=sc.get("big", False), syscalls=want_sys,
                                     held=held if sc["kind"] == "closed" else None)
                    results[name][s.key].append(r)
                    extra = ""
                    if want_sys:
                        extra = (f", {r['syscalls']:.2f} syscalls/echo" if "syscalls" in r
                                 else f", syscalls: {r.get('syscalls_error')}")
                    if "staged" in r:
                        extra += f", {r['staged']} receives copied"
                    if "offered" in sc and r["rate"] < 0.9 * sc["offered"]:
                        extra += f" (BELOW 90% of the offered {sc['offered']:,}/s)"
                    if r["client_pct"] > CLIENT_BOUND_PCT:
                        extra += " (CLIENT-BOUND)"
                    progress(f"{name} repeat {rep + 1}/{args.repeats} {s.key}: {r['rate']:,.0f} msg/s, "
                             f"{r['cpu_us']:.2f} CPU-us/echo, server {r['server_pct']:.0f}% "
                             f"client {r['client_pct']:.0f}% of a core, p99 {r['p99']:.0f} us{extra}"
                             + (" (loadgen reported errors)" if r["errors"] else ""))
        elif sc["kind"] == "concurrent":
            together = [(s.key.split("-")[1], s.key.split("-")[1], SERVER)
                        for s in servers if s.key.startswith("ringecho-")] + baselines
            if not any(label == "epoll" for label, _, _ in together) or len(together) < 2:
                print("concurrent: skipped (needs ringecho-epoll and another ringecho)", flush=True)
                total -= args.repeats
                continue
            concurrent = {label: [] for label, _, _ in together}
            concurrent_client = []
            for rep in range(args.repeats):
                run, client_pct = concurrent_fixed_rate_cpu(together, args.duration)
                for label, value in run.items():
                    concurrent[label].append(value)
                concurrent_client.append(client_pct)
                progress(f"concurrent repeat {rep + 1}/{args.repeats}: "
                         + ", ".join(f"{label} {value:.2f}" for label, value in run.items())
                         + f" CPU-us/msg, loadgens {client_pct:.0f}% of their core")
        elif sc["kind"] == "idle":
            idle_servers = [s for s in servers if s.idle]
            results["idle"] = {s.key: {"warm": [], "cold": []} for s in idle_servers}
            for rep in range(args.repeats):
                order = idle_servers[rep % max(len(idle_servers), 1):] + idle_servers[:rep % max(len(idle_servers), 1)]
                for s in order:
                    for how in (("warm", "cold") if rep % 2 == 0 else ("cold", "warm")):
                        r = idle_rss(s, args.idle_connections, how == "warm")
                        results["idle"][s.key][how].append(r)
                        progress(f"idle repeat {rep + 1}/{args.repeats} {s.key} {how}: {r['per_conn']:,.0f} B/conn "
                                 f"over {r['open']} connections, marginal {fmt(r['slope'], ',.0f')} B/conn "
                                 f"(baseline {r['base'] / 1e6:.1f} MB, "
                                 f"fresh {r['fresh'] / 1e6:.1f} MB)")
    ring_rows = []
    for conns, size in ([(200, 16384), (100, 20)] if args.ring_sizes else []):
        runs = {}
        for i in range(args.repeats):
            for count in ["epoll"] + args.ring_sizes.split(","):
                EXTRA_SERVER_ARGS[:] = [] if count == "epoll" else ["--receive-buffers", count]
                runs.setdefault(count, []).append(throughput("epoll" if count == "epoll" else "uring",
                                                             conns, size, args.duration, held))
                print(f"ring {count} {conns}x{size} run {i + 1}: {runs[count][-1][0]:,.0f} msg/s, "
                      f"{runs[count][-1][1]:.2f} CPU-us/msg, client {runs[count][-1][2]:.0f}%", flush=True)
        EXTRA_SERVER_ARGS[:] = []
        ring_rows.append((f"{conns} x {size} B closed", {
            k: (med([r[0] for r in v]), med([r[1] for r in v]), med([r[2] for r in v])) for k, v in runs.items()}))

    write_report(args, scenarios, servers, results, (concurrent, concurrent_client), baselines, ring_rows,
                 syscall_note, time.time() - started)


def write_report(args, scenarios, servers, results, concurrent, baselines, ring_rows, syscall_note, elapsed):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.split("\n")
    dirty = [line[3:] for line in dirty if line.strip()]
    built = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(os.path.getmtime(SERVER)))
    ref_titles = [title for _, title in REFERENCES]
    lines = [
        "# ringecho engine: io_uring vs epoll, fastwebsockets and the C floor",
        "",
        f"- command: `scripts/measure-engine.py {shlex.join(sys.argv[1:])}`".replace("py `", "py`"),
        f"- commit: `{commit}`" + (f" (+uncommitted changes in {', '.join(dirty[:8])}"
                                   f"{' ...' if len(dirty) > 8 else ''})" if dirty else "")
        + f"; ringecho binary built {built}",
        f"- machine: {machine_line()}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {elapsed / 60:.1f} min",
        f"- each server pinned to CPU {SERVER_CPU} (ringecho: 1 worker, keep-alive off); loadgen on CPU {LOAD_CPU} "
        "(1 thread), 127.0.0.1 only; a fresh server per point",
        f"- {args.repeats} repeats of {args.duration:g} s measured per point (after a {WARM[0] + WARM[1]:g} s "
        "warm-up run on the same server); servers interleaved within each repeat, order rotating by repeat; "
        "figures are medians, ranges are min–max over the repeats; ratios are of the medians",
        "- server CPU per echo: utime+stime (/proc/PID/stat, 10 ms ticks) over the measured run, divided by the "
        "echoes loadgen received (the same count for every server)",
        "- server CPU and client CPU: percent of one core over the client's measured run (the server's from "
        "/proc/PID/stat, the client's utime+stime from wait4, every thread); a row whose client was above "
        f"{CLIENT_BOUND_PCT}% of its core (median) measures the client: it is marked client-bound and not ranked",
        ("- closed loop: each server held to "
         f"{args.held_share}% of its core by a cgroup v1 CPU quota (`cpu.cfs_quota_us` "
         f"{HeldCore.PERIOD_US * args.held_share // 100} per `cpu.cfs_period_us` {HeldCore.PERIOD_US}, "
         "`--held-share`), so the client on a whole core is not the bottleneck and msg/s ranks capacity; "
         "open-loop scenarios run unheld" if args.held_share else
         "- closed loop: servers unheld (`--held-share 0`)"),
        "- servers: " + "; ".join(f"`{s.key}` = {s.label}" for s in servers)
        + (f"; the C floor is [bench/floor/floor.c]({link_to(FLOOR_SRC, args.out)}) built with gcc -O3 -march=native "
           "(`floor-32k`, -DBUF_SIZE=32768 -DBUF_COUNT=2048, for the 16 KiB cases)"
           if any(s.key.startswith("c-") for s in servers) else ""),
        "",
    ]
    for name in scenarios:
        sc = SCENARIOS[name]
        if sc["kind"] not in ("cpu", "closed") or name not in results:
            continue
        res = results[name]
        lines += [f"## {sc['title']}", "", f"loadgen `{shlex.join(sc['args'])}`", ""]
        if sc["kind"] == "cpu":
            with_sys = sc.get("syscalls", False)
            head = ["server", "CPU us/echo", "min–max", *ref_titles, "echoes/s", "p99 us (corrected)",
                    "server CPU", "client CPU"]
            if with_sys:
                head += ["syscalls/echo", "min–max"]
            lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            for s in servers:
                runs = res[s.key]
                cpu = [r["cpu_us"] for r in runs]
                row = [s.label, fmt(med(cpu), ".2f"), range_cell(cpu, ".2f"), *ratio_cells(res, s.key, "cpu_us", servers),
                       fmt(med([r["rate"] for r in runs]), ",.0f"), fmt(med([r["p99"] for r in runs]), ".0f"),
                       *cpu_cells(runs)]
                if with_sys:
                    sysc = [r["syscalls"] for r in runs if "syscalls" in r]
                    row += [fmt(med(sysc), ".2f"), range_cell(sysc, ".2f")]
                lines.append("| " + " | ".join(row) + " |")
            if with_sys:
                lines += ["", "Syscalls per echo: " + (
                    f"not measured: {syscall_note}." if syscall_note else
                    f"`perf stat -e {SYSCALL_EVENT} -p PID` around a separate {args.duration:g} s loadgen run on "
                    "the same server after the CPU run (so the tracepoint's cost stays out of the CPU figure), "
                    "divided by loadgen's echoes in that run; the count includes that run's connects and closes "
                    "(~10 syscalls per connection, under 1% here).")]
        else:
            if args.held_share:
                lines += [f"Each server held to {args.held_share}% of its core (CPU quota); the client on a whole "
                          "core. Rank by msg/s among the rows whose client stayed at or below "
                          f"{CLIENT_BOUND_PCT}% of its core.", ""]
            else:
                lines += ["Servers unheld (`--held-share 0`): a server may use its whole core, so a row ranks "
                          "servers only if its client stayed well below its own core.", ""]
            head = ["server", "msg/s", "min–max", *ref_titles, "CPU us/echo", "min–max", *ref_titles,
                    "server CPU", "client CPU", "rank"]
            lines += ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            rank = ranks(res, servers, "rate", best_high=True)
            for s in servers:
                runs = res[s.key]
                rate = [r["rate"] for r in runs]
                cpu = [r["cpu_us"] for r in runs]
                lines.append("| " + " | ".join([
                    s.label, fmt(med(rate), ",.0f"), range_cell(rate, ",.0f"), *ratio_cells(res, s.key, "rate", servers),
                    fmt(med(cpu), ".2f"), range_cell(cpu, ".2f"), *ratio_cells(res, s.key, "cpu_us", servers),
                    *cpu_cells(runs), str(rank[s.key]) if s.key in rank else "not ranked"]) + " |")
        over = [f"{s.key} repeat {i + 1} ({r['client_pct']:.0f}%)" for s in servers
                for i, r in enumerate(res[s.key]) if r.get("client_pct", 0) > CLIENT_BOUND_PCT]
        if over:
            lines += ["", f"Repeats whose client was above {CLIENT_BOUND_PCT}% of its core (those figures measure "
                      "the client; a row is client-bound when its median is): " + ", ".join(over) + "."]
        warned = [f"{s.key} repeat {i + 1}" for s in servers for i, r in enumerate(res[s.key])
                  if r.get("loadgen_warning")]
        if warned:
            lines += ["", "loadgen warned that its busiest thread was above 90% of its core (those figures "
                      "measure loadgen, not the server) in: " + ", ".join(warned) + "."]
        flagged = [f"{s.key} repeat {i + 1}" for s in servers for i, r in enumerate(res[s.key]) if r["errors"]]
        if flagged:
            lines += ["", "loadgen reported connection or echo errors in: " + ", ".join(flagged) + "."]
        if "offered" in sc:
            short = [f"{s.key} repeat {i + 1} ({r['rate']:,.0f})" for s in servers
                     for i, r in enumerate(res[s.key]) if r["rate"] < 0.9 * sc["offered"]]
            if short:
                lines += ["", f"Below 90% of the offered {sc['offered']:,} echoes/s (server or loadgen saturated, "
                          "so not at the intended rate; a busy machine?): " + ", ".join(short) + "."]
        staged = {s.key: [r["staged"] for r in res[s.key] if "staged" in r] for s in servers}
        staged = {k: v for k, v in staged.items() if v}
        if staged:
            lines += ["", "C floor receives copied (a frame cut by a receive boundary, summed over a server's whole "
                      "life): " + "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in staged.items()) + "."]
        lines.append("")
    concurrent, concurrent_client = concurrent
    if concurrent:
        lines += [
            "## 100 x 250 Hz x 20 B each, ringecho servers at the same time",
            "",
            "Each server with its own loadgen, all servers on CPU 1, all loadgens on CPU 0; server CPU per "
            "message; the ratio is taken within each run, then the median and range over the runs:",
            "",
            "| server | CPU-us/msg (median) | / epoll, median | / epoll, range |",
            "|---|---:|---:|---:|",
        ]
        for label, values in concurrent.items():
            ratios = [a / b for a, b in zip(values, concurrent["epoll"])]
            lines.append(f"| {label} | {med(values):.2f} | {med(ratios):.3f}x "
                         f"| {min(ratios):.3f}-{max(ratios):.3f} |")
        lines += ["", f"The loadgens together used {med(concurrent_client):.0f}% of their core (median; "
                  f"{range_cell(concurrent_client, '.0f')}%).", ""]
    if "idle" in results and results["idle"]:
        idle = results["idle"]
        refs = [(k, t) for k, t in REFERENCES if k in idle]
        lines += [
            f"## Server RSS per idle WebSocket, {args.idle_connections:,} idle connections",
            "",
            "- every RSS below is *settled*: read every 0.25 s until it moved by less than "
            f"{SETTLE_BYTES // 1024} KiB over {SETTLE_SPAN:.0f} s (at most {SETTLE_MAX:.0f} s), so that "
            "handshakes still in flight, a receive ring's cold buffers not yet given back and an allocator's "
            "pending purge are not charged to the idle connections;",
            f"- warm baseline: a fresh server first opens {IDLE['warm_connections']:,} WebSockets that send "
            "10 Hz x 20 B for about a second and close them (so fixed per-worker pools such as the receive-buffer "
            "ring are already touched); the settled RSS after they closed is the baseline; then (RSS with the "
            "idle connections open − baseline) / connections open;",
            "- cold delta: a separate fresh server, baseline RSS 0.5 s after start, no warm-up: the raw delta "
            "/ connections open, which also charges the one-off pools to the connections;",
            "- marginal: in either run, the idle connections open in two halves (two loadgens, "
            f"{IDLE['connect_rate']:,}/s each); (RSS with all open − RSS with the first half open) / the "
            "second half: what one more idle connection costs, free of one-off pools and of memory the warm-up "
            "left in the allocator (which the first idle connections reuse, so the warm figure can come out "
            "low);",
            "- RSS from /proc/PID/statm; open connections are the server's socket fds; the C floor is not "
            "measured here.",
            "",
            "| server | warm: bytes/conn | min–max | " + " | ".join(f"warm {t}" for _, t in refs)
            + " | cold: bytes/conn | min–max | marginal bytes/conn | min–max | connections open "
            "| warm baseline RSS | fresh RSS |",
            "|---|" + "---:|" * (9 + len(refs)),
        ]
        for s in servers:
            if s.key not in idle:
                continue
            w = [r["per_conn"] for r in idle[s.key]["warm"]]
            c = [r["per_conn"] for r in idle[s.key]["cold"]]
            ratios = []
            for ref, _ in refs:
                theirs = med([r["per_conn"] for r in idle[ref]["warm"]])
                ratios.append(f"{med(w) / theirs:.2f}x" if w and theirs else "–")
            opened = [r["open"] for r in idle[s.key]["warm"] + idle[s.key]["cold"]]
            slope = [r["slope"] for r in idle[s.key]["warm"] + idle[s.key]["cold"] if r["slope"] is not None]
            lines.append("| " + " | ".join([
                s.label, fmt(med(w), ",.0f"), range_cell(w, ",.0f"), *ratios, fmt(med(c), ",.0f"),
                range_cell(c, ",.0f"), fmt(med(slope), ",.0f"), range_cell(slope, ",.0f"), range_cell(opened, "d"),
                fmt(med([r["base"] / 1e6 for r in idle[s.key]["warm"]]), ".1f") + " MB",
                fmt(med([r["fresh"] / 1e6 for r in idle[s.key]["cold"]]), ".1f") + " MB"]) + " |")
        lines.append("")
    if ring_rows:
        sizes = args.ring_sizes.split(",")
        lines += [
            "## Receive ring size",
            "",
            "`--receive-buffers`, default buffer size, uring, against epoll: msg/s / server CPU-us/msg / "
            "client CPU % of its core (medians)"
            + (f"; servers held to {args.held_share}% of their core:" if args.held_share else ":"),
            "",
            "| scenario | epoll | " + " | ".join(f"uring ring {n}" for n in sizes) + " |",
            "|---|---:|" + "---:|" * len(sizes),
        ]
        for name, r in ring_rows:
            cells = [f"{r[k][0]:,.0f} / {r[k][1]:.2f} / {r[k][2]:.0f}%" for k in ["epoll"] + sizes]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Raw runs", "", "In run order per server: msg/s / CPU us per echo / server CPU % / client CPU % "
              "(/ syscalls per echo).", ""]
    for name in scenarios:
        if SCENARIOS[name]["kind"] not in ("cpu", "closed") or name not in results:
            continue
        for s in servers:
            cells = [f"{r['rate']:,.0f} / {r['cpu_us']:.2f} / {r['server_pct']:.0f}% / {r['client_pct']:.0f}%"
                     + (f" / {r['syscalls']:.2f}" if "syscalls" in r else "")
                     for r in results[name][s.key]]
            lines.append(f"- {name}, {s.key}: " + ", ".join(cells))
    if "idle" in results:
        for key, runs in results["idle"].items():
            lines.append(f"- idle, {key}: warm " + ", ".join(f"{r['per_conn']:,.0f}" for r in runs["warm"])
                         + "; cold " + ", ".join(f"{r['per_conn']:,.0f}" for r in runs["cold"])
                         + "; marginal (warm runs, then cold) "
                         + ", ".join(fmt(r["slope"], ",.0f") for r in runs["warm"] + runs["cold"]) + " B/conn")
    lines.append("")
    notes = ""
    if os.path.exists(args.out):
        with open(args.out) as f:
            previous = f.read()
        if NOTES_MARKER in previous:
            notes = previous[previous.index(NOTES_MARKER):]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + ("\n" + notes if notes else ""))
    print("\n".join(lines))
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
