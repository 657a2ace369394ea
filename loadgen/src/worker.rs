//! One worker: a thread with its own event loop, its own connections and
//! its own statistics. Nothing is shared between workers on the hot path.
//!
//! # The hot path, and why it looks like this
//!
//! On the 2-core machine this tool is developed on, the client is often
//! the ceiling (DESIGN.md: at 100 x 20 B even a minimal C echo server
//! tops out at uWebSockets' `load_test` speed). So the loop is written for
//! the fewest syscalls and no allocation per message:
//!
//! * **A hand-written loop over `mio` (epoll, edge-triggered) and raw
//!   non-blocking sockets**, one per worker thread, instead of a tokio
//!   runtime: no task per connection, no waker, no `AsyncRead` buffering.
//!   Per echo the loop makes exactly one `recv` and one `send` (raw
//!   syscalls, see [`crate::sys`]); one `epoll_wait` serves every
//!   connection that became ready meanwhile. Measured honestly: at
//!   100 x 20 B a minimal tokio client (`examples/tokio_closed.rs`, no
//!   checks, no histograms) reaches the same msg/s within the noise of the
//!   shared VM, because ~90% of the client's CPU is the kernel's loopback
//!   TCP path either way. The loop is kept for what it does give: no
//!   allocation per message, and exact control over timing (the `timerfd`
//!   below, one clock read per read event, no task-queue hop between an
//!   echo arriving and the next send) which the open-loop latency relies on.
//! * **No drain read.** With edge-triggered readiness a read that returns
//!   less than the free buffer space means the socket was empty at that
//!   instant, and any later arrival raises a new edge; so we don't issue the
//!   extra `read()` that would only return `EAGAIN`.
//! * **Batched writes.** All messages a read event triggers (K echoes with
//!   `--in-flight K`, a pong) are encoded into the connection's buffer and
//!   written with one `write()`.
//! * **In-place parsing, no allocation per message.** Frames are parsed in
//!   the receive buffer; the payload template, buffers and the in-flight
//!   queue are allocated once per connection.
//! * **One histogram record per echo in the closed loop**, where the
//!   corrected and uncorrected latencies are the same number (see
//!   [`crate::stats::Interval::same`]); it is added to both histograms once
//!   per interval.
//! * **One clock read per read event**, used both as the receive time of the
//!   echoes it carried and as the send time of the messages they trigger.
//!   Not one per `epoll_wait` batch: a batch takes several microseconds
//!   per event to work through, and one timestamp for all of it would
//!   shift every latency by its position in the batch. Not `rdtsc`
//!   either: `clock_gettime` through the vDSO was ~1% of the client's CPU,
//!   and a TSC clock would have to be kept in step with `CLOCK_MONOTONIC`
//!   (NTP slews it) for the `timerfd` deadlines.
//! * **Honest masking**: a fresh CSPRNG key per frame (see
//!   [`crate::codec`]), not a fixed key.
//! * **A `timerfd` for deadlines** (ticks, connects, interval ends) with
//!   absolute nanosecond deadlines, re-armed only when the earliest deadline
//!   changes, so the closed loop makes no timer syscalls at all between
//!   interval ends and the open loop is not late by epoll's millisecond
//!   rounding (see [`crate::clock`]).
//!
//! Measurements (all at 100 x 20 B, server on CPU 1, loadgen on CPU 0,
//! 2-vCPU VM; details and raw data in `results/loadgen/closed-100x20.md`):
//!
//! * The first measurement had loadgen at a median 0.91-0.92x the msg/s of
//!   `lt_equiv`, a C client that sends `load_test`'s exact traffic with
//!   nothing else (against both fastwebsockets and ringecho). Kernel time
//!   per message was the same for both (~6 us). loadgen spent ~0.4-0.5 us
//!   per message more in user space. On a contended machine, perf put most
//!   of that on cache misses in per-connection memory. Re-measured on a
//!   quiet machine, loadgen ran at a median 0.98x `lt_equiv` (10 paired
//!   rounds against fastwebsockets).
//! * Tried and reverted: a worker-wide receive and send buffer, the oldest
//!   in-flight message stored inline, a hot-first field layout, 64-byte
//!   alignment, and touching a batch's connections before handling them.
//!   On a quiet machine they measured no better in msg/s or in user CPU
//!   per message (`results/loadgen/closed-100x20.md`), so the simpler
//!   per-connection buffers stay.
//! * glibc's cancellation wrappers around `send`/`recv` were 16% of user
//!   time (the process is multi-threaded); raw syscalls removed them.
//! * Per-frame CSPRNG masking: 24 ns per 20 B frame vs 4.5 ns for copying
//!   a pre-masked frame; 0.64 us vs 0.14 us at 16 KiB
//!   (`examples/mask_cost.rs`).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::clock::{self, Timer, NANOS_PER_SEC};
use crate::closed::ClosedLoop;
use crate::config::{Mode, RunConfig};
use crate::conn::{Conn, Failure, Outcome, State};
use crate::handshake;
use crate::interrupt::StopSignal;
use crate::open::OpenLoop;
use crate::pacing::SendCtx;
use crate::reconnect::{self, ReconnectQueue};
use crate::stats::{Interval, Phase, Snapshot};

/// The event token of a worker's tick timer (connections use slab keys).
pub const TIMER: Token = Token(usize::MAX - 1);
/// The event token of the stop signal's wake-up fd.
pub const STOP: Token = Token(usize::MAX - 2);

/// What every worker thread does first: pins itself to its CPU of `pin`
/// (warning, not failing, when it cannot), asks for tight timer slack, and
/// makes its poll with the tick timer ([`TIMER`]) and the stop signal
/// ([`STOP`]) registered. `role` names the worker in the warning.
pub fn start_event_loop(
    pin: Option<&[usize]>,
    index: usize,
    role: &str,
    stop: &StopSignal,
) -> io::Result<(Poll, Timer)> {
    if let Some(cpus) = pin {
        let cpu = cpus[index % cpus.len()];
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            eprintln!("loadgen: warning: could not pin {role} {index} to CPU {cpu}");
        }
    }
    clock::minimize_timer_slack();
    let poll = Poll::new()?;
    let timer = Timer::new()?;
    poll.registry()
        .register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)?;
    poll.registry()
        .register(&mut SourceFd(&stop.wake_fd()), STOP, Interest::READABLE)?;
    Ok((poll, timer))
}
/// Connect timeouts are checked at their deadline, but at most this often
/// (a scan over the pending connections), so thousands of connections
/// opening at once cost a bounded number of scans.
const TIMEOUT_SCAN_MIN_NS: u64 = 10_000_000;
/// Length of one reporting interval.
pub const INTERVAL_NS: u64 = NANOS_PER_SEC;
/// How long the end-of-run close handshake may take.
const DRAIN_NS: u64 = NANOS_PER_SEC / 2;

enum Driver {
    Closed(ClosedLoop),
    Open(OpenLoop),
}

/// Everything a worker thread starts from.
#[derive(Debug)]
pub struct WorkerSpec {
    /// Worker index (0..threads).
    pub index: usize,
    /// The run configuration.
    pub cfg: Arc<RunConfig>,
    /// Run start, monotonic ns; the worker waits for it.
    pub t0: u64,
    /// Where interval snapshots go.
    pub snapshots: Sender<Snapshot>,
    /// Ctrl-C: wakes the worker and agrees on when the load stops.
    pub stop: Arc<StopSignal>,
}

struct Worker {
    index: usize,
    cfg: Arc<RunConfig>,
    t0: u64,
    warm_ns: u64,
    end_ns: u64,
    poll: Poll,
    timer: Timer,
    rng: StdRng,
    conns: Vec<Option<Conn>>,
    next_connect: usize,
    open_now: u64,
    stats: Box<Interval>,
    interval_start: u64,
    boundary: u64,
    driver: Driver,
    snapshots: Sender<Snapshot>,
    stop: Arc<StopSignal>,
    draining: bool,
    /// Earliest connect/handshake deadline among the pending connections
    /// (ns since run start), `u64::MAX` when none is pending.
    next_timeout_ns: u64,
    /// `--reconnect`: dropped connections waiting for their next attempt.
    reconnects: ReconnectQueue,
}

/// Runs one worker to completion: connect, load, drain, report.
pub fn run(spec: WorkerSpec) -> io::Result<()> {
    let cfg = spec.cfg.clone();
    let (poll, timer) = start_event_loop(cfg.pin.as_deref(), spec.index, "worker", &spec.stop)?;
    let warm_ns = cfg.warmup.as_nanos() as u64;
    let end_ns = warm_ns + cfg.duration.as_nanos() as u64;
    let n_local = cfg.connections_of(spec.index);
    let driver = match cfg.mode {
        Mode::Closed => Driver::Closed(ClosedLoop {
            in_flight: cfg.in_flight,
        }),
        Mode::Open { rate_hz } => {
            Driver::Open(OpenLoop::new(rate_hz, cfg.connections, cfg.in_flight))
        }
    };
    let mut w = Worker {
        index: spec.index,
        cfg,
        t0: spec.t0,
        warm_ns,
        end_ns,
        poll,
        timer,
        rng: StdRng::from_entropy(),
        conns: (0..n_local).map(|_| None).collect(),
        next_connect: 0,
        open_now: 0,
        stats: Box::default(),
        interval_start: 0,
        boundary: 0,
        driver,
        snapshots: spec.snapshots,
        stop: spec.stop,
        draining: false,
        next_timeout_ns: u64::MAX,
        reconnects: ReconnectQueue::default(),
    };
    w.boundary = w.next_boundary(0);
    w.wait_for_start()?;
    w.load()?;
    w.drain()
}

impl Worker {
    fn now(&self) -> u64 {
        clock::now_ns().saturating_sub(self.t0)
    }

    /// Waits for the run start `t0` (a few ms away, or `--start-at`), on
    /// the timer, so that a Ctrl-C while waiting ends the run at once.
    fn wait_for_start(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(8);
        while clock::now_ns() < self.t0 {
            self.timer.arm(self.t0)?;
            self.wait(&mut events, Duration::from_secs(1))?;
            for ev in events.iter() {
                match ev.token() {
                    TIMER => self.timer.clear(),
                    STOP => {
                        self.on_stop();
                        return Ok(());
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The interval boundary after `t`: whole seconds during warmup, then
    /// whole seconds from the end of warmup, then the end of the run.
    fn next_boundary(&self, t: u64) -> u64 {
        if t < self.warm_ns {
            ((t / INTERVAL_NS + 1) * INTERVAL_NS).min(self.warm_ns)
        } else {
            (self.warm_ns + ((t - self.warm_ns) / INTERVAL_NS + 1) * INTERVAL_NS).min(self.end_ns)
        }
    }

    fn connect_due(&self, slot: usize) -> u64 {
        let id = self.index + slot * self.cfg.threads;
        if self.cfg.connect_rate > 0.0 {
            (id as f64 * 1e9 / self.cfg.connect_rate) as u64
        } else {
            0
        }
    }

    fn load(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = self.now();
            if now >= self.next_timeout_ns {
                self.check_timeouts(now);
            }
            while now >= self.boundary {
                if self.finish_interval() {
                    return Ok(());
                }
            }
            while self.next_connect < self.conns.len() && self.connect_due(self.next_connect) <= now
            {
                let slot = self.next_connect;
                self.next_connect += 1;
                self.start_connect(slot);
            }
            while let Some(slot) = self.reconnects.pop_due(now) {
                self.start_reconnect(slot);
            }
            let mut failed = Vec::new();
            if let Driver::Open(open) = &mut self.driver {
                let mut ctx = SendCtx {
                    kind: self.cfg.payload,
                    rng: &mut self.rng,
                    size: self.cfg.size,
                    end_ns: self.end_ns,
                    sent: &mut self.stats.sent,
                };
                while let Some(slot) = open.pop_due(now) {
                    let Some(conn) = self.conns[slot].as_mut() else {
                        continue;
                    };
                    if conn.state != State::Open {
                        // A dropped connection's tick: it joins the
                        // schedule again when it reopens.
                        conn.scheduled = false;
                        continue;
                    }
                    open.send_due(slot, conn, &mut ctx, now);
                    if let Err(e) = conn.flush() {
                        failed.push((slot, Failure::from_io(&e)));
                    }
                }
            }
            for (slot, f) in failed {
                self.finish_conn(slot, Some(f));
            }
            let mut deadline = self.boundary.min(self.next_timeout_ns);
            if self.next_connect < self.conns.len() {
                deadline = deadline.min(self.connect_due(self.next_connect));
            }
            if let Driver::Open(open) = &self.driver {
                if let Some(t) = open.next_deadline() {
                    deadline = deadline.min(t);
                }
            }
            if let Some(t) = self.reconnects.next_deadline() {
                deadline = deadline.min(t);
            }
            self.timer.arm(self.t0 + deadline)?;
            self.wait(&mut events, Duration::from_secs(1))?;
            self.dispatch(&events);
        }
    }

    /// Ends the current interval at `self.boundary` and sends its snapshot.
    /// Returns true when the run's end was reached.
    fn finish_interval(&mut self) -> bool {
        let end = self.boundary;
        let phase = if end <= self.warm_ns {
            Phase::Warmup
        } else {
            Phase::Measure
        };
        // Empty only when a Ctrl-C stop fell on this interval's start.
        if end > self.interval_start {
            self.send_snapshot(self.interval_start, end, phase);
        }
        self.interval_start = end;
        if end >= self.end_ns {
            return true;
        }
        self.boundary = self.next_boundary(end);
        false
    }

    fn send_snapshot(&mut self, start_ns: u64, end_ns: u64, phase: Phase) {
        let mut data = std::mem::take(&mut self.stats);
        data.open_now = self.open_now;
        data.fold_same();
        // The coordinator only goes away on a fatal error; nothing to do then.
        let _ = self.snapshots.send(Snapshot {
            worker: self.index,
            start_ns,
            end_ns,
            phase,
            data,
        });
    }

    /// Waits for readiness events. A signal handled on this thread (Ctrl-C)
    /// interrupts `epoll_wait`, which the kernel never restarts: that is an
    /// empty wakeup, not an error (the stop itself arrives as an event).
    fn wait(&mut self, events: &mut Events, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                events.clear();
                Ok(())
            }
            other => other,
        }
    }

    /// Hands each readiness event to its connection (the timer only wakes us).
    fn dispatch(&mut self, events: &Events) {
        for ev in events.iter() {
            if ev.token() == TIMER {
                self.timer.clear();
                continue;
            }
            if ev.token() == STOP {
                self.on_stop();
                continue;
            }
            self.on_event(
                ev.token().0,
                ev.is_writable(),
                ev.is_readable() || ev.is_read_closed() || ev.is_error(),
            );
        }
    }

    /// Ctrl-C: ends the load at the stop time all workers agree on, so
    /// their last intervals line up (see [`crate::interrupt`]).
    fn on_stop(&mut self) {
        let now = self.now();
        if self.draining || now >= self.end_ns {
            return;
        }
        let at = self.stop.stop_at(now).max(self.interval_start);
        self.end_ns = self.end_ns.min(at);
        self.boundary = self.boundary.min(self.end_ns);
    }

    /// The connect + handshake deadline of a connection (ns since run start).
    fn connect_deadline(&self, conn: &Conn) -> u64 {
        conn.started_ns.saturating_sub(self.t0) + self.cfg.connect_timeout.as_nanos() as u64
    }

    /// Fails the connections whose connect + handshake deadline has passed
    /// and finds the next deadline. Runs when that deadline comes (the
    /// `timerfd` wakes the loop for it), not on a fixed tick, and never on
    /// the message path: once every connection is open there is nothing
    /// pending and this is never called again.
    fn check_timeouts(&mut self, now: u64) {
        let mut next = u64::MAX;
        for slot in 0..self.conns.len() {
            let Some(conn) = self.conns[slot].as_ref() else {
                continue;
            };
            if !matches!(conn.state, State::Connecting | State::Handshaking) {
                continue;
            }
            let deadline = self.connect_deadline(conn);
            if now >= deadline {
                self.finish_conn(slot, Some(Failure::timeout()));
            } else {
                next = next.min(deadline);
            }
        }
        self.next_timeout_ns = if next == u64::MAX {
            next
        } else {
            next.max(now + TIMEOUT_SCAN_MIN_NS)
        };
    }

    fn start_connect(&mut self, slot: usize) {
        let id = self.index + slot * self.cfg.threads;
        let started = clock::now_ns();
        let key = handshake::new_key(self.rng.gen());
        match TcpStream::connect(self.cfg.addr) {
            Ok(mut stream) => {
                if let Err(e) = self.poll.registry().register(
                    &mut stream,
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.stats
                        .connect_failures
                        .count("io", &format!("register: {e}"));
                    return;
                }
                let conn = Conn::new(
                    id,
                    stream,
                    started,
                    key,
                    self.cfg.payload,
                    self.cfg.size.max,
                    self.cfg.in_flight,
                );
                // Later connections have later deadlines: only the first
                // pending one can move the next check earlier.
                self.next_timeout_ns = self.next_timeout_ns.min(self.connect_deadline(&conn));
                self.conns[slot] = Some(conn);
            }
            Err(e) => {
                let f = Failure::from_io(&e);
                self.stats.connect_failures.count(&f.key, &f.detail);
            }
        }
    }

    /// Removes a connection, counting why it ended; or, with
    /// `--reconnect` during the load, parks a dropped one for a new attempt.
    fn finish_conn(&mut self, slot: usize, failure: Option<Failure>) {
        if let Some(f) = &failure {
            if self.park(slot, f) {
                return;
            }
        }
        let Some(mut conn) = self.conns[slot].take() else {
            return;
        };
        if conn.state != State::Parked {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
        if let Some(dropped) = conn.drop_reason.take() {
            // Dropped earlier and not back (parked or still reconnecting)
            // when the run ended: lost for good, with its messages.
            self.stats.disconnects.count(&dropped.key, &dropped.detail);
            self.stats.reconnect.echoes_lost += conn.inflight.len() as u64;
            return;
        }
        match conn.state {
            State::Connecting | State::Handshaking => {
                let f = failure.unwrap_or_else(Failure::eof);
                self.stats.connect_failures.count(&f.key, &f.detail);
            }
            State::Open => {
                self.open_now -= 1;
                if let Some(f) = failure {
                    self.stats.disconnects.count(&f.key, &f.detail);
                    self.stats.reconnect.echoes_lost += conn.inflight.len() as u64;
                }
            }
            State::Closing => self.open_now -= 1,
            State::Done | State::Parked => {}
        }
    }

    /// `--reconnect`: parks a connection that failed with `f` and schedules
    /// its next attempt, if it was open (a drop) or was itself a reconnect
    /// attempt (a retry), and the load is still on. Returns whether it did.
    fn park(&mut self, slot: usize, f: &Failure) -> bool {
        let now = self.now();
        if !self.cfg.reconnect || self.draining || now >= self.end_ns {
            return false;
        }
        let Some(conn) = self.conns[slot].as_mut() else {
            return false;
        };
        let delay = match conn.state {
            State::Open => {
                self.open_now -= 1;
                self.stats.reconnect.dropped.count(&f.key, &f.detail);
                conn.drop_reason = Some(f.clone());
                conn.attempts = 0;
                reconnect::first_delay_ns(&mut self.rng)
            }
            State::Connecting | State::Handshaking if conn.reconnecting => {
                self.stats.reconnect.failures.count(&f.key, &f.detail);
                conn.attempts += 1;
                reconnect::retry_delay_ns(conn.attempts, &mut self.rng)
            }
            _ => return false,
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        conn.state = State::Parked;
        self.reconnects.schedule(slot, now + delay);
        true
    }

    /// `--reconnect`: opens a new socket for the parked connection in `slot`.
    fn start_reconnect(&mut self, slot: usize) {
        let started = clock::now_ns();
        let key = handshake::new_key(self.rng.gen());
        let deadline = started.saturating_sub(self.t0) + self.cfg.connect_timeout.as_nanos() as u64;
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        if conn.state != State::Parked {
            return;
        }
        let failure = match TcpStream::connect(self.cfg.addr) {
            Ok(mut stream) => {
                match self.poll.registry().register(
                    &mut stream,
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    Ok(()) => {
                        conn.restart(stream, started, key);
                        self.next_timeout_ns = self.next_timeout_ns.min(deadline);
                        return;
                    }
                    Err(e) => Failure::from_io(&e),
                }
            }
            Err(e) => Failure::from_io(&e),
        };
        // Not even a socket: count the failed attempt and try again later.
        self.stats
            .reconnect
            .failures
            .count(&failure.key, &failure.detail);
        conn.attempts += 1;
        let now = clock::now_ns().saturating_sub(self.t0);
        if now < self.end_ns {
            let delay = reconnect::retry_delay_ns(conn.attempts, &mut self.rng);
            self.reconnects.schedule(slot, now + delay);
        }
    }

    fn on_event(&mut self, slot: usize, writable: bool, readable: bool) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if conn.state == State::Parked {
            return; // a late event of the socket it had before the drop
        }
        let mut outcome = Outcome::Idle;
        if conn.state == State::Connecting {
            outcome = conn.on_connected(&self.cfg.target);
        } else if writable && conn.has_backlog() {
            if let Err(e) = conn.flush() {
                outcome = Outcome::Finished(Some(Failure::from_io(&e)));
            }
        }
        if outcome == Outcome::Idle && readable && conn.state != State::Connecting {
            outcome = conn.on_readable(self.cfg.payload, &mut self.rng, &mut self.stats, self.t0);
        }
        let now = conn.last_rx_ns;
        let mut ctx = SendCtx {
            kind: self.cfg.payload,
            rng: &mut self.rng,
            size: self.cfg.size,
            end_ns: self.end_ns,
            sent: &mut self.stats.sent,
        };
        match outcome {
            Outcome::Idle => {}
            Outcome::Opened if conn.reconnecting => {
                let now = clock::now_ns().saturating_sub(self.t0);
                conn.reconnecting = false;
                conn.drop_reason = None;
                conn.attempts = 0;
                self.stats.reconnect.reconnects += 1;
                self.open_now += 1;
                let resent = conn.resend_inflight(ctx.kind, ctx.rng, now);
                self.stats.reconnect.resent += resent as u64;
                match &mut self.driver {
                    Driver::Closed(c) => c.fill(conn, &mut ctx, now),
                    Driver::Open(o) => o.on_reopen(slot, conn, &mut ctx, now),
                }
            }
            Outcome::Opened => {
                let t = clock::now_ns();
                self.stats.connect.saturating_record(t - conn.started_ns);
                self.stats.opened += 1;
                self.open_now += 1;
                let now = t.saturating_sub(self.t0);
                match &mut self.driver {
                    Driver::Closed(c) => c.fill(conn, &mut ctx, now),
                    Driver::Open(o) => o.on_open(slot, conn, &mut ctx, now),
                }
            }
            Outcome::Echoes(_) => match &mut self.driver {
                Driver::Closed(c) => c.fill(conn, &mut ctx, now),
                Driver::Open(o) => o.on_echo(slot, conn, &mut ctx, now),
            },
            Outcome::Finished(f) => {
                self.finish_conn(slot, f);
                return;
            }
        }
        if let Err(e) = conn.flush() {
            let f = Failure::from_io(&e);
            self.finish_conn(slot, Some(f));
        }
    }

    /// Closes every open connection politely and waits (briefly) for the
    /// server's Close, then sends the final snapshot.
    fn drain(&mut self) -> io::Result<()> {
        self.draining = true;
        for slot in 0..self.conns.len() {
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            match conn.state {
                State::Open => {
                    conn.start_close(&mut self.rng);
                    if conn.flush().is_err() {
                        self.finish_conn(slot, None);
                    }
                }
                // Dropped and not back yet (`--reconnect`): lost.
                _ if conn.drop_reason.is_some() => self.finish_conn(slot, None),
                _ => {
                    // Never opened before the end: not a failure, just dropped.
                    if let Some(mut c) = self.conns[slot].take() {
                        let _ = self.poll.registry().deregister(&mut c.stream);
                    }
                }
            }
        }
        let mut events = Events::with_capacity(1024);
        let deadline = self.now() + DRAIN_NS;
        while self.conns.iter().any(Option::is_some) {
            let now = self.now();
            if now >= deadline {
                break;
            }
            self.wait(&mut events, Duration::from_nanos(deadline - now))?;
            self.dispatch(&events);
        }
        for slot in 0..self.conns.len() {
            self.finish_conn(slot, None);
        }
        self.send_snapshot(self.end_ns, u64::MAX, Phase::Drain);
        Ok(())
    }
}
