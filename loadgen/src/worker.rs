//! One worker: a thread with its own I/O driver, its own connections and
//! its own statistics. Nothing is shared between workers on the hot path.
//!
//! The worker's logic is written once, over the [`Driver`] trait; it runs
//! on the io_uring driver or the epoll one ([`crate::io`]). A turn of its
//! loop handles what is due (connect deadlines, interval ends, new
//! connects, reconnects, open-loop ticks), waits for the driver until the
//! earliest deadline, then handles every event of the wait:
//!
//! * received bytes go to the connection ([`Conn::on_bytes`]), which
//!   checks each echo where it landed and counts it; the pacing
//!   ([`ClosedLoop`], [`OpenLoop`]) then queues the next messages, and the
//!   connection's bytes go to the driver;
//! * connects, ends of stream and Ctrl-C change the connection's state.
//!
//! What the hot path does not do: allocate per message (the buffers and
//! the in-flight queue are per connection, the payload template per
//! worker), copy an echo, or read the clock per message (the driver stamps
//! the receive time: once per `recv` on epoll, once per turn on io_uring,
//! which is also the send time of the messages those echoes trigger).

use std::io;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ceiling::CpuMeter;
use crate::clock::{self, NANOS_PER_SEC};
use crate::closed::ClosedLoop;
use crate::config::{Mode, RunConfig};
use crate::conn::{Conn, Failure, Outcome, State};
use crate::handshake;
use crate::interrupt::StopSignal;
use crate::io::epoll::EpollDriver;
use crate::io::uring::UringDriver;
use crate::io::{Driver, Event, IoKind};
use crate::open::OpenLoop;
use crate::pacing::SendCtx;
use crate::payload::Template;
use crate::reconnect::{self, ReconnectQueue};
use crate::stats::{Interval, Phase, Snapshot};

/// Connect timeouts are checked at their deadline, but at most this often
/// (a scan over the pending connections), so thousands of connections
/// opening at once cost a bounded number of scans.
const TIMEOUT_SCAN_MIN_NS: u64 = 10_000_000;
/// Length of one reporting interval.
pub const INTERVAL_NS: u64 = NANOS_PER_SEC;
/// How long the end-of-run close handshake may take.
const DRAIN_NS: u64 = NANOS_PER_SEC / 2;
/// The longest a worker waits without looking at the clock.
const MAX_WAIT_NS: u64 = NANOS_PER_SEC;

/// What every worker thread does first: pins itself to its CPU of `pin`
/// (warning, not failing, when it cannot) and asks for tight timer slack.
/// `role` names the worker in the warning.
pub fn start_thread(pin: Option<&[usize]>, index: usize, role: &str) {
    if let Some(cpus) = pin {
        let cpu = cpus[index % cpus.len()];
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            eprintln!("loadgen: warning: could not pin {role} {index} to CPU {cpu}");
        }
    }
    clock::minimize_timer_slack();
}

enum Pacing {
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
    /// The I/O driver to run on.
    pub io: IoKind,
    /// Run start, monotonic ns; the worker waits for it.
    pub t0: u64,
    /// Where interval snapshots go.
    pub snapshots: Sender<Snapshot>,
    /// Ctrl-C: wakes the worker and agrees on when the load stops.
    pub stop: Arc<StopSignal>,
}

struct Worker<D: Driver> {
    index: usize,
    cfg: Arc<RunConfig>,
    t0: u64,
    warm_ns: u64,
    end_ns: u64,
    io: D,
    rng: StdRng,
    tmpl: Template,
    conns: Vec<Option<Conn>>,
    next_connect: usize,
    open_now: u64,
    stats: Box<Interval>,
    cpu: CpuMeter,
    interval_start: u64,
    boundary: u64,
    pacing: Pacing,
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
    match spec.io {
        IoKind::Uring => run_on::<UringDriver>(spec),
        IoKind::Epoll => run_on::<EpollDriver>(spec),
    }
}

fn run_on<D: Driver>(spec: WorkerSpec) -> io::Result<()> {
    let cfg = spec.cfg.clone();
    start_thread(cfg.pin.as_deref(), spec.index, "worker");
    let warm_ns = cfg.warmup.as_nanos() as u64;
    let end_ns = warm_ns + cfg.duration.as_nanos() as u64;
    let n_local = cfg.connections_of(spec.index);
    let pacing = match cfg.mode {
        Mode::Closed => Pacing::Closed(ClosedLoop {
            in_flight: cfg.in_flight,
        }),
        Mode::Open { rate_hz } => {
            Pacing::Open(OpenLoop::new(rate_hz, cfg.connections, cfg.in_flight))
        }
    };
    let mut w = Worker {
        index: spec.index,
        io: D::new(n_local, &spec.stop)?,
        tmpl: match &cfg.permessage_deflate {
            Some(offer) => Template::new(cfg.payload, cfg.size.max).with_deflate(offer),
            None => Template::new(cfg.payload, cfg.size.max),
        },
        cfg,
        t0: spec.t0,
        warm_ns,
        end_ns,
        rng: StdRng::from_entropy(),
        conns: (0..n_local).map(|_| None).collect(),
        next_connect: 0,
        open_now: 0,
        stats: Box::default(),
        cpu: CpuMeter::start(),
        interval_start: 0,
        boundary: 0,
        pacing,
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

impl<D: Driver> Worker<D> {
    fn now(&self) -> u64 {
        clock::now_ns().saturating_sub(self.t0)
    }

    /// Waits for the run start `t0` (a few ms away, or `--start-at`), so
    /// that a Ctrl-C while waiting ends the run at once.
    fn wait_for_start(&mut self) -> io::Result<()> {
        while clock::now_ns() < self.t0 {
            self.io.wait(self.t0.min(clock::now_ns() + MAX_WAIT_NS))?;
            while let Some(ev) = self.io.next_event() {
                if let Event::Stop = ev {
                    self.on_stop();
                    return Ok(());
                }
            }
        }
        self.cpu = CpuMeter::start();
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
            self.send_due_ticks(now);
            let mut deadline = self.boundary.min(self.next_timeout_ns);
            if self.next_connect < self.conns.len() {
                deadline = deadline.min(self.connect_due(self.next_connect));
            }
            if let Pacing::Open(open) = &self.pacing {
                if let Some(t) = open.next_deadline() {
                    deadline = deadline.min(t);
                }
            }
            if let Some(t) = self.reconnects.next_deadline() {
                deadline = deadline.min(t);
            }
            let deadline = (self.t0 + deadline).min(clock::now_ns() + MAX_WAIT_NS);
            self.io.wait(deadline)?;
            self.dispatch();
        }
    }

    /// Open loop: sends the ticks that are due.
    fn send_due_ticks(&mut self, now: u64) {
        let Pacing::Open(open) = &mut self.pacing else {
            return;
        };
        let mut ctx = SendCtx {
            tmpl: &self.tmpl,
            rng: &mut self.rng,
            size: self.cfg.size,
            end_ns: self.end_ns,
            sent: &mut self.stats.sent,
        };
        let mut failed = Vec::new();
        while let Some(slot) = open.pop_due(now) {
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            if conn.state != State::Open {
                // A dropped connection's tick: it joins the schedule again
                // when it reopens.
                conn.scheduled = false;
                continue;
            }
            open.send_due(slot, conn, &mut ctx, now);
            if let Err(e) = self.io.send(slot, &mut conn.tx) {
                failed.push((slot, Failure::from_io(&e)));
            }
        }
        for (slot, f) in failed {
            self.finish_conn(slot, Some(f));
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
            cpu: self.cpu.lap(),
        });
    }

    /// Handles every event of the last wait.
    fn dispatch(&mut self) {
        while let Some(ev) = self.io.next_event() {
            match ev {
                Event::Stop => self.on_stop(),
                Event::Connected(slot) => self.on_connected(slot),
                Event::ConnectFailed(slot, e) => self.finish_conn(slot, Some(Failure::from_io(&e))),
                Event::Received(slot, at) => self.on_received(slot, at),
                Event::Closed(slot, error) => {
                    let failure = match self.conns.get(slot).and_then(Option::as_ref) {
                        Some(conn) => conn.on_stream_end(error.as_ref()),
                        None => continue,
                    };
                    self.finish_conn(slot, failure);
                }
            }
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
    /// driver's timer wakes the loop for it), not on a fixed tick, and never
    /// on the message path: once every connection is open there is nothing
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
        match self.io.connect(slot, self.cfg.addr, None) {
            Ok(()) => {
                let conn = Conn::new(id, started, key, self.cfg.size.max, self.cfg.in_flight);
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
            self.io.close(slot);
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
        self.io.close(slot);
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
        let failure = match self.io.connect(slot, self.cfg.addr, None) {
            Ok(()) => {
                conn.restart(started, key);
                self.next_timeout_ns = self.next_timeout_ns.min(deadline);
                return;
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

    /// The TCP connect of `slot` completed: send the upgrade request.
    fn on_connected(&mut self, slot: usize) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        if conn.state != State::Connecting {
            return;
        }
        conn.on_connected(&self.cfg.target, &self.tmpl);
        self.flush(slot);
    }

    /// Bytes arrived on `slot` at `at` (monotonic ns).
    fn on_received(&mut self, slot: usize, at: u64) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if conn.state == State::Parked {
            return; // bytes of the socket it had before the drop
        }
        let now = at.saturating_sub(self.t0);
        let outcome = conn.on_bytes(
            self.io.received(),
            &self.tmpl,
            &mut self.rng,
            &mut self.stats,
            now,
        );
        let mut ctx = SendCtx {
            tmpl: &self.tmpl,
            rng: &mut self.rng,
            size: self.cfg.size,
            end_ns: self.end_ns,
            sent: &mut self.stats.sent,
        };
        match outcome {
            Outcome::Idle => {}
            Outcome::Opened if conn.reconnecting => {
                conn.reconnecting = false;
                conn.drop_reason = None;
                conn.attempts = 0;
                self.stats.reconnect.reconnects += 1;
                self.open_now += 1;
                let resent = conn.resend_inflight(&self.tmpl, ctx.rng, now);
                self.stats.reconnect.resent += resent as u64;
                match &mut self.pacing {
                    Pacing::Closed(c) => c.fill(conn, &mut ctx, now),
                    Pacing::Open(o) => o.on_reopen(slot, conn, &mut ctx, now),
                }
            }
            Outcome::Opened => {
                self.stats.connect.saturating_record(at - conn.started_ns);
                self.stats.opened += 1;
                self.open_now += 1;
                match &mut self.pacing {
                    Pacing::Closed(c) => c.fill(conn, &mut ctx, now),
                    Pacing::Open(o) => o.on_open(slot, conn, &mut ctx, now),
                }
            }
            Outcome::Echoes(_) => match &mut self.pacing {
                Pacing::Closed(c) => c.fill(conn, &mut ctx, now),
                Pacing::Open(o) => o.on_echo(slot, conn, &mut ctx, now),
            },
            Outcome::Finished(f) => {
                // A Close answer may be waiting: send it before closing.
                let _ = self.io.send(slot, &mut conn.tx);
                self.finish_conn(slot, f);
                return;
            }
        }
        self.flush(slot);
    }

    /// Hands the connection's queued bytes to the driver.
    fn flush(&mut self, slot: usize) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        if conn.tx.is_empty() {
            return;
        }
        if let Err(e) = self.io.send(slot, &mut conn.tx) {
            self.finish_conn(slot, Some(Failure::from_io(&e)));
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
                    self.flush(slot);
                }
                // Dropped and not back yet (`--reconnect`): lost.
                _ if conn.drop_reason.is_some() => self.finish_conn(slot, None),
                _ => {
                    // Never opened before the end: not a failure, just dropped.
                    self.conns[slot] = None;
                    self.io.close(slot);
                }
            }
        }
        let deadline = clock::now_ns() + DRAIN_NS;
        while self.conns.iter().any(Option::is_some) && clock::now_ns() < deadline {
            self.io.wait(deadline)?;
            self.dispatch();
        }
        for slot in 0..self.conns.len() {
            self.finish_conn(slot, None);
        }
        self.send_snapshot(self.end_ns, u64::MAX, Phase::Drain);
        Ok(())
    }
}
