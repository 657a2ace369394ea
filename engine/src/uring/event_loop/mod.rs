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
//! 4. handle the completions: accepts, recvs (decoded and echoed in place)
//!    and sends (buffers released, partial sends resumed).
//!
//! No tokio runtime, no eventfd, no epoll: the worker thread sleeps in
//! `io_uring_enter` and nowhere else.
//!
//! This file holds the loop itself (its state, the turn, the dispatch of
//! completions, and the cancel-and-wait at drop); each concern is a file of
//! its own, all of them `impl Loop`:
//! - [`accept`]: the multishot accept, and backing off without descriptors;
//! - [`recv`]: the multishot recv, EOF and errors, starved receivers, and
//!   pausing a connection for backpressure;
//! - [`echo`]: decoding in place and queueing the echo;
//! - [`send`]: one send in flight per connection, partial sends, closing
//!   and removing a slot;
//! - [`linger`]: the lingering close of a connection the engine closes
//!   itself (its close frame, then end of stream, never a reset);
//! - [`deadlines`]: the periodic sweep of connection deadlines, and the
//!   start of shutdown;
//! - [`http`]: what hyper's I/O adapter asks of the loop in the HTTP phase;
//! - [`ops`] (how an operation is named in `user_data`) and [`limits`]
//!   (what the loop enforces) are plain data.
//!
//! What the ring does: multishot accept; multishot recv
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
//! [`echo::TEXT_IN_PLACE_LIMIT`] is copied out of the ring while it arrives (its
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
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;

use self::limits::Limits;
use self::ops::{decode_user_data, user_data, Op};
use self::send_list::SendList;
use self::tick::Tick;
use super::buf_ring::ProvidedBuffers;
use super::conn::Conn;
use super::outbox::OutboxPool;
use super::ring;
use crate::metrics::WorkerStats;
use crate::protocol::deflate::WorkerDeflate;
use crate::protocol::plan::Action;
use crate::runtime::fd_limit;
use crate::runtime::shared::Shared;

mod accept;
mod deadlines;
mod echo;
mod http;
mod limits;
mod linger;
mod ops;
mod recv;
mod send;
mod send_list;
mod tick;

/// Submission queue entries per ring; the completion queue is 4x this.
const SQ_ENTRIES: u32 = 1024;

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
    to_send: SendList,
    /// Connections waiting for buffers to return to the ring.
    starved: VecDeque<usize>,
    /// Recycled outboxes.
    outboxes: OutboxPool,
    /// Connections accepted this turn that need their HTTP task.
    accepted: Vec<(usize, u32)>,
    /// Scratch: what decoding a chunk asks for.
    actions: Vec<Action>,
    /// The worker's inflater and deflaters for permessage-deflate, made
    /// when the first connection agrees on it.
    deflate: Option<Box<WorkerDeflate>>,
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
    /// What wakes the loop every sweep period.
    tick: Tick,
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
        let limits = Limits::new(config);
        let mut event_loop = Self {
            completions: 0,
            ring: ManuallyDrop::new(ring),
            buffers: ManuallyDrop::new(buffers),
            conns: Slab::with_capacity(slot_capacity()),
            listener: Some(listener),
            accept_armed: false,
            accept_backing_off: false,
            to_send: SendList::default(),
            starved: VecDeque::new(),
            outboxes: OutboxPool::default(),
            accepted: Vec::new(),
            actions: Vec::new(),
            deflate: None,
            ran_dry: false,
            next_generation: 0,
            stats,
            limits,
            epoch: Instant::now(),
            now_ms: 0,
            stopping: false,
            exiting: false,
            tick: Tick::new(limits.sweep_period, Instant::now()),
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
        self.tick.take()
    }

    /// Arms the multishot timeout that ticks the loop every sweep period,
    /// so that the turn's wait needs no timeout of its own.
    fn arm_tick(&mut self) {
        if let Some(entry) = self.tick.arm() {
            self.push(entry);
        }
    }

    fn complete_tick(&mut self, result: i32, flags: u32) {
        self.tick.completed(result, cqueue::more(flags));
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

    /// One turn's I/O: queue the sends, give buffers back, one enter that
    /// submits and, with `wait`, waits for a completion (the tick bounds the
    /// wait), then handle every completion.
    pub fn turn(&mut self, wait: bool) -> io::Result<()> {
        let to_send = self.to_send.take();
        for &key in &to_send {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.send_listed = false;
                self.start_send(key);
            }
        }
        self.to_send.recycle(to_send);
        self.buffers.publish();
        self.rearm_starved();
        self.enter(wait.then(|| self.tick.wait_limit()))?;
        self.tick.after_wait();
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
        self.tick.stop(); // no new tick after the cancel
                          // Nor anything else: a recv ended by the cancel was re-armed, and
                          // stayed in flight until the deadline (tests/faults.rs, SIGTERM).
        self.exiting = true;
        let in_flight = |l: &Loop| {
            l.accept_armed || l.tick.is_armed() || l.conns.iter().any(|(_, c)| c.ops > 0)
        };
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

/// The loop behind its `RefCell`, shared by the worker and hyper's adapter.
pub type SharedLoop = Rc<RefCell<Loop>>;
