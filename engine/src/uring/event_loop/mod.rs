//! The io_uring worker's loop: it owns its ring and runs everything on it.
//!
//! Each turn:
//! 1. run the futures that are ready (hyper's HTTP phase, see
//!    [`super::executor`]) and start serving newly accepted connections;
//! 2. queue one send per connection that has committed output and no send
//!    in flight, and return freed receive buffers to the ring;
//! 3. **one** `io_uring_enter` that submits the turn's SQEs and waits for at
//!    least one completion (`SINGLE_ISSUER | DEFER_TASKRUN`: completion work
//!    runs in that enter). The wait needs no timeout: a multishot timeout
//!    SQE ticks the loop every sweep period (at most 100 ms), and only on a
//!    tick does the worker read the clock, sweep connection deadlines, fire
//!    timers and look at its stop flag;
//! 4. handle the completions: accepts, recvs (decoded and echoed in place,
//!    [`Loop::feed`]) and sends (buffers released, partial sends resumed).
//!
//! No tokio runtime, no eventfd, no epoll: the worker thread sleeps in
//! `io_uring_enter` and nowhere else.
//!
//! What the ring does (per DESIGN.md): multishot accept; multishot recv
//! into the worker's provided-buffer ring, so an idle connection holds
//! no receive buffer; at most one send in flight per connection, carrying
//! everything committed since (one `Send`, or a `SendMsg` with an iovec per
//! piece).
//!
//! # The echo path, zero-copy
//!
//! A recv completion hands us buffers. Each is decoded where the kernel put
//! it ([`crate::protocol::Decoder`]): headers parsed in place, payloads
//! unmasked in place, the echo header written over the end of the client's
//! header. The echo is then a range of that same buffer, queued as a send
//! piece that holds the buffer ([`super::buf_ring`]); the buffer returns to
//! the ring once its last piece is sent. Copies happen only off the fast
//! path: a fragmented message is reassembled, a text frame larger than
//! [`TEXT_IN_PLACE_LIMIT`] is copied out of the ring while it arrives (its
//! UTF-8 must be checked whole before any of it is sent), and a header cut
//! across two buffers gets a header of its own.
//!
//! # Backpressure
//!
//! A client that does not read its echoes makes sends stall, and the
//! buffers they point into stay out of the ring. Above
//! `--max-backpressure` unsent bytes the connection's recv is cancelled, so
//! it takes no more buffers; it is re-armed once the backlog drains to half.
//! A connection that stays above the cap for `--backpressure-timeout` is
//! closed (1008 queued, socket shut down). If the ring runs dry anyway
//! (`ENOBUFS`), starved connections are re-armed as buffers return.
//!
//! # Ownership rules (where io_uring bugs hide)
//!
//! - A slot is removed, and its fd closed, only when no operation names it
//!   (`Conn::ops == 0`).
//! - An in-flight send's outbox is boxed and untouched until its CQE
//!   ([`super::outbox`]).
//! - A receive buffer is written only while it is decoded, right after the
//!   completion that delivered it, and before any send pointing into it is
//!   queued; it returns to the kernel when its last hold is released.
//! - If the loop is dropped with operations in flight, it cancels them and
//!   waits; what is still in flight after that is leaked, never freed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;

use super::buf_ring::{ProvidedBuffers, GROUP_ID};
use super::conn::{Conn, Phase, RecvState, Unread, WebSocketState};
use super::outbox::{copy_into, Outbox, Piece};
use super::ring;
use crate::metrics::{RejectReason, WorkerStats};
use crate::protocol::frame::PING_FRAME;
use crate::protocol::plan::{decide, Action};
use crate::protocol::{close, frame, Decoder};
use crate::runtime::fd_limit;
use crate::runtime::shared::{Admission, Shared};

/// Submission queue entries per ring; the completion queue is 4x this.
const SQ_ENTRIES: u32 = 1024;
/// Text frames up to this size are echoed from the receive buffers; larger
/// ones are copied out while they arrive, so that one frame cannot hold
/// more of the shared ring than this until its UTF-8 check completes.
pub const TEXT_IN_PLACE_LIMIT: usize = 64 * 1024;
/// A text frame still arriving in more pieces than this is copied out of
/// the ring too (a client that trickles a frame in tiny segments would
/// otherwise keep one buffer per segment from going back to the ring).
const TEXT_IN_PLACE_PIECES: usize = 8;
/// Unsent bytes above which hyper's writes wait (HTTP phase only).
const HTTP_SEND_HIGH_WATER: usize = 256 * 1024;
/// Received bytes hyper has not read, above which an HTTP-phase
/// connection stops receiving until hyper catches up (half of it). hyper
/// never needs more at once (it refuses longer request heads), and
/// without the cap a client that keeps sending while hyper does not read
/// (a request whose response it never reads, say) held the whole receive
/// ring, and the worker's other connections starved (tests/faults.rs).
const HTTP_UNREAD_CAP: usize = crate::http::MAX_REQUEST_HEAD;
/// The longest the loop sleeps without looking at its stop flag and
/// connection deadlines.
const MAX_SWEEP_PERIOD: Duration = Duration::from_millis(100);
/// The shortest sweep period.
const MIN_SWEEP_PERIOD: Duration = Duration::from_millis(10);

/// What an in-flight operation is, in the low byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Cancel = 4,
    Tick = 5,
}

fn user_data(key: usize, op: Op) -> u64 {
    ((key as u64) << 8) | op as u64
}

fn decode_user_data(user_data: u64) -> (usize, Option<Op>) {
    let op = match user_data & 0xff {
        1 => Some(Op::Accept),
        2 => Some(Op::Recv),
        3 => Some(Op::Send),
        4 => Some(Op::Cancel),
        5 => Some(Op::Tick),
        _ => None,
    };
    ((user_data >> 8) as usize, op)
}

/// The limits and periods the loop enforces, from the [`Config`].
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_message: usize,
    max_backpressure: usize,
    backpressure_timeout_ms: Option<u64>,
    keep_alive_interval_ms: Option<u64>,
    keep_alive_timeout_ms: Option<u64>,
    handshake_timeout_ms: u64,
    sweep_period: Duration,
}

impl Limits {
    fn new(config: &crate::config::Config) -> Self {
        let ms = |d: Duration| d.as_millis() as u64;
        let periods = [
            config.keep_alive_interval,
            config.keep_alive_timeout,
            config.backpressure_timeout,
            Some(config.handshake_timeout),
        ];
        let shortest = periods
            .iter()
            .flatten()
            .min()
            .copied()
            .unwrap_or(MAX_SWEEP_PERIOD);
        Self {
            max_message: config.max_message_size,
            max_backpressure: config.max_backpressure,
            backpressure_timeout_ms: config.backpressure_timeout.map(ms),
            keep_alive_interval_ms: config.keep_alive_interval.map(ms),
            keep_alive_timeout_ms: config.keep_alive_timeout.map(ms),
            handshake_timeout_ms: ms(config.handshake_timeout),
            sweep_period: (shortest / 4).clamp(MIN_SWEEP_PERIOD, MAX_SWEEP_PERIOD),
        }
    }
}

/// A connection deadline the sweep found passed.
enum Deadline {
    None,
    Backpressure,
    Handshake,
    Pong,
    Ping,
}

/// Where the chunk being decoded lives.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// Bytes `offset..` of receive buffer `id`.
    Ring { id: u16, offset: usize },
    /// Bytes hyper read past the upgrade request (copied when echoed).
    Heap(&'a [u8]),
}

/// A worker's ring, buffers and connections.
pub struct Loop {
    /// Completions handled, but for the loop's own tick: how busy it is.
    completions: u64,
    ring: ManuallyDrop<IoUring>,
    buffers: ManuallyDrop<ProvidedBuffers>,
    conns: Slab<Conn>,
    listener: Option<OwnedFd>,
    accept_armed: bool,
    /// Accept failed for lack of descriptors: re-armed on the next tick,
    /// not at once.
    accept_backing_off: bool,
    /// Connections with committed output and no send in flight.
    to_send: Vec<usize>,
    /// Connections waiting for buffers to return to the ring.
    starved: VecDeque<usize>,
    /// Recycled outboxes, boxed because an in-flight send points into its
    /// outbox, which must not move (see [`super::outbox`]).
    #[allow(clippy::vec_box)]
    outboxes: Vec<Box<Outbox>>,
    /// Connections accepted this turn that need their HTTP task.
    accepted: Vec<(usize, u32)>,
    /// Scratch: what decoding a chunk asks for.
    actions: Vec<Action>,
    /// The ring ran dry once (logged once).
    ran_dry: bool,
    /// A generation stamp per accepted connection, so that a handle to a
    /// closed slot never reaches the slot's next connection.
    next_generation: u32,
    stats: Arc<WorkerStats>,
    /// The engine's shared state (for the shedder, [`crate::runtime::fd_limit`]).
    shared: Arc<Shared>,
    /// This worker's index.
    worker: usize,
    limits: Limits,
    epoch: Instant,
    now_ms: u64,
    stopping: bool,
    /// The loop is being dropped: completions are only collected, nothing
    /// is armed or sent again (see `Drop`).
    exiting: bool,
    /// The sweep period, for the multishot timeout that ticks the loop (the
    /// kernel reads it while the timeout is armed, so it is boxed).
    tick_period: Box<types::Timespec>,
    /// The multishot tick timeout is armed.
    tick_armed: bool,
    /// The kernel refused multishot timeouts (before 6.4): waits carry a
    /// timeout instead.
    tick_by_wait: bool,
    /// A tick arrived since the last [`Loop::take_tick`].
    tick_due: bool,
    /// When the last tick was taken (only read with `tick_by_wait`).
    last_tick: Instant,
}

impl Loop {
    /// Creates worker `worker`'s ring and its receive buffers, and starts
    /// accepting on `listener`. Call on the worker thread (the ring is
    /// `SINGLE_ISSUER`).
    pub fn new(shared: Arc<Shared>, worker: usize, listener: OwnedFd) -> io::Result<Self> {
        let config = &shared.config;
        let stats = shared.workers[worker].clone();
        let ring = ring::build(SQ_ENTRIES, SQ_ENTRIES * 4)?;
        let buffers = ProvidedBuffers::new(config.receive_buffers, config.receive_buffer_size)?;
        if !buffers.register(&ring.submitter())? {
            tracing::debug!(
                worker,
                "receive buffers consumed whole: no IOU_PBUF_RING_INC"
            );
        }
        let mut event_loop = Self {
            completions: 0,
            ring: ManuallyDrop::new(ring),
            buffers: ManuallyDrop::new(buffers),
            conns: Slab::with_capacity(slot_capacity()),
            listener: Some(listener),
            accept_armed: false,
            accept_backing_off: false,
            to_send: Vec::new(),
            starved: VecDeque::new(),
            outboxes: Vec::new(),
            accepted: Vec::new(),
            actions: Vec::new(),
            ran_dry: false,
            next_generation: 0,
            stats,
            limits: Limits::new(config),
            epoch: Instant::now(),
            now_ms: 0,
            stopping: false,
            exiting: false,
            tick_period: Box::new(types::Timespec::from(Limits::new(config).sweep_period)),
            tick_armed: false,
            tick_by_wait: false,
            tick_due: false,
            last_tick: Instant::now(),
            shared: shared.clone(),
            worker,
        };
        event_loop.arm_accept();
        event_loop.arm_tick();
        Ok(event_loop)
    }

    /// Open connections (HTTP and WebSocket).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Completions handled so far, but for the loop's own tick: it grows
    /// with every accept, recv and send, and stays put while idle.
    pub fn completions(&self) -> u64 {
        self.completions
    }

    /// Whether connections were accepted since the last [`Loop::take_accepted`].
    pub fn has_accepted(&self) -> bool {
        !self.accepted.is_empty()
    }

    /// Connections accepted since the last call, with their generation.
    pub fn take_accepted(&mut self) -> Vec<(usize, u32)> {
        std::mem::take(&mut self.accepted)
    }

    /// Whether the periodic tick came since the last call: time to sweep
    /// the connections, fire timers and look at the stop flag. The loop
    /// reads the clock only then, never per message.
    pub fn take_tick(&mut self) -> bool {
        std::mem::take(&mut self.tick_due)
    }

    /// Arms the multishot timeout that ticks the loop every sweep period,
    /// so that the turn's wait needs no timeout of its own.
    fn arm_tick(&mut self) {
        if self.tick_armed || self.tick_by_wait {
            return;
        }
        let entry = opcode::Timeout::new(&*self.tick_period)
            .flags(types::TimeoutFlags::MULTISHOT)
            .build()
            .user_data(user_data(0, Op::Tick));
        self.tick_armed = true;
        self.push(entry);
    }

    fn complete_tick(&mut self, result: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.tick_armed = false;
        }
        if result == -libc::EINVAL {
            tracing::debug!("multishot timeouts unsupported; the loop's waits carry a timeout");
            self.tick_by_wait = true;
        }
        self.tick_due = true;
        self.arm_tick();
    }

    fn push(&mut self, entry: squeue::Entry) {
        // SAFETY: every SQE we build points only at memory that outlives its
        // completion: slot-owned outboxes (boxed, untouched while in flight),
        // the buffer ring, or nothing.
        while unsafe { self.ring.submission().push(&entry) }.is_err() {
            // The queue is full: submit what is there without waiting.
            if let Err(e) = self.ring.submit() {
                tracing::warn!("io_uring submit while the queue is full: {e}");
            }
        }
    }

    fn cancel(&mut self, target: u64) {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data(0, Op::Cancel));
        self.push(entry);
    }

    fn arm_accept(&mut self) {
        let Some(listener) = self.listener.as_ref() else {
            return;
        };
        if self.accept_armed || self.accept_backing_off || self.stopping || self.exiting {
            return;
        }
        let entry = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
            .build()
            .user_data(user_data(0, Op::Accept));
        self.accept_armed = true;
        self.push(entry);
    }

    fn arm_recv(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.closing || conn.recv != RecvState::Idle || self.exiting {
            return;
        }
        conn.recv = RecvState::Armed;
        conn.ops += 1;
        let fd = types::Fd(conn.fd.as_raw_fd());
        let entry = match conn.phase {
            // The HTTP phase takes one buffer per recv, re-armed after each
            // one (`complete_recv`) until hyper has [`HTTP_UNREAD_CAP`]
            // unread: a multishot recv would fill buffers as fast as the
            // client sends, all before a pause could land, and a client
            // that sends while hyper does not read would drain the ring.
            Phase::Http(_) => opcode::Recv::new(fd, std::ptr::null_mut(), 0)
                .buf_group(GROUP_ID)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT),
            // A WebSocket: plain multishot recv, each completion in one
            // buffer (after the previous one's bytes: the ring is incremental).
            // Bundles (several buffers per completion) measured 1.8% more
            // CPU per echo at 100 x 500 Hz x 20 B (median of 5, against
            // 1.005x the C floor without), and no better at 200 x 16 KiB.
            Phase::WebSocket(_) => opcode::RecvMulti::new(fd, GROUP_ID).build(),
        };
        self.push(entry.user_data(user_data(key, Op::Recv)));
    }

    /// One turn's I/O: queue the sends, give buffers back, one enter that
    /// submits and, with `wait`, waits for a completion (the tick bounds the
    /// wait), then handle every completion.
    pub fn turn(&mut self, wait: bool) -> io::Result<()> {
        let to_send = std::mem::take(&mut self.to_send);
        for &key in &to_send {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.send_listed = false;
                self.start_send(key);
            }
        }
        let mut to_send = to_send;
        to_send.clear();
        self.to_send = to_send;
        self.buffers.publish();
        self.rearm_starved();
        let timeout = match (wait, self.tick_by_wait) {
            (false, _) => None,
            (true, false) => Some(None),
            (true, true) => Some(Some(self.limits.sweep_period)),
        };
        self.enter(timeout)?;
        if self.tick_by_wait && self.last_tick.elapsed() >= self.limits.sweep_period {
            self.last_tick = Instant::now();
            self.tick_due = true;
        }
        loop {
            let Some(cqe) = self.ring.completion().next() else {
                break;
            };
            self.complete(cqe.user_data(), cqe.result(), cqe.flags());
        }
        Ok(())
    }

    /// Submits, and with `Some` waits for one completion, at most the given
    /// time if any.
    fn enter(&mut self, wait: Option<Option<Duration>>) -> io::Result<()> {
        let result = match wait {
            None => {
                let flags =
                    self.ring.submission().taskrun() || self.ring.submission().cq_overflow();
                if self.ring.submission().is_empty() && !flags {
                    return Ok(());
                }
                self.ring.submit()
            }
            Some(None) => self.ring.submit_and_wait(1),
            Some(Some(timeout)) => {
                let ts = types::Timespec::from(timeout);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn complete(&mut self, user_data: u64, result: i32, flags: u32) {
        let (key, op) = decode_user_data(user_data);
        if !matches!(op, Some(Op::Tick)) {
            self.completions = self.completions.wrapping_add(1);
        }
        match op {
            Some(Op::Accept) => self.complete_accept(result, flags),
            Some(Op::Recv) => self.complete_recv(key, result, flags),
            Some(Op::Send) => self.complete_send(key, result),
            Some(Op::Tick) => self.complete_tick(result, flags),
            Some(Op::Cancel) | None => {}
        }
    }

    fn complete_accept(&mut self, result: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.accept_armed = false;
        }
        if result >= 0 {
            // SAFETY: a non-negative accept result is a new fd nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(result) };
            if self.stopping || self.listener.is_none() {
                return;
            }
            if let Err(e) = socket2::SockRef::from(&fd).set_nodelay(true) {
                tracing::debug!("TCP_NODELAY: {e}");
            }
            let deadline = self.now_ms + self.limits.handshake_timeout_ms;
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1);
            let key = self.conns.insert(Conn::new(fd, deadline, generation));
            self.accepted.push((key, generation));
            self.arm_recv(key);
        } else if -result == libc::ECANCELED {
            self.listener = None;
        } else {
            self.accept_failed(io::Error::from_raw_os_error(-result));
        }
    }

    /// A failed accept. The kernel takes the new connection's descriptor
    /// before it looks for a connection, so out of descriptors the
    /// multishot ends with `EMFILE` even when none is pending, and a
    /// re-armed one fails at once: it is re-armed on the next tick, after
    /// the pending connections have been dropped (see [`crate::runtime::fd_limit`]).
    /// Other errors re-arm at once (a connection reset in the backlog) or
    /// on the next tick.
    fn accept_failed(&mut self, error: io::Error) {
        if fd_limit::is_exhaustion(&error) {
            let dropped = self.shared.out_of_fds.shed_pending(self.worker, &error);
            self.stats.connections_dropped(dropped);
            self.accept_backing_off = true;
        } else if fd_limit::is_per_connection(&error) {
            tracing::debug!("accept: {error}");
            self.arm_accept();
        } else {
            tracing::warn!("accept failed: {error}; retrying on the next tick");
            self.accept_backing_off = true;
        }
    }

    fn complete_recv(&mut self, key: usize, result: i32, flags: u32) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let more = cqueue::more(flags);
        if !more {
            conn.ops -= 1;
            conn.recv = match conn.recv {
                RecvState::Cancelling if !conn.closing => RecvState::Paused,
                RecvState::Armed | RecvState::Cancelling => RecvState::Idle,
                other => other,
            };
        }
        match result {
            n if n > 0 => {
                let Some(id) = cqueue::buffer_select(flags) else {
                    tracing::error!("recv completion without a buffer id");
                    return;
                };
                let len = n as usize;
                let offset = self.buffers.take(id, len, cqueue::buffer_more(flags));
                self.received(key, id, offset, len);
            }
            0 => self.read_ended(key, 0),
            n if -n == libc::ENOBUFS => {
                // Whatever this connection holds of a frame still arriving
                // goes out of the ring, so it cannot wait on itself.
                self.copy_out_uncommitted(key);
                let conn = &mut self.conns[key];
                if conn.recv == RecvState::Idle {
                    conn.recv = RecvState::Starved;
                    self.starved.push_back(key);
                }
                let whole_ring = self.buffers.ran_short();
                if whole_ring && !self.ran_dry {
                    self.ran_dry = true;
                    tracing::info!(
                        "receive buffer ring ran dry ({} x {} B): receivers wait for \
                         buffers to return (logged once; see --receive-buffers)",
                        self.buffers.count(),
                        self.buffers.buffer_size(),
                    );
                }
            }
            n if -n == libc::ECANCELED => {}
            n => self.read_ended(key, -n),
        }
        // EOF or an error: reading is over, nothing to re-arm.
        let reading_ended =
            result == 0 || (result < 0 && -result != libc::ENOBUFS && -result != libc::ECANCELED);
        if let Some(conn) = self.conns.get_mut(key) {
            let resume = match conn.recv {
                // A one-shot HTTP recv completed, or a multishot one ended
                // without EOF, error or our cancel (CQ overflow, say); a
                // paused HTTP connection stays paused.
                RecvState::Idle => !more && !reading_ended,
                // Our pause's cancel finished after what paused it drained.
                RecvState::Paused => may_resume(conn, &self.limits),
                _ => false,
            };
            if resume {
                conn.recv = RecvState::Idle;
                conn.over_cap_since_ms = None;
                self.arm_recv(key);
            }
        }
        self.maybe_remove(key);
    }

    /// Bytes `offset..offset + len` of buffer `id` (held once) arrived on
    /// `key`.
    fn received(&mut self, key: usize, id: u16, offset: usize, len: usize) {
        let conn = &mut self.conns[key];
        if conn.closing {
            self.buffers.release(id);
            return;
        }
        match &mut conn.phase {
            Phase::Http(http) => {
                http.unread.push_back(Unread {
                    id,
                    start: offset as u32,
                    end: (offset + len) as u32,
                });
                if let Some(reader) = http.reader.take() {
                    reader.wake();
                }
                if http.unread_bytes() > HTTP_UNREAD_CAP {
                    self.pause_recv(key);
                }
            }
            Phase::WebSocket(_) => {
                self.feed(key, Source::Ring { id, offset }, len);
                self.buffers.release(id);
            }
        }
    }

    /// The peer's EOF (`errno` 0) or a recv error.
    fn read_ended(&mut self, key: usize, errno: i32) {
        let conn = &mut self.conns[key];
        match &mut conn.phase {
            Phase::Http(http) => {
                http.read_end = Some(errno);
                if let Some(reader) = http.reader.take() {
                    reader.wake();
                }
            }
            // The peer half-closed: echoes of whole frames still go out (as
            // on the epoll reference); of a frame cut short, what was
            // committed already goes too (a binary echo streams as it
            // arrives), the rest does not. No close frame: the peer cannot
            // answer it (tests/faults.rs, half-close).
            Phase::WebSocket(_) if errno == 0 => {
                if let Some(queued) = conn.queued.as_mut() {
                    queued.truncate(conn.committed as usize, &mut self.buffers);
                }
                self.begin_close(key);
            }
            Phase::WebSocket(_) => self.close_now(key),
        }
    }

    fn rearm_starved(&mut self) {
        while let Some(&key) = self.starved.front() {
            // Re-arm only with a buffer free, or the recv fails again.
            if self.buffers.free() == 0 {
                return;
            }
            self.starved.pop_front();
            if let Some(conn) = self.conns.get_mut(key) {
                if conn.recv == RecvState::Starved {
                    conn.recv = RecvState::Idle;
                    self.arm_recv(key);
                }
            }
        }
    }

    // ---- the WebSocket echo path ------------------------------------------

    /// Decodes `len` bytes of `source` for WebSocket `key` and applies what
    /// they ask for.
    fn feed(&mut self, key: usize, source: Source<'_>, len: usize) {
        let max_message = self.limits.max_message;
        let mut actions = std::mem::take(&mut self.actions);
        let conn = &mut self.conns[key];
        let Phase::WebSocket(ws) = &mut conn.phase else {
            return;
        };
        let mut heap_copy;
        let chunk: &mut [u8] = match source {
            Source::Ring { id, offset } => self.buffers.chunk_mut(id, offset, len),
            Source::Heap(bytes) => {
                heap_copy = bytes.to_vec();
                &mut heap_copy
            }
        };
        let close_sent = ws.close_sent;
        let assembled = &mut ws.assembled;
        ws.decoder.feed(chunk, max_message, |event| {
            decide(event, close_sent, assembled, &mut actions)
        });
        let chunk: &[u8] = chunk;
        // The chunk's bytes are only read from here on.
        let heap = match source {
            Source::Heap(_) => Some(chunk.to_vec()),
            Source::Ring { .. } => None,
        };
        for action in actions.drain(..) {
            self.apply(key, source, heap.as_deref(), action);
        }
        self.actions = actions;
        self.check_backpressure(key);
    }

    fn apply(&mut self, key: usize, source: Source<'_>, heap: Option<&[u8]>, action: Action) {
        let stats = self.stats.clone();
        match action {
            Action::Echo { start, end, text } => {
                let piece = match (source, heap) {
                    (Source::Ring { id, offset }, _) => {
                        self.buffers.hold(id);
                        Piece::Ring {
                            id,
                            start: (offset + start) as u32,
                            end: (offset + end) as u32,
                        }
                    }
                    (Source::Heap(_), Some(bytes)) => Piece::Owned {
                        bytes: bytes[start..end].to_vec(),
                        start: 0,
                    },
                    (Source::Heap(_), None) => {
                        unreachable!("heap chunks are kept for their echoes")
                    }
                };
                self.queue_echo_piece(key, piece, text);
            }
            Action::Owned(bytes) => self.queue(key, Piece::Owned { bytes, start: 0 }),
            Action::Commit => self.commit(key),
            Action::EndMessage { len } => {
                stats.message_received(len as usize);
                stats.message_sent(len as usize);
                if let Some(ws) = self.conns[key].websocket() {
                    ws.mid_frame = false;
                    ws.copying = false;
                    ws.frame_queued = 0;
                }
                self.commit(key);
                self.send_due_control(key);
            }
            Action::Discarded { len } => stats.message_received(len as usize),
            Action::Pong => {
                if let Some(ws) = self.conns[key].websocket() {
                    ws.pong_wait_since_ms = None;
                }
            }
            Action::Close { code, reply } => {
                stats.close_received(code);
                if let Some(reply) = reply {
                    self.queue(
                        key,
                        Piece::Owned {
                            bytes: reply,
                            start: 0,
                        },
                    );
                    self.commit(key);
                    stats.close_sent(code);
                }
                if let Some(ws) = self.conns[key].websocket() {
                    ws.close_sent = true;
                }
                self.begin_close(key);
            }
            Action::Fail(code) => {
                let conn = &mut self.conns[key];
                if let Some(queued) = conn.queued.as_mut() {
                    queued.truncate(conn.committed as usize, &mut self.buffers);
                }
                let first_close = conn.websocket().is_some_and(|ws| {
                    ws.mid_frame = false;
                    ws.copying = false;
                    ws.frame_queued = 0;
                    ws.assembled = None;
                    !std::mem::replace(&mut ws.close_sent, true)
                });
                if first_close {
                    self.queue(
                        key,
                        Piece::Owned {
                            bytes: frame::close_frame(code),
                            start: 0,
                        },
                    );
                    self.commit(key);
                    stats.close_sent(code);
                }
                self.begin_close(key);
            }
        }
    }

    /// Queues a piece of an echo frame; a large text frame moves out of the
    /// ring into a copy of its own (see [`TEXT_IN_PLACE_LIMIT`]).
    fn queue_echo_piece(&mut self, key: usize, piece: Piece, text: bool) {
        let conn = &mut self.conns[key];
        let queued = queued_of(&mut conn.queued, &mut self.outboxes);
        let Phase::WebSocket(ws) = &mut conn.phase else {
            piece.release(&mut self.buffers);
            return;
        };
        ws.mid_frame = true;
        ws.frame_queued += piece.len() as u64;
        if text && ws.copying {
            let mut bytes = Vec::new();
            copy_into(&piece, &self.buffers, &mut bytes);
            queued.extend_last(&bytes);
            piece.release(&mut self.buffers);
            return;
        }
        queued.push(piece, &mut self.buffers);
        let uncommitted_bytes = queued.bytes() - conn.committed_bytes as usize;
        let uncommitted_pieces = queued.len() - conn.committed as usize;
        if text
            && (uncommitted_bytes > TEXT_IN_PLACE_LIMIT
                || uncommitted_pieces > TEXT_IN_PLACE_PIECES)
        {
            self.copy_out_uncommitted(key);
        }
    }

    /// Moves the text frame still arriving on `key` out of the ring: its
    /// queued pieces become one owned piece, and its buffers go back.
    fn copy_out_uncommitted(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let committed = conn.committed as usize;
        let Phase::WebSocket(ws) = &mut conn.phase else {
            return;
        };
        let Some(queued) = conn.queued.as_mut() else {
            return;
        };
        if ws.copying || !ws.mid_frame || queued.len() == committed {
            return;
        }
        let mut rest = Outbox::default();
        queued.split_off_into(committed, &mut rest);
        let mut copy = Vec::with_capacity(rest.bytes() * 2);
        for piece in rest.take_pieces() {
            copy_into(&piece, &self.buffers, &mut copy);
            piece.release(&mut self.buffers);
        }
        queued.push(
            Piece::Owned {
                bytes: copy,
                start: 0,
            },
            &mut self.buffers,
        );
        ws.copying = true;
    }

    /// Queues bytes of our own after everything queued so far.
    fn queue(&mut self, key: usize, piece: Piece) {
        let conn = &mut self.conns[key];
        queued_of(&mut conn.queued, &mut self.outboxes).push(piece, &mut self.buffers);
    }

    /// Makes everything queued sendable, and lists the connection for the
    /// end of the turn.
    fn commit(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let Some(queued) = conn.queued.as_mut() else {
            return;
        };
        let mut committed = queued.len();
        // A send is stuck on a slow peer: keep what waits behind it out of
        // the receive ring.
        if conn.peer_slow && conn.inflight.is_some() && queued.spill(committed, &mut self.buffers) {
            committed = 1;
        }
        conn.committed = committed as u32;
        conn.committed_bytes = queued.bytes() as u32;
        if conn.committed > 0 && conn.inflight.is_none() && !conn.send_listed {
            conn.send_listed = true;
            self.to_send.push(key);
        }
    }

    /// Sends a ping or close 1001 that waited for the end of a frame.
    fn send_due_control(&mut self, key: usize) {
        let now = self.now_ms;
        let Some(ws) = self.conns[key].websocket() else {
            return;
        };
        if ws.mid_frame || ws.close_sent {
            return;
        }
        let frame = if std::mem::take(&mut ws.going_away_due) {
            ws.close_sent = true;
            self.stats.close_sent(close::GOING_AWAY);
            frame::close_frame(close::GOING_AWAY)
        } else if std::mem::take(&mut ws.ping_due) {
            ws.pong_wait_since_ms.get_or_insert(now);
            self.stats.ping_sent();
            PING_FRAME.to_vec()
        } else {
            return;
        };
        self.queue(
            key,
            Piece::Owned {
                bytes: frame,
                start: 0,
            },
        );
        self.commit(key);
    }

    /// Pauses a connection's recv while it holds more unsent bytes than
    /// `--max-backpressure`.
    fn check_backpressure(&mut self, key: usize) {
        let now = self.now_ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        // The frame under way does not count: a peer may send a whole large
        // frame before it reads any of its echo (the epoll reference reads
        // whole frames too), so one connection holds at most the cap plus
        // one frame (`--max-message-size`).
        let frame = conn.websocket().map_or(0, |ws| ws.frame_queued as usize);
        if conn.unsent().saturating_sub(frame) <= self.limits.max_backpressure || conn.closing {
            return;
        }
        conn.over_cap_since_ms.get_or_insert(now);
        self.pause_recv(key);
    }

    /// Stops `key`'s recv until [`may_resume`] says it may go on.
    fn pause_recv(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        match conn.recv {
            RecvState::Armed => {
                conn.recv = RecvState::Cancelling;
                self.cancel(user_data(key, Op::Recv));
            }
            RecvState::Idle | RecvState::Starved => conn.recv = RecvState::Paused,
            RecvState::Cancelling | RecvState::Paused => {}
        }
    }

    /// Re-arms `key`'s paused recv if what paused it has drained.
    fn resume_if_drained(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.recv == RecvState::Paused && !conn.closing && may_resume(conn, &self.limits) {
            conn.recv = RecvState::Idle;
            conn.over_cap_since_ms = None;
            self.arm_recv(key);
        }
    }

    // ---- sends ------------------------------------------------------------

    /// Submits one send carrying `key`'s committed pieces.
    fn start_send(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.inflight.is_some() || conn.committed == 0 {
            return;
        }
        let Some(mut queued) = conn.queued.take() else {
            return;
        };
        let mut sending = if conn.committed as usize == queued.len() {
            queued
        } else {
            // Keep the uncommitted tail (a text frame still arriving) queued.
            let mut rest = self.outboxes.pop().unwrap_or_default();
            queued.split_off_into(conn.committed as usize, &mut rest);
            conn.queued = Some(rest);
            queued
        };
        conn.committed = 0;
        conn.committed_bytes = 0;
        if conn.peer_slow {
            sending.spill(usize::MAX, &mut self.buffers);
        }
        let entry = sending
            .send_entry(types::Fd(conn.fd.as_raw_fd()), &self.buffers)
            .user_data(user_data(key, Op::Send));
        conn.inflight = Some(sending);
        conn.ops += 1;
        self.push(entry);
    }

    fn complete_send(&mut self, key: usize, result: i32) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.ops -= 1;
        let mut sent = conn
            .inflight
            .take()
            .expect("a send completion has its outbox");
        if result > 0 && !self.exiting {
            sent.advance(result as usize, &mut self.buffers);
        } else {
            // A failed (or zero-byte) send: the connection is gone.
            sent.clear(&mut self.buffers);
            self.outboxes.push(sent);
            self.close_now(key);
            self.maybe_remove(key);
            return;
        }
        if sent.is_empty() {
            self.conns[key].peer_slow = false;
            self.outboxes.push(sent);
            self.commit_if_listed(key);
        } else {
            // A partial send: the peer's window is full. The rest goes first,
            // at once, from a copy, so the receive ring is not held by a
            // peer that does not read.
            let conn = &mut self.conns[key];
            conn.peer_slow = true;
            sent.spill(usize::MAX, &mut self.buffers);
            let committed = conn.committed as usize;
            if let Some(queued) = conn.queued.as_mut() {
                if queued.spill(committed, &mut self.buffers) {
                    conn.committed = 1;
                }
            }
            let entry = sent
                .send_entry(types::Fd(conn.fd.as_raw_fd()), &self.buffers)
                .user_data(user_data(key, Op::Send));
            conn.inflight = Some(sent);
            conn.ops += 1;
            self.push(entry);
        }
        let max = self.limits.max_backpressure;
        let conn = &mut self.conns[key];
        if conn.unsent() <= max / 2 {
            conn.over_cap_since_ms = None;
            self.resume_if_drained(key);
        }
        if let Phase::Http(http) = &mut self.conns[key].phase {
            if let Some(writer) = http.writer.take() {
                writer.wake();
            }
        }
        self.maybe_remove(key);
    }

    /// After a send completed: list the connection again if it has
    /// committed output waiting.
    fn commit_if_listed(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.committed > 0 && !conn.send_listed {
            conn.send_listed = true;
            self.to_send.push(key);
        }
    }

    // ---- closing ----------------------------------------------------------

    /// Stops receiving; the connection closes once its output is sent.
    fn begin_close(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.closing {
            return;
        }
        conn.closing = true;
        if conn.recv == RecvState::Armed {
            conn.recv = RecvState::Cancelling;
            self.cancel(user_data(key, Op::Recv));
        }
    }

    /// Drops the connection without sending what is queued (EOF, errors,
    /// keep-alive timeout, backpressure timeout).
    fn close_now(&mut self, key: usize) {
        self.begin_close(key);
        let conn = &mut self.conns[key];
        if let Some(mut queued) = conn.queued.take() {
            queued.clear(&mut self.buffers);
            self.outboxes.push(queued);
        }
        conn.committed = 0;
        conn.committed_bytes = 0;
        if conn.inflight.is_some() {
            // Make the stuck send fail now rather than when the peer reads.
            // SAFETY: shutdown(2) on a socket we own; it frees nothing.
            unsafe { libc::shutdown(conn.fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }

    /// Removes a closing connection once nothing is queued or in flight.
    fn maybe_remove(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let http_alive = matches!(&conn.phase, Phase::Http(http) if http.io_alive);
        if !conn.closing
            || conn.ops > 0
            || conn.inflight.is_some()
            || conn.committed > 0
            || http_alive
        {
            return;
        }
        let mut conn = self.conns.remove(key);
        if let Some(mut queued) = conn.queued.take() {
            queued.clear(&mut self.buffers);
            self.outboxes.push(queued);
        }
        if let Phase::Http(http) = &mut conn.phase {
            for unread in http.unread.drain(..) {
                self.buffers.release(unread.id);
            }
        }
        // Dropping `conn` closes the fd and releases the admission.
    }

    // ---- the periodic sweep -----------------------------------------------

    /// Checks every connection's deadlines: handshake timeout, keep-alive
    /// pings and pong timeout, backpressure timeout; and re-arms accept.
    pub fn sweep(&mut self, now: Instant) {
        let now = now.duration_since(self.epoch).as_millis() as u64;
        self.now_ms = now;
        self.buffers.decay();
        self.accept_backing_off = false;
        self.arm_accept();
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            match self.deadline_passed(key, now) {
                Deadline::None => {}
                Deadline::Backpressure => {
                    self.stats.backpressure_closed();
                    tracing::debug!(key, "backpressure timeout: closing");
                    self.close_now(key);
                    self.maybe_remove(key);
                }
                Deadline::Handshake => {
                    self.stats.handshake_rejected(RejectReason::Timeout);
                    tracing::debug!("handshake timeout: no request, or an idle HTTP connection");
                    if let Some(http) = self.conns[key].http() {
                        http.task = None;
                    }
                    self.begin_close(key);
                }
                Deadline::Pong => {
                    self.stats.keep_alive_timed_out();
                    self.close_now(key);
                    self.maybe_remove(key);
                }
                Deadline::Ping => self.send_due_control(key),
            }
        }
    }

    /// Which deadline of `key`, if any, has passed at `now`. A due ping is
    /// marked (and its next one scheduled) here.
    fn deadline_passed(&mut self, key: usize, now: u64) -> Deadline {
        let limits = self.limits;
        let conn = &mut self.conns[key];
        if conn.closing {
            return Deadline::None;
        }
        if let (Some(since), Some(timeout)) =
            (conn.over_cap_since_ms, limits.backpressure_timeout_ms)
        {
            if now.saturating_sub(since) >= timeout {
                return Deadline::Backpressure;
            }
        }
        match &mut conn.phase {
            Phase::Http(_) if now >= conn.handshake_deadline_ms => Deadline::Handshake,
            Phase::Http(_) => Deadline::None,
            Phase::WebSocket(ws) => {
                let Some(interval) = limits.keep_alive_interval_ms else {
                    return Deadline::None;
                };
                if let (Some(since), Some(timeout)) =
                    (ws.pong_wait_since_ms, limits.keep_alive_timeout_ms)
                {
                    if now.saturating_sub(since) >= timeout {
                        return Deadline::Pong;
                    }
                }
                if now >= ws.next_ping_ms {
                    ws.next_ping_ms = now + interval;
                    ws.ping_due = true;
                    return Deadline::Ping;
                }
                Deadline::None
            }
        }
    }

    /// Stops accepting, cancels the HTTP phases and sends close 1001 to
    /// every WebSocket (at its next frame boundary).
    pub fn begin_shutdown(&mut self) {
        self.stopping = true;
        if self.accept_armed {
            self.cancel(user_data(0, Op::Accept));
        } else {
            self.listener = None;
        }
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            match &mut self.conns[key].phase {
                Phase::Http(http) => {
                    http.task = None;
                    self.begin_close(key);
                }
                Phase::WebSocket(ws) => {
                    ws.going_away_due = true;
                    self.send_due_control(key);
                }
            }
        }
    }

    /// Cancels every HTTP-phase task (at exit).
    pub fn cancel_http_tasks(&mut self) {
        for (_, conn) in self.conns.iter_mut() {
            if let Some(http) = conn.http() {
                http.task = None;
            }
        }
    }

    // ---- the HTTP phase (called by the adapter) ---------------------------

    fn http_conn(&mut self, key: usize, generation: u32) -> Option<&mut Conn> {
        self.conns
            .get_mut(key)
            .filter(|conn| conn.generation == generation)
    }

    /// Stores the task that serves HTTP on `key`.
    pub fn set_http_task(&mut self, key: usize, generation: u32, task: async_task::Task<()>) {
        match self.http_conn(key, generation).and_then(|conn| conn.http()) {
            Some(http) => http.task = Some(task),
            None => drop(task),
        }
    }

    /// Copies received bytes for hyper, up to the end of the next request
    /// head (see [`HttpState::head_end`]).
    pub fn http_read(
        &mut self,
        key: usize,
        generation: u32,
        waker: &std::task::Waker,
        out: &mut hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let idle_deadline = self.now_ms + self.limits.handshake_timeout_ms;
        let Some(conn) = self
            .conns
            .get_mut(key)
            .filter(|conn| conn.generation == generation)
        else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let Some(http) = conn.http() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if http.unread.is_empty() {
            return match http.read_end {
                Some(0) => Poll::Ready(Ok(())),
                Some(errno) => Poll::Ready(Err(io::Error::from_raw_os_error(errno))),
                None => {
                    if !http.reader.as_ref().is_some_and(|w| w.will_wake(waker)) {
                        http.reader = Some(waker.clone());
                    }
                    Poll::Pending
                }
            };
        }
        while out.remaining() > 0 {
            let Some(unread) = http.unread.front_mut() else {
                break;
            };
            let bytes = self
                .buffers
                .chunk(unread.id, unread.start as usize, unread.end as usize);
            let room = bytes.len().min(out.remaining());
            let (take, head_done) = http.head_end.scan(&bytes[..room]);
            out.put_slice(&bytes[..take]);
            unread.start += take as u32;
            if unread.start == unread.end {
                let id = unread.id;
                http.unread.pop_front();
                self.buffers.release(id);
            }
            if head_done {
                http.seen_request = true;
                break;
            }
        }
        // Bytes went to hyper: once a request has been seen, the deadline
        // is an idle timeout.
        if http.seen_request {
            conn.handshake_deadline_ms = idle_deadline;
        }
        self.resume_if_drained(key);
        Poll::Ready(Ok(()))
    }

    /// Queues hyper's bytes for sending; waits above a high-water mark.
    pub fn http_write(
        &mut self,
        key: usize,
        generation: u32,
        waker: &std::task::Waker,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        use std::task::Poll;
        let idle_deadline = self.now_ms + self.limits.handshake_timeout_ms;
        let Some(conn) = self.http_conn(key, generation) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if conn.closing {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if conn.unsent() > HTTP_SEND_HIGH_WATER {
            if let Some(http) = conn.http() {
                http.writer = Some(waker.clone());
            }
            return Poll::Pending;
        }
        conn.handshake_deadline_ms = idle_deadline;
        let mut bytes = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum());
        for buf in bufs {
            bytes.extend_from_slice(buf);
        }
        let n = bytes.len();
        self.queue(key, Piece::Owned { bytes, start: 0 });
        self.commit(key);
        Poll::Ready(Ok(n))
    }

    /// hyper is done with `key` without an upgrade: close once sent.
    pub fn http_done(&mut self, key: usize, generation: u32) {
        let Some(conn) = self.http_conn(key, generation) else {
            return;
        };
        if let Some(http) = conn.http() {
            http.io_alive = false;
            http.task = None;
        }
        self.begin_close(key);
        self.maybe_remove(key);
    }

    /// The 101 went out: `key` is a WebSocket from now on. `prefix` holds
    /// bytes hyper read past the request (normally none: reads stop at the
    /// end of the request head).
    pub fn upgrade(&mut self, key: usize, generation: u32, admission: Admission, prefix: &[u8]) {
        let now = self.now_ms;
        let interval = self.limits.keep_alive_interval_ms;
        let going_away = self.stopping;
        let Some(conn) = self.http_conn(key, generation) else {
            return;
        };
        let state = WebSocketState {
            decoder: Decoder::new(),
            assembled: None,
            copying: false,
            frame_queued: 0,
            mid_frame: false,
            close_sent: false,
            ping_due: false,
            going_away_due: going_away,
            next_ping_ms: interval.map_or(u64::MAX, |i| now + i),
            pong_wait_since_ms: None,
            _admission: admission,
        };
        let Phase::Http(mut http) = std::mem::replace(&mut conn.phase, Phase::WebSocket(state))
        else {
            return;
        };
        if !prefix.is_empty() {
            self.feed(key, Source::Heap(prefix), prefix.len());
        }
        for unread in http.unread.drain(..) {
            if self.conns[key].closing {
                self.buffers.release(unread.id);
                continue;
            }
            let len = (unread.end - unread.start) as usize;
            self.feed(
                key,
                Source::Ring {
                    id: unread.id,
                    offset: unread.start as usize,
                },
                len,
            );
            self.buffers.release(unread.id);
        }
        if let Some(errno) = http.read_end {
            self.read_ended(key, errno);
        }
        // A recv paused for unread HTTP bytes goes on as a WebSocket's.
        self.resume_if_drained(key);
        self.send_due_control(key);
        self.maybe_remove(key);
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        // Ask the kernel to cancel everything, then give it a moment to post
        // the completions, so the memory those operations target can be freed.
        let cancel_all = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(user_data(0, Op::Cancel));
        self.push(cancel_all);
        let deadline = Instant::now() + Duration::from_millis(500);
        self.tick_by_wait = true; // no new tick after the cancel
                                  // Nor anything else: a recv ended by the cancel was re-armed, and
                                  // stayed in flight until the deadline (tests/faults.rs, SIGTERM).
        self.exiting = true;
        let in_flight =
            |l: &Loop| l.accept_armed || l.tick_armed || l.conns.iter().any(|(_, c)| c.ops > 0);
        while in_flight(self) {
            if Instant::now() > deadline {
                tracing::warn!("io_uring operations still in flight at exit; leaking their memory");
                return;
            }
            let _ = self.enter(Some(Some(Duration::from_millis(10))));
            loop {
                let Some(cqe) = self.ring.completion().next() else {
                    break;
                };
                self.complete(cqe.user_data(), cqe.result(), cqe.flags());
            }
        }
        // Close sockets and free outboxes before the ring and buffers go.
        self.conns.clear();
        self.outboxes.clear();
        // SAFETY: no operation is in flight any more, so the kernel holds no
        // pointer into the buffers; the ring goes first (it unregisters the
        // buffer ring when it closes), then the buffers. Neither is used again.
        unsafe {
            ManuallyDrop::drop(&mut self.ring);
            ManuallyDrop::drop(&mut self.buffers);
        }
    }
}

/// Whether a paused recv may go on: the connection's unsent bytes are down
/// to half of `--max-backpressure`, and in the HTTP phase what hyper has
/// not read is down to half of [`HTTP_UNREAD_CAP`].
fn may_resume(conn: &Conn, limits: &Limits) -> bool {
    let unread = match &conn.phase {
        Phase::Http(http) => http.unread_bytes(),
        Phase::WebSocket(_) => 0,
    };
    conn.unsent() <= limits.max_backpressure / 2 && unread <= HTTP_UNREAD_CAP / 2
}

/// Connection slots reserved up front: as many as this process may open
/// files (at most 65,536). The slab is then never reallocated, which would
/// copy every slot and, for a moment, hold the slab twice; the reservation
/// is address space, and only the slots in use are touched. The limit is
/// read after `server::run` has raised the soft limit to the hard one.
fn slot_capacity() -> usize {
    fd_limit::soft_limit().map_or(1024, |limit| {
        usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .clamp(1024, 65_536)
    })
}

/// The connection's queued outbox, taken from the pool when it has none.
#[allow(clippy::vec_box)] // see `Loop::outboxes`
fn queued_of<'a>(
    queued: &'a mut Option<Box<Outbox>>,
    pool: &mut Vec<Box<Outbox>>,
) -> &'a mut Outbox {
    queued.get_or_insert_with(|| pool.pop().unwrap_or_default())
}

/// The loop behind its `RefCell`, shared by the worker and hyper's adapter.
pub type SharedLoop = Rc<RefCell<Loop>>;
