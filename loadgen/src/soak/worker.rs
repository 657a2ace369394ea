//! One soak worker: a thread with its own I/O driver over its share of the
//! connections, like [`crate::worker`] and on the same drivers
//! ([`crate::io`]), with what a soak adds: three traffic classes on their
//! own ticks, churn, and closes that are checked.
//!
//! # A connection's life
//!
//! 1. Connect (from the next source address, see [`super::source`]) and
//!    handshake, within `--connect-timeout`; a failure is counted per class.
//! 2. Open: ticks of its class send messages ([`Conn::queue_message`]);
//!    every echo is checked by [`Conn`] (length, order, content).
//! 3. Closed by churn or at the end: a Close goes out *after* the last
//!    message, and the connection still awaits the echoes in flight
//!    ([`Conn::start_close_awaiting_echoes`]). The server must send them,
//!    then its Close (1000), within `--close-timeout`. Anything still in
//!    flight when its Close arrives is lost. A connection that ends any
//!    other way (a server Close while open, EOF, reset, a close timeout) is
//!    an unexpected close.
//! 4. After a clean close the client waits for the server to close the TCP
//!    connection (RFC 6455 §7.1.1), so `TIME_WAIT` stays on the server's
//!    side and the client's ephemeral ports are free at once.
//!
//! Churn closes a random open connection and opens a new one of the same
//! class, `--churn / threads` times a second per worker, during the hold.
//! Slots are reused: each slot has a generation, and a tick or deadline
//! queued for an earlier occupant of the slot is ignored.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ceiling::CpuMeter;
use crate::clock::{self, NANOS_PER_SEC};
use crate::conn::{Conn, Failure, Outcome, State};
use crate::handshake;
use crate::interrupt::StopSignal;
use crate::io::epoll::EpollDriver;
use crate::io::uring::UringDriver;
use crate::io::{Driver, Event, IoKind};
use crate::payload::Template;
use crate::soak::config::SoakConfig;
use crate::soak::mix::{first_tick, phase_ns, CLASSES};
use crate::soak::stats::{SoakInterval, SoakPhase, SoakSnapshot};
use crate::worker::start_thread;

/// Most churn a worker makes up at once after being held up (100 ms worth).
const CHURN_CATCH_UP_NS: u64 = 100_000_000;

/// What a worker needs to run.
#[derive(Debug)]
pub struct SoakWorkerSpec {
    /// Worker index (0-based).
    pub index: usize,
    /// The soak.
    pub cfg: Arc<SoakConfig>,
    /// The I/O driver to run on.
    pub io: IoKind,
    /// Common start instant (monotonic ns).
    pub t0: u64,
    /// Where interval snapshots go.
    pub snapshots: Sender<SoakSnapshot>,
    /// Ctrl-C.
    pub stop: Arc<StopSignal>,
}

/// A connection and its class.
#[derive(Debug)]
struct Live {
    conn: Conn,
    class: usize,
}

/// What a slot holds.
#[derive(Debug)]
enum Occupant {
    Free,
    Live(Box<Live>),
    /// Closed cleanly; its socket waits for the server's FIN until the deadline.
    Lingering,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    occupant: Occupant,
}

/// A deadline or tick for the occupant of `slot` in `generation`.
type Due = (u64, usize, u32);

/// The connections of one worker and their schedules.
struct Worker<D: Driver> {
    index: usize,
    cfg: Arc<SoakConfig>,
    t0: u64,
    ramp_end: u64,
    hold_end: u64,
    drain_deadline: u64,
    io: D,
    rng: StdRng,
    /// Each class's payload template, built once.
    tmpls: [Template; CLASSES],
    cpu: CpuMeter,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Initial connections of this worker, and how many are started.
    initial: usize,
    next_initial: usize,
    /// Next connection serial (global: worker index + k * threads).
    next_serial: u64,
    churn_period: u64,
    next_churn: u64,
    ticks: BinaryHeap<Reverse<Due>>,
    connect_deadlines: VecDeque<Due>,
    close_deadlines: VecDeque<Due>,
    linger_deadlines: VecDeque<Due>,
    open_per_class: [u64; crate::soak::mix::CLASSES],
    stats: Box<SoakInterval>,
    interval_start: u64,
    boundary: u64,
    snapshots: Sender<SoakSnapshot>,
    stop: Arc<StopSignal>,
    draining: bool,
}

/// Runs one worker: ramp, hold with churn, drain, final snapshot.
pub fn run(spec: SoakWorkerSpec) -> io::Result<()> {
    match spec.io {
        IoKind::Uring => run_on::<UringDriver>(spec),
        IoKind::Epoll => run_on::<EpollDriver>(spec),
    }
}

fn run_on<D: Driver>(spec: SoakWorkerSpec) -> io::Result<()> {
    let cfg = spec.cfg.clone();
    start_thread(cfg.pin.as_deref(), spec.index, "soak worker");
    let ramp_end = cfg.ramp().as_nanos() as u64;
    let hold_end = ramp_end + cfg.duration.as_nanos() as u64;
    let per_worker_churn = cfg.churn_rate / cfg.threads as f64;
    let churn_period = if per_worker_churn > 0.0 {
        (1e9 / per_worker_churn) as u64
    } else {
        u64::MAX
    };
    let initial = cfg.connections_of(spec.index);
    let mut w = Worker {
        index: spec.index,
        t0: spec.t0,
        ramp_end,
        hold_end,
        drain_deadline: u64::MAX,
        io: D::new(initial + 1024, &spec.stop)?,
        rng: StdRng::from_entropy(),
        tmpls: cfg
            .mix
            .classes
            .map(|class| Template::new(class.payload, class.size.max)),
        cpu: CpuMeter::start(),
        slots: Vec::with_capacity(initial + 1024),
        free: Vec::new(),
        initial,
        next_initial: 0,
        next_serial: spec.index as u64,
        churn_period,
        // Offset per worker so the workers' churn interleaves.
        next_churn: ramp_end.saturating_add(churn_period / cfg.threads as u64 * spec.index as u64),
        ticks: BinaryHeap::new(),
        connect_deadlines: VecDeque::new(),
        close_deadlines: VecDeque::new(),
        linger_deadlines: VecDeque::new(),
        open_per_class: [0; crate::soak::mix::CLASSES],
        stats: Box::default(),
        interval_start: 0,
        boundary: 0,
        snapshots: spec.snapshots,
        stop: spec.stop,
        draining: false,
        cfg,
    };
    w.boundary = w.next_boundary(0);
    let now = clock::now_ns();
    if now < w.t0 {
        std::thread::sleep(std::time::Duration::from_nanos(w.t0 - now));
    }
    w.cpu = CpuMeter::start();
    w.run_loop()
}

impl<D: Driver> Worker<D> {
    fn now(&self) -> u64 {
        clock::now_ns().saturating_sub(self.t0)
    }

    fn interval_ns(&self) -> u64 {
        self.cfg.interval.as_nanos() as u64
    }

    /// The interval boundary after `t`: whole intervals from the start
    /// during the ramp, then from the end of the ramp, then from the end
    /// of the hold; the phase ends are boundaries too.
    fn next_boundary(&self, t: u64) -> u64 {
        let step = self.interval_ns();
        let (base, limit) = if t < self.ramp_end {
            (0, self.ramp_end)
        } else if t < self.hold_end {
            (self.ramp_end, self.hold_end)
        } else {
            (self.hold_end, u64::MAX)
        };
        (base + ((t - base) / step + 1) * step).min(limit)
    }

    fn phase_of_interval_ending(&self, end: u64) -> SoakPhase {
        if end <= self.ramp_end {
            SoakPhase::Ramp
        } else if end <= self.hold_end {
            SoakPhase::Hold
        } else {
            SoakPhase::Drain
        }
    }

    fn initial_due(&self, k: usize) -> u64 {
        let global = self.index + k * self.cfg.threads;
        (global as f64 * 1e9 / self.cfg.connect_rate) as u64
    }

    fn run_loop(&mut self) -> io::Result<()> {
        loop {
            let now = self.now();
            while now >= self.boundary {
                self.finish_interval();
            }
            if !self.draining && now >= self.hold_end {
                self.start_drain(now);
            }
            if self.draining && (self.all_free() || now >= self.drain_deadline) {
                return self.finish(now);
            }
            self.expire_deadlines(now)?;
            while !self.draining
                && self.next_initial < self.initial
                && self.initial_due(self.next_initial) <= now
            {
                let global = self.index + self.next_initial * self.cfg.threads;
                self.next_initial += 1;
                let class = self.cfg.mix.class_of(global);
                self.start_connect(class, now);
            }
            // Churn missed while this thread was held up is skipped, not
            // made up in one burst of connects the server never asked for.
            if self.next_churn.saturating_add(CHURN_CATCH_UP_NS) < now {
                self.next_churn = now;
            }
            while !self.draining && self.next_churn <= now && self.next_churn < self.hold_end {
                self.next_churn = self.next_churn.saturating_add(self.churn_period);
                self.churn(now);
            }
            self.send_due_ticks(now);
            let deadline = (self.t0 + self.next_deadline()).min(clock::now_ns() + NANOS_PER_SEC);
            self.io.wait(deadline)?;
            self.dispatch();
        }
    }

    /// The earliest moment the loop has something to do without an event.
    fn next_deadline(&self) -> u64 {
        let mut d = self.boundary;
        if self.draining {
            d = d.min(self.drain_deadline);
        } else {
            d = d.min(self.hold_end);
            if self.next_initial < self.initial {
                d = d.min(self.initial_due(self.next_initial));
            }
            if self.next_churn < self.hold_end {
                d = d.min(self.next_churn);
            }
        }
        if let Some(Reverse((t, _, _))) = self.ticks.peek() {
            d = d.min(*t);
        }
        for q in [
            &self.connect_deadlines,
            &self.close_deadlines,
            &self.linger_deadlines,
        ] {
            if let Some((t, _, _)) = q.front() {
                d = d.min(*t);
            }
        }
        d
    }

    /// Handles every event of the last wait.
    fn dispatch(&mut self) {
        while let Some(ev) = self.io.next_event() {
            match ev {
                Event::Stop => self.on_stop(),
                Event::Connected(slot) => self.on_connected(slot),
                Event::ConnectFailed(slot, e) => {
                    let now = self.now();
                    self.finish_conn(slot, Some(Failure::from_io(&e)), now);
                }
                Event::Received(slot, at) => self.on_received(slot, at),
                Event::Closed(slot, error) => self.on_stream_end(slot, error),
            }
        }
    }

    /// Ctrl-C: the hold ends at the stop time all workers agree on, then
    /// the drain closes everything as usual.
    fn on_stop(&mut self) {
        let now = self.now();
        if self.draining {
            return;
        }
        let at = self.stop.stop_at(now).max(self.interval_start);
        self.hold_end = self.hold_end.min(at);
        self.ramp_end = self.ramp_end.min(self.hold_end);
        self.boundary = self
            .boundary
            .min(self.hold_end.max(self.interval_start + 1));
    }

    // ------------------------------------------------------------ intervals

    fn finish_interval(&mut self) {
        let end = self.boundary;
        let phase = self.phase_of_interval_ending(end);
        self.send_snapshot(self.interval_start, end, phase);
        self.interval_start = end;
        self.boundary = self.next_boundary(end);
    }

    fn send_snapshot(&mut self, start_ns: u64, end_ns: u64, phase: SoakPhase) {
        let mut data = std::mem::take(&mut self.stats);
        for (c, iv) in data.classes.iter_mut().enumerate() {
            iv.open_now = self.open_per_class[c];
            iv.fold_same();
        }
        // The coordinator only goes away on a fatal error; nothing to do then.
        let _ = self.snapshots.send(SoakSnapshot {
            worker: self.index,
            start_ns,
            end_ns,
            phase,
            data,
            cpu: self.cpu.lap(),
        });
    }

    // ------------------------------------------------------------ slots

    /// Every slot is free (each free slot is on the free list).
    fn all_free(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    fn take_slot(&mut self) -> usize {
        match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    occupant: Occupant::Free,
                });
                self.slots.len() - 1
            }
        }
    }

    fn release_slot(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.occupant = Occupant::Free;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
    }

    fn live(&mut self, slot: usize, generation: u32) -> Option<&mut Live> {
        match self.slots.get_mut(slot) {
            Some(Slot {
                generation: g,
                occupant: Occupant::Live(live),
            }) if *g == generation => Some(live),
            _ => None,
        }
    }

    // ------------------------------------------------------------ connects

    fn start_connect(&mut self, class: usize, now: u64) {
        let serial = self.next_serial;
        self.next_serial += self.cfg.threads as u64;
        self.stats.connects += 1;
        let source = (!self.cfg.sources.is_empty())
            .then(|| self.cfg.sources[(serial as usize) % self.cfg.sources.len()]);
        let slot = self.take_slot();
        if let Err(e) = self.io.connect(slot, self.cfg.addr, source) {
            let f = Failure::from_io(&e);
            self.stats.classes[class]
                .connect_failures
                .count(&f.key, &f.detail);
            self.release_slot(slot);
            return;
        }
        let spec = &self.cfg.mix.classes[class];
        let key = handshake::new_key(self.rng.gen());
        let conn = Conn::new(
            serial as usize,
            clock::now_ns(),
            key,
            spec.size.max,
            spec.window,
        );
        let generation = self.slots[slot].generation;
        self.slots[slot].occupant = Occupant::Live(Box::new(Live { conn, class }));
        let deadline = now + self.cfg.connect_timeout.as_nanos() as u64;
        self.connect_deadlines
            .push_back((deadline, slot, generation));
    }

    /// Closes a random open connection and opens one of the same class.
    fn churn(&mut self, now: u64) {
        let n = self.slots.len();
        if n == 0 {
            return;
        }
        let start = self.rng.gen_range(0..n);
        let Some(slot) = (0..n).map(|i| (start + i) % n).find(|&s| self.is_open(s)) else {
            return;
        };
        let class = match &self.slots[slot].occupant {
            Occupant::Live(live) => live.class,
            _ => return,
        };
        self.begin_close(slot, now);
        self.start_connect(class, now);
    }

    fn is_open(&self, slot: usize) -> bool {
        matches!(&self.slots[slot].occupant, Occupant::Live(l) if l.conn.state == State::Open)
    }

    // ------------------------------------------------------------ closes

    /// Sends our Close after the last message, still awaiting the echoes
    /// in flight, and starts the close timeout.
    fn begin_close(&mut self, slot: usize, now: u64) {
        let close_ns = self.cfg.close_timeout.as_nanos() as u64;
        let Slot {
            generation,
            occupant: Occupant::Live(live),
        } = &mut self.slots[slot]
        else {
            return;
        };
        // No tick is sent after the Close: queued ticks find it closing.
        live.conn.start_close_awaiting_echoes(&mut self.rng);
        let flushed = self.io.send(slot, &mut live.conn.tx);
        self.stats.closes += 1;
        self.close_deadlines
            .push_back((now + close_ns, slot, *generation));
        if let Err(e) = flushed {
            self.finish_conn(slot, Some(Failure::from_io(&e)), now);
        }
    }

    /// Removes a connection and counts how it ended.
    fn finish_conn(&mut self, slot: usize, failure: Option<Failure>, now: u64) {
        let occupant = std::mem::replace(&mut self.slots[slot].occupant, Occupant::Free);
        let Occupant::Live(live) = occupant else {
            self.slots[slot].occupant = occupant;
            return;
        };
        let Live { conn, class } = *live;
        let iv = &mut self.stats.classes[class];
        self.stats.lost[class] += conn.inflight.len() as u64;
        let mut linger = false;
        let unexpected: Option<(String, String)> = match conn.state {
            State::Connecting | State::Handshaking => {
                let f = failure.unwrap_or_else(Failure::eof);
                iv.connect_failures.count(&f.key, &f.detail);
                None
            }
            State::Open => {
                self.open_per_class[class] -= 1;
                let f = failure.unwrap_or_else(Failure::eof);
                Some((f.key, f.detail))
            }
            State::Closing => {
                self.open_per_class[class] -= 1;
                match (failure, conn.peer_close_code) {
                    (Some(f), _) => Some((f.key, f.detail)),
                    (None, Some(1000)) => {
                        self.stats.closed_clean += 1;
                        linger = true;
                        None
                    }
                    (None, Some(code)) => Some((
                        format!("close_{code}"),
                        format!("server answered our Close with {code}"),
                    )),
                    (None, None) => Some((
                        "no_close_frame".into(),
                        "server closed TCP without answering our Close".into(),
                    )),
                }
            }
            // The soak never reconnects a slot (churn opens a new one), so
            // no connection of it is ever parked.
            State::Done | State::Parked => None,
        };
        if let Some((key, detail)) = unexpected {
            self.stats.classes[class].disconnects.count(&key, &detail);
            self.stats.unexpected.count(&key, &detail);
        }
        if linger {
            let generation = self.slots[slot].generation;
            self.slots[slot].occupant = Occupant::Lingering;
            let deadline = now + self.cfg.close_timeout.as_nanos() as u64;
            self.linger_deadlines
                .push_back((deadline, slot, generation));
        } else {
            self.io.close(slot);
            self.release_slot(slot);
        }
    }

    /// Closes a lingering connection and frees its slot.
    fn drop_lingering(&mut self, slot: usize) {
        if let Occupant::Lingering = self.slots[slot].occupant {
            self.io.close(slot);
            self.release_slot(slot);
        }
    }

    /// Fails connects and closes that ran out of time, and gives up on
    /// servers that keep TCP open after a clean close.
    fn expire_deadlines(&mut self, now: u64) -> io::Result<()> {
        let due = [
            &self.connect_deadlines,
            &self.close_deadlines,
            &self.linger_deadlines,
        ]
        .iter()
        .any(|q| q.front().is_some_and(|d| d.0 <= now));
        if !due {
            return Ok(());
        }
        // Take in what came first: had this thread itself been held up,
        // the answers may be waiting.
        self.io.wait(clock::now_ns())?;
        self.dispatch();
        while let Some(&(t, slot, generation)) = self.connect_deadlines.front() {
            if t > now {
                break;
            }
            self.connect_deadlines.pop_front();
            if self.still_pending(slot, generation) {
                self.finish_conn(slot, Some(Failure::timeout()), now);
            }
        }
        while let Some(&(t, slot, generation)) = self.close_deadlines.front() {
            if t > now {
                break;
            }
            self.close_deadlines.pop_front();
            if self.still_closing(slot, generation) {
                let f = Failure {
                    key: "close_timeout".into(),
                    detail: "no Close from the server within --close-timeout".into(),
                };
                self.finish_conn(slot, Some(f), now);
            }
        }
        while let Some(&(t, slot, generation)) = self.linger_deadlines.front() {
            if t > now {
                break;
            }
            self.linger_deadlines.pop_front();
            let s = &self.slots[slot];
            if s.generation == generation && matches!(s.occupant, Occupant::Lingering) {
                self.stats.tcp_left_open += 1;
                self.drop_lingering(slot);
            }
        }
        Ok(())
    }

    fn still_pending(&mut self, slot: usize, generation: u32) -> bool {
        self.live(slot, generation)
            .is_some_and(|l| matches!(l.conn.state, State::Connecting | State::Handshaking))
    }

    fn still_closing(&mut self, slot: usize, generation: u32) -> bool {
        self.live(slot, generation)
            .is_some_and(|l| l.conn.state == State::Closing)
    }

    // ------------------------------------------------------------ traffic

    /// Sends every tick that is due.
    fn send_due_ticks(&mut self, now: u64) {
        while let Some(&Reverse((t, slot, generation))) = self.ticks.peek() {
            if t > now {
                break;
            }
            self.ticks.pop();
            let Some(live) = self.live(slot, generation) else {
                continue;
            };
            if live.conn.state != State::Open {
                continue;
            }
            self.send_due(slot, now);
        }
    }

    /// Sends the ticks of one connection that are due and fit its window,
    /// then queues its next tick; a full window leaves an overdue tick to
    /// the next echo.
    fn send_due(&mut self, slot: usize, now: u64) {
        let hold_end = self.hold_end;
        let Some(Slot {
            generation,
            occupant: Occupant::Live(live),
        }) = self.slots.get_mut(slot)
        else {
            return;
        };
        let spec = &self.cfg.mix.classes[live.class];
        let tmpl = &self.tmpls[live.class];
        let period = spec.period_ns();
        let conn = &mut live.conn;
        let sent = &mut self.stats.classes[live.class].sent;
        conn.scheduled = false;
        while conn.next_tick_ns <= now
            && conn.next_tick_ns < hold_end
            && conn.inflight.len() + spec.per_tick <= spec.window
        {
            for _ in 0..spec.per_tick {
                let len = if spec.size.is_fixed() {
                    spec.size.min
                } else {
                    self.rng.gen_range(spec.size.min..=spec.size.max)
                };
                conn.queue_message(tmpl, &mut self.rng, len, now, conn.next_tick_ns);
                *sent += 1;
            }
            conn.next_tick_ns += period;
        }
        if conn.next_tick_ns > now && conn.next_tick_ns < hold_end {
            self.ticks
                .push(Reverse((conn.next_tick_ns, slot, *generation)));
            conn.scheduled = true;
        }
        if let Err(e) = self.io.send(slot, &mut conn.tx) {
            self.finish_conn(slot, Some(Failure::from_io(&e)), now);
        }
    }

    /// The TCP connect of `slot` completed: send the upgrade request.
    fn on_connected(&mut self, slot: usize) {
        let Some(Slot {
            occupant: Occupant::Live(live),
            ..
        }) = self.slots.get_mut(slot)
        else {
            return;
        };
        if live.conn.state != State::Connecting {
            return;
        }
        live.conn
            .on_connected(&self.cfg.target, &self.tmpls[live.class]);
        if let Err(e) = self.io.send(slot, &mut live.conn.tx) {
            let now = self.now();
            self.finish_conn(slot, Some(Failure::from_io(&e)), now);
        }
    }

    /// The stream of `slot` ended: a lingering connection is done; any
    /// other ends as its state says.
    fn on_stream_end(&mut self, slot: usize, error: Option<io::Error>) {
        let now = self.now();
        let failure = match self.slots.get(slot).map(|s| &s.occupant) {
            Some(Occupant::Lingering) => return self.drop_lingering(slot),
            Some(Occupant::Live(live)) => live.conn.on_stream_end(error.as_ref()),
            _ => return,
        };
        self.finish_conn(slot, failure, now);
    }

    /// Bytes arrived on `slot` at `at` (monotonic ns).
    fn on_received(&mut self, slot: usize, at: u64) {
        let Some(Slot {
            occupant: Occupant::Live(live),
            ..
        }) = self.slots.get_mut(slot)
        else {
            return; // anything after a clean Close is ignored
        };
        let class = live.class;
        let conn = &mut live.conn;
        let now = at.saturating_sub(self.t0);
        let outcome = conn.on_bytes(
            self.io.received(),
            &self.tmpls[class],
            &mut self.rng,
            &mut self.stats.classes[class],
            now,
        );
        match outcome {
            Outcome::Idle => {}
            Outcome::Opened => {
                let iv = &mut self.stats.classes[class];
                iv.connect.saturating_record(at - conn.started_ns);
                iv.opened += 1;
                self.open_per_class[class] += 1;
                if self.draining {
                    self.begin_close(slot, now);
                    return;
                }
                let period = self.cfg.mix.classes[class].period_ns();
                let phase = phase_ns(conn.id as u64, period);
                conn.next_tick_ns = first_tick(now, phase, period);
                self.send_due(slot, now);
                return;
            }
            Outcome::Echoes(_) => {
                if conn.state == State::Open && !conn.scheduled {
                    self.send_due(slot, now);
                    return;
                }
            }
            Outcome::Finished(f) => {
                // A Close answer may be waiting: send it before closing.
                let _ = self.io.send(slot, &mut conn.tx);
                self.finish_conn(slot, f, now);
                return;
            }
        }
        // A pong may be waiting.
        if !conn.tx.is_empty() {
            if let Err(e) = self.io.send(slot, &mut conn.tx) {
                self.finish_conn(slot, Some(Failure::from_io(&e)), now);
            }
        }
    }

    // ------------------------------------------------------------ the end

    /// The hold is over: close every open connection (pending ones are
    /// closed as soon as they open) and give the closes time to finish.
    fn start_drain(&mut self, now: u64) {
        self.draining = true;
        self.ticks.clear();
        let close_ns = self.cfg.close_timeout.as_nanos() as u64;
        let connect_ns = self.cfg.connect_timeout.as_nanos() as u64;
        self.drain_deadline = now + connect_ns + 2 * close_ns + 1_000_000_000;
        for slot in 0..self.slots.len() {
            if self.is_open(slot) {
                self.begin_close(slot, now);
            }
        }
    }

    /// Ends the drain: whatever is left did not close in time.
    fn finish(&mut self, now: u64) -> io::Result<()> {
        for slot in 0..self.slots.len() {
            match self.slots[slot].occupant {
                Occupant::Free => {}
                Occupant::Lingering => {
                    self.stats.tcp_left_open += 1;
                    self.drop_lingering(slot);
                }
                Occupant::Live(_) => {
                    let f = Failure {
                        key: "drain_timeout".into(),
                        detail: "still open when the drain ended".into(),
                    };
                    self.finish_conn(slot, Some(f), now);
                }
            }
        }
        self.send_snapshot(self.interval_start, u64::MAX, SoakPhase::Drain);
        Ok(())
    }
}
