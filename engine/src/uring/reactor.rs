//! The per-worker io_uring reactor.
//!
//! One ring per worker thread (flags in [`super::ring`]: `SINGLE_ISSUER`,
//! `DEFER_TASKRUN` where the kernel has it), hosted inside the worker's
//! tokio current-thread runtime. [`Reactor::drive`] is a task that, once per
//! loop turn, pushes the batched sends, makes **at most one**
//! `io_uring_enter` (submit, plus `GETEVENTS` only when the kernel flagged
//! completion work) and wakes the tasks whose I/O completed. When it has
//! nothing to do it sleeps on an eventfd the ring signals
//! ([`super::wakeup`]), silenced while it is awake.
//!
//! Why this shape, measured at 100 connections x 500 Hz x 20 B: the first
//! version (ring fd in epoll, `COOP_TASKRUN`, an enter every turn) made 3.9
//! `io_uring_enter`s and 1.9 `epoll_wait`s per message, half of the latter
//! interrupted by task-work signals; this one makes about 1.8 and 0.7
//! (the counts vary with how many messages share a wake-up).
//!
//! What the ring does, per DESIGN.md:
//! - multishot accept on the worker's `SO_REUSEPORT` listener;
//! - multishot *bundle* recv into the shared [`ProvidedBuffers`] ring, so
//!   idle connections hold no receive buffer, and one recv operation takes
//!   as many buffers as the data needs (one buffer per recv cost 1.5x the
//!   CPU of epoll per 16 KiB message: 4-5 socket-locked recvs instead of 1);
//! - sends batched per turn: a stream's writes only append to its pending
//!   buffer; at the end of the turn each socket with pending bytes and no send
//!   in flight gets one `Send`. At most one send is in flight per socket;
//!   partial sends resubmit the rest.
//! - **bulk receive mode**: a socket with at least [`DIRECT_RECV_MIN`] unread
//!   bytes in ring buffers leaves the provided-buffer ring: its
//!   multishot recv is cancelled, a multishot `POLL_ADD` watches it instead,
//!   and reads `recv(2)` straight into the reader's buffer. fastwebsockets
//!   reads through `AsyncRead` into its own buffer, so ring data costs a
//!   second user-space copy; for 16 KiB messages that copy (13% of server
//!   CPU in `perf`) made this path dearer per message than epoll. Small
//!   messages keep the ring, where no recv syscall is made at all. After
//!   [`SMALL_READS_TO_RETURN`] small direct reads in a row the socket returns
//!   to the ring.
//!
//! # Buffer ownership (the part where io_uring bugs hide)
//!
//! - **Send memory**: a socket has two byte buffers, `inflight` and
//!   `pending`. While a `Send` SQE is outstanding its pointer targets
//!   `inflight[sent..]`, and `inflight` is neither written, resized nor freed
//!   until that send's CQE arrives. Writers only touch `pending`; the two are
//!   swapped only when no send is in flight.
//! - **Socket slots** are not freed, and their fds not closed, while any
//!   operation that names them is in flight (`ops > 0`); a dropped stream's
//!   recv is cancelled and its last sends completed first.
//! - **Receive memory** follows the rules in [`super::buf_ring`].
//! - If the reactor is dropped with operations still in flight (which only
//!   happens if draining them fails), the memory they target is leaked rather
//!   than freed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use slab::Slab;

use super::buf_ring::{ProvidedBuffers, GROUP_ID};
use super::ring;
use super::wakeup::RingWakeup;

/// Submission queue entries per ring; the completion queue is 4x this.
const SQ_ENTRIES: u32 = 1024;
/// Unsent bytes per socket above which writers wait.
const SEND_HIGH_WATER: usize = 256 * 1024;
/// Unread received bytes per socket above which its recv is paused, so one
/// connection whose task is not reading cannot drain the shared ring.
const RECV_HIGH_WATER_BYTES: usize = 256 * 1024;
/// Writes at least this large, on a socket with nothing queued, are sent
/// at once with a non-blocking `sendmsg` instead of being copied into the
/// socket's pending buffer for the end-of-turn batch. Measured at 200 x
/// 16 KiB: fastwebsockets hands us the payload as a borrowed slice, so
/// batching it costs a full user-space copy, which is dearer than the one
/// syscall; below this size the batch wins.
const DIRECT_SEND_MIN: usize = 8 * 1024;
/// `IORING_ENTER_GETEVENTS` from `<linux/io_uring.h>` (the crate keeps its
/// flag type private): makes `io_uring_enter` run deferred task work.
const ENTER_GETEVENTS: u32 = 1;
/// Unread ring bytes at which a socket switches to the bulk receive mode
/// (see the module docs). Counted after each completion rather than per
/// completion: right after a recv is armed the kernel fills one buffer per
/// completion until it learns how much is queued.
const DIRECT_RECV_MIN: usize = 8 * 1024;
/// A direct read smaller than this counts towards returning to the ring.
const SMALL_READ: usize = 2 * 1024;
/// Small direct reads in a row after which a bulk socket returns to the ring.
const SMALL_READS_TO_RETURN: u8 = 8;
/// A send buffer whose capacity exceeds this is released once it drains, so
/// an idle connection does not keep a past burst's memory.
const KEEP_SEND_CAPACITY: usize = 64 * 1024;

/// What an in-flight operation is, stored in the low bits of `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Recv = 1,
    Send = 2,
    Accept = 3,
    Cancel = 4,
    Poll = 5,
}

fn user_data(key: usize, op: Op) -> u64 {
    ((key as u64) << 8) | op as u64
}

fn decode(user_data: u64) -> (usize, Option<Op>) {
    let op = match user_data & 0xff {
        1 => Some(Op::Recv),
        2 => Some(Op::Send),
        3 => Some(Op::Accept),
        4 => Some(Op::Cancel),
        5 => Some(Op::Poll),
        _ => None,
    };
    ((user_data >> 8) as usize, op)
}

/// Where a socket's multishot recv stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    /// Not armed; arm when a reader wants data.
    Idle,
    /// A multishot recv is in flight.
    Armed,
    /// A cancel is in flight (high-water mark or release); never re-arm
    /// before its final CQE, since a new recv would share its `user_data`
    /// and could be the one cancelled.
    Cancelling,
    /// Stopped after unread data passed the high-water mark; re-armed once
    /// the reader drains it to half.
    Paused,
    /// Stopped by ENOBUFS; re-armed when a buffer is recycled.
    Starved,
}

/// Where a bulk-mode socket's multishot readiness poll stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PollState {
    /// No poll in flight.
    Off,
    /// A multishot `POLL_ADD` for `POLLIN` is in flight.
    Armed,
    /// Its cancel is in flight; never re-arm before the final CQE (same
    /// reason as [`RecvState::Cancelling`]).
    Cancelling,
}

/// A received chunk still (partly) unread: bytes `offset..len` of buffer `id`.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    id: u16,
    offset: u32,
    len: u32,
}

/// One accepted TCP connection.
struct Socket {
    fd: OwnedFd,
    recv: RecvState,
    /// Bulk receive mode: reads go straight to the reader with `recv(2)`
    /// once the ring recv has fully stopped (see the module docs).
    direct: bool,
    /// The readiness poll used in bulk mode.
    poll: PollState,
    /// Small direct reads in a row (see [`SMALL_READS_TO_RETURN`]).
    small_reads: u8,
    /// Unread received data, oldest first.
    received: VecDeque<Chunk>,
    received_bytes: usize,
    /// Set once the peer's EOF (`Ok(0)`) or a recv error (`errno`) arrived.
    read_end: Option<i32>,
    reader: Option<Waker>,
    /// Bytes owned by the kernel while `sending` (see module docs).
    inflight: Vec<u8>,
    /// How much of `inflight` the kernel has accepted so far.
    sent: usize,
    sending: bool,
    /// Bytes written by the stream since the last send was pushed.
    pending: Vec<u8>,
    /// Already listed in `Inner::to_send`.
    queued: bool,
    write_error: Option<i32>,
    writer: Option<Waker>,
    /// The stream handle is gone: finish sending, cancel recv, then close.
    released: bool,
    /// Operations in flight that name this slot.
    ops: u32,
}

impl Socket {
    fn new(fd: OwnedFd) -> Self {
        Self {
            fd,
            recv: RecvState::Idle,
            direct: false,
            poll: PollState::Off,
            small_reads: 0,
            received: VecDeque::new(),
            received_bytes: 0,
            read_end: None,
            reader: None,
            inflight: Vec::new(),
            sent: 0,
            sending: false,
            pending: Vec::new(),
            queued: false,
            write_error: None,
            writer: None,
            released: false,
            ops: 0,
        }
    }

    fn unsent(&self) -> usize {
        self.pending.len() + self.inflight.len() - self.sent
    }

    /// No ring recv is in flight, so no buffer can deliver data any more
    /// and a direct `recv(2)` cannot overtake bytes still on their way.
    fn ring_recv_stopped(&self) -> bool {
        !matches!(self.recv, RecvState::Armed | RecvState::Cancelling)
    }
}

/// The listening socket and what its multishot accept has produced.
struct Listener {
    fd: OwnedFd,
    armed: bool,
    accepted: VecDeque<OwnedFd>,
    error: Option<i32>,
    waiter: Option<Waker>,
}

struct Inner {
    ring: IoUring,
    buffers: ProvidedBuffers,
    sockets: Slab<Socket>,
    listener: Option<Listener>,
    /// Sockets with pending bytes and no send in flight.
    to_send: Vec<usize>,
    /// Sockets waiting for a recycled buffer.
    starved: VecDeque<usize>,
    /// Whether the ring has run dry before (logged once, as a tuning hint).
    ran_dry: bool,
    /// Reused list of (buffer id, length) of one bundle completion.
    bundle_scratch: Vec<(u16, usize)>,
    /// Whether recv uses bundles (one recv fills several buffers; 6.10+).
    bundles: bool,
    /// Buffers handed to us by completions and not yet recycled.
    held: usize,
    /// Unread-bytes threshold at which a socket's recv is paused.
    recv_high_water: usize,
    /// Set when SQEs or sends wait for the next turn.
    turn_requested: bool,
    /// The driver task's waker (kept across sleeps; cloned only if the
    /// task's waker changes).
    driver: Option<Waker>,
    /// Whether the driver is asleep, waiting for a signal or a request.
    driver_asleep: bool,
    /// The eventfd the driver sleeps on.
    wakeup: RingWakeup,
}

/// A worker's io_uring instance and everything that lives on it.
pub struct Reactor {
    /// Dropped by hand in `Drop`, and leaked if operations never complete.
    inner: ManuallyDrop<RefCell<Inner>>,
}

impl Reactor {
    /// Creates the ring and registers `buffer_count` receive buffers of
    /// `buffer_size` bytes. Must be called inside a tokio runtime on the
    /// thread that will use it (the ring is `SINGLE_ISSUER`).
    pub fn new(buffer_count: usize, buffer_size: usize) -> io::Result<Rc<Self>> {
        let mut ring = ring::build(SQ_ENTRIES, SQ_ENTRIES * 4)?;
        let buffers = ProvidedBuffers::new(buffer_count, buffer_size)?;
        buffers.register(&ring.submitter())?;
        let wakeup = RingWakeup::register(&mut ring)?;
        let chunks_per_socket =
            (RECV_HIGH_WATER_BYTES / buffer_size).clamp(2, (buffer_count / 2).max(2));
        Ok(Rc::new(Self {
            inner: ManuallyDrop::new(RefCell::new(Inner {
                ring,
                buffers,
                sockets: Slab::new(),
                listener: None,
                to_send: Vec::new(),
                starved: VecDeque::new(),
                ran_dry: false,
                bundle_scratch: Vec::new(),
                bundles: true,
                held: 0,
                recv_high_water: chunks_per_socket * buffer_size,
                turn_requested: false,
                driver: None,
                driver_asleep: false,
                wakeup,
            })),
        }))
    }

    /// Runs the reactor: at most one submit-and-reap per loop turn, sleeping
    /// on the ring's eventfd when there is nothing to do. Never returns
    /// unless the ring fails.
    pub async fn drive(self: Rc<Self>) -> io::Result<()> {
        poll_fn(|cx| self.poll_drive(cx)).await
    }

    fn poll_drive(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        inner.driver_asleep = false;
        inner.wakeup.disarm(&mut inner.ring);
        let mut turns_with_completions = 0;
        loop {
            let completed = inner.turn()?;
            if completed > 0 {
                turns_with_completions += 1;
            }
            if inner.turn_requested || turns_with_completions > 1 {
                // Let the tasks we woke run (they queue sends), then come back
                // for the next turn without sleeping in epoll.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if completed > 0 {
                // One more turn at once: usually it finds nothing and we
                // sleep here, instead of a scheduler round trip just to learn
                // that (the completion of a send that woke nobody, say). The
                // tasks woken meanwhile run while we sleep and wake us with
                // their sends.
                continue;
            }
            store_waker(&mut inner.driver, cx);
            if !inner.wakeup.arm(&mut inner.ring) {
                continue;
            }
            match inner.wakeup.poll_signalled(cx) {
                Poll::Ready(Ok(())) => inner.wakeup.disarm(&mut inner.ring),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    inner.driver_asleep = true;
                    return Poll::Pending;
                }
            }
        }
    }

    /// Starts multishot accept on `fd`, this worker's listener.
    pub fn listen(&self, fd: OwnedFd) {
        let mut inner = self.inner.borrow_mut();
        inner.listener = Some(Listener {
            fd,
            armed: false,
            accepted: VecDeque::new(),
            error: None,
            waiter: None,
        });
        inner.arm_accept();
    }

    /// Stops accepting: cancels the multishot accept and closes the listener
    /// once the cancellation completes.
    pub fn stop_listening(&self) {
        let mut inner = self.inner.borrow_mut();
        if let Some(listener) = inner.listener.as_mut() {
            listener.accepted.clear();
            if listener.armed {
                inner.cancel(user_data(0, Op::Accept));
            } else {
                inner.listener = None;
            }
        }
    }

    /// The next accepted connection, or the accept error that stopped it.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<OwnedFd>> {
        let mut inner = self.inner.borrow_mut();
        let Some(listener) = inner.listener.as_mut() else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "not listening",
            )));
        };
        if let Some(fd) = listener.accepted.pop_front() {
            return Poll::Ready(Ok(fd));
        }
        if let Some(errno) = listener.error.take() {
            return Poll::Ready(Err(io::Error::from_raw_os_error(errno)));
        }
        store_waker(&mut listener.waiter, cx);
        if !listener.armed {
            inner.arm_accept();
        }
        Poll::Pending
    }

    /// Takes ownership of an accepted connection and starts receiving on it.
    pub fn register(&self, fd: OwnedFd) -> usize {
        let mut inner = self.inner.borrow_mut();
        let key = inner.sockets.insert(Socket::new(fd));
        inner.arm_recv(key);
        key
    }

    /// Copies unread bytes of socket `key` into `buf` (or, in bulk mode,
    /// receives straight into it).
    pub fn poll_read(
        &self,
        key: usize,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let socket = &mut inner.sockets[key];
        if socket.received.is_empty() {
            if socket.read_end.is_none() && socket.direct && socket.ring_recv_stopped() {
                return inner.read_direct(key, cx, buf);
            }
            return match socket.read_end {
                Some(0) => Poll::Ready(Ok(())),
                Some(errno) => Poll::Ready(Err(io::Error::from_raw_os_error(errno))),
                None => {
                    store_waker(&mut socket.reader, cx);
                    if matches!(socket.recv, RecvState::Idle | RecvState::Paused) {
                        inner.arm_recv(key);
                    }
                    Poll::Pending
                }
            };
        }
        while buf.remaining() > 0 {
            let socket = &mut inner.sockets[key];
            let Some(chunk) = socket.received.front_mut() else {
                break;
            };
            let bytes = inner
                .buffers
                .chunk(chunk.id, chunk.offset as usize, chunk.len as usize);
            let n = bytes.len().min(buf.remaining());
            buf.put_slice(&bytes[..n]);
            socket.received_bytes -= n;
            chunk.offset += n as u32;
            if chunk.offset == chunk.len {
                let id = chunk.id;
                socket.received.pop_front();
                inner.recycle(id);
            }
        }
        let socket = &inner.sockets[key];
        if socket.recv == RecvState::Paused && socket.received_bytes <= inner.recv_high_water / 2 {
            inner.arm_recv(key);
        }
        Poll::Ready(Ok(()))
    }

    /// Queues `bufs` for sending on socket `key`; they go out at the end of
    /// this loop turn. Waits while too much is already unsent.
    pub fn poll_write(
        &self,
        key: usize,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.inner.borrow_mut();
        let socket = &mut inner.sockets[key];
        if let Some(errno) = socket.write_error {
            return Poll::Ready(Err(io::Error::from_raw_os_error(errno)));
        }
        if socket.unsent() >= SEND_HIGH_WATER {
            store_waker(&mut socket.writer, cx);
            return Poll::Pending;
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut skip = 0;
        if total >= DIRECT_SEND_MIN && socket.unsent() == 0 {
            // Large write on an idle socket: send straight from the caller's
            // memory, saving the copy into `pending` (see DIRECT_SEND_MIN).
            skip = send_now(&socket.fd, bufs);
        }
        let mut written = 0;
        for buf in bufs {
            let take = skip.min(buf.len());
            skip -= take;
            socket.pending.extend_from_slice(&buf[take..]);
            written += buf.len();
        }
        if socket.unsent() > 0 && !socket.sending && !socket.queued {
            socket.queued = true;
            inner.to_send.push(key);
            inner.request_turn();
        }
        Poll::Ready(Ok(written))
    }

    /// Ready once everything written to socket `key` has been accepted by the
    /// kernel.
    pub fn poll_flush(&self, key: usize, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.inner.borrow_mut();
        let socket = &mut inner.sockets[key];
        if let Some(errno) = socket.write_error {
            return Poll::Ready(Err(io::Error::from_raw_os_error(errno)));
        }
        if socket.unsent() == 0 {
            return Poll::Ready(Ok(()));
        }
        store_waker(&mut socket.writer, cx);
        Poll::Pending
    }

    /// Flushes, then shuts down the write side of socket `key` (sends FIN).
    pub fn poll_shutdown(&self, key: usize, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_flush(key, cx))?;
        let inner = self.inner.borrow();
        // SAFETY: plain syscall on an fd this slot owns and keeps open.
        let rc = unsafe { libc::shutdown(inner.sockets[key].fd.as_raw_fd(), libc::SHUT_WR) };
        if rc == 0 {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err(io::Error::last_os_error()))
        }
    }

    /// The stream for socket `key` is gone: send what is queued, then close.
    pub fn release(&self, key: usize) {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let socket = &mut inner.sockets[key];
        socket.released = true;
        socket.reader = None;
        socket.writer = None;
        let ids: Vec<u16> = socket.received.drain(..).map(|c| c.id).collect();
        socket.received_bytes = 0;
        for id in ids {
            inner.recycle(id);
        }
        inner.finish_release(key);
    }
}

impl Inner {
    fn request_turn(&mut self) {
        if !self.turn_requested {
            self.turn_requested = true;
            if std::mem::take(&mut self.driver_asleep) {
                if let Some(driver) = &self.driver {
                    driver.wake_by_ref();
                }
            }
        }
    }

    /// Pushes an SQE, submitting first if the queue is full.
    fn push(&mut self, entry: squeue::Entry) {
        loop {
            // SAFETY: every entry built by this reactor points only at memory
            // that stays valid until its CQE (see the module docs): send
            // buffers pinned by `sending`, the buffer ring, and fds kept open
            // while `ops > 0`.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                self.request_turn();
                return;
            }
            if let Err(e) = self.ring.submit() {
                tracing::error!("io_uring submit failed while the queue was full: {e}");
            }
        }
    }

    fn cancel(&mut self, target: u64) {
        let key = (target >> 8) as usize;
        self.push(
            opcode::AsyncCancel::new(target)
                .build()
                .user_data(user_data(key, Op::Cancel)),
        );
    }

    fn arm_accept(&mut self) {
        let Some(listener) = self.listener.as_mut() else {
            return;
        };
        listener.armed = true;
        let fd = types::Fd(listener.fd.as_raw_fd());
        let entry = opcode::AcceptMulti::new(fd)
            .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
            .build()
            .user_data(user_data(0, Op::Accept));
        self.push(entry);
    }

    fn arm_recv(&mut self, key: usize) {
        let socket = &mut self.sockets[key];
        if socket.released
            || socket.read_end.is_some()
            || matches!(socket.recv, RecvState::Armed | RecvState::Cancelling)
        {
            return;
        }
        if socket.direct {
            self.arm_poll(key);
            return;
        }
        socket.recv = RecvState::Armed;
        socket.ops += 1;
        let fd = types::Fd(socket.fd.as_raw_fd());
        let entry = if self.bundles {
            opcode::RecvMultiBundle::new(fd, GROUP_ID).build()
        } else {
            opcode::RecvMulti::new(fd, GROUP_ID).build()
        };
        let entry = entry.user_data(user_data(key, Op::Recv));
        self.push(entry);
    }

    /// Arms the bulk-mode readiness poll of `key` unless one is in flight.
    fn arm_poll(&mut self, key: usize) {
        let socket = &mut self.sockets[key];
        if socket.released || socket.poll != PollState::Off {
            return;
        }
        socket.poll = PollState::Armed;
        socket.ops += 1;
        let fd = types::Fd(socket.fd.as_raw_fd());
        let entry = opcode::PollAdd::new(fd, libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data(key, Op::Poll));
        self.push(entry);
    }

    /// A bulk-mode read: `recv(2)` straight into `buf`, or wait for the
    /// readiness poll. Only called with no ring data left and the ring recv
    /// stopped, so bytes arrive in order.
    fn read_direct(
        &mut self,
        key: usize,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let socket = &mut self.sockets[key];
        // SAFETY: `unfilled_mut` only requires that we never de-initialise
        // bytes; recv(2) below only writes into them.
        let unfilled = unsafe { buf.unfilled_mut() };
        // SAFETY: a plain non-blocking recv into `unfilled`, an exclusively
        // borrowed slice of `unfilled.len()` bytes that outlives this
        // synchronous call, on an fd this slot owns and keeps open. The kernel
        // writes at most that many bytes and never reads them.
        let received = unsafe {
            libc::recv(
                socket.fd.as_raw_fd(),
                unfilled.as_mut_ptr().cast(),
                unfilled.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match usize::try_from(received) {
            Ok(0) => {
                socket.read_end = Some(0);
                Poll::Ready(Ok(()))
            }
            Ok(n) => {
                // SAFETY: recv returned n, so the kernel wrote the first n
                // bytes of the unfilled region.
                unsafe { buf.assume_init(n) };
                buf.advance(n);
                if n < SMALL_READ {
                    socket.small_reads += 1;
                    if socket.small_reads >= SMALL_READS_TO_RETURN {
                        self.leave_direct(key);
                    }
                } else {
                    socket.small_reads = 0;
                }
                Poll::Ready(Ok(()))
            }
            Err(_) => {
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => {
                        store_waker(&mut socket.reader, cx);
                        self.arm_poll(key);
                        Poll::Pending
                    }
                    errno => {
                        socket.read_end = Some(errno.unwrap_or(libc::EIO));
                        Poll::Ready(Err(error))
                    }
                }
            }
        }
    }

    /// Moves `key` into bulk mode: stop its ring recv; reads go direct once
    /// the recv's final completion has arrived.
    fn enter_direct(&mut self, key: usize) {
        tracing::trace!(socket = key, "bulk receive mode: direct reads");
        let socket = &mut self.sockets[key];
        socket.direct = true;
        socket.small_reads = 0;
        if socket.recv == RecvState::Armed {
            socket.recv = RecvState::Cancelling;
            self.cancel(user_data(key, Op::Recv));
        }
    }

    /// Returns `key` from bulk mode to the ring: cancel its poll, arm its
    /// ring recv.
    fn leave_direct(&mut self, key: usize) {
        tracing::trace!(socket = key, "back to the provided-buffer ring");
        let socket = &mut self.sockets[key];
        socket.direct = false;
        socket.small_reads = 0;
        if socket.poll == PollState::Armed {
            socket.poll = PollState::Cancelling;
            self.cancel(user_data(key, Op::Poll));
        }
        self.arm_recv(key);
    }

    /// Takes back a buffer the user has read. While no socket is starved it
    /// goes straight back to the kernel; once the ring has run dry, recycled
    /// buffers wait for [`Inner::publish_buffers_and_rearm`] at the turn's
    /// end so that starved sockets get them first.
    fn recycle(&mut self, id: u16) {
        self.buffers.recycle(id);
        self.held -= 1;
        if self.starved.is_empty() {
            self.buffers.publish();
        } else {
            self.request_turn();
        }
    }

    /// Returns the recycled buffers to the kernel and, in the same turn,
    /// re-arms starved sockets oldest first, one per free buffer.
    ///
    /// Deferring publication to here while sockets are starved is what makes
    /// starvation fair: the re-armed recvs are issued in the same
    /// `io_uring_enter` that makes the buffers visible, before any
    /// still-armed multishot recv can take them. Publishing eagerly then let
    /// armed sockets win every race, and a new connection's handshake could
    /// wait seconds (500 x 16 KiB on a 256-buffer ring). Deferring always
    /// cost throughput when the ring was not dry, hence the two modes.
    fn publish_buffers_and_rearm(&mut self) {
        self.buffers.publish();
        let mut free = self.buffers.count().saturating_sub(self.held);
        while free > 0 {
            let Some(key) = self.starved.pop_front() else {
                break;
            };
            if self
                .sockets
                .get(key)
                .is_some_and(|s| s.recv == RecvState::Starved)
            {
                self.sockets[key].recv = RecvState::Idle;
                self.arm_recv(key);
                free -= 1;
            }
        }
    }

    /// Pushes one send for `key` covering `inflight[sent..]`, swapping the
    /// pending bytes in first when the previous send has fully completed.
    fn start_send(&mut self, key: usize) {
        let socket = &mut self.sockets[key];
        if socket.sending || socket.write_error.is_some() {
            return;
        }
        if socket.sent == socket.inflight.len() {
            socket.inflight.clear();
            socket.sent = 0;
            std::mem::swap(&mut socket.inflight, &mut socket.pending);
        }
        let remaining = &socket.inflight[socket.sent..];
        if remaining.is_empty() {
            return;
        }
        socket.sending = true;
        socket.ops += 1;
        let len = u32::try_from(remaining.len()).unwrap_or(u32::MAX);
        let entry = opcode::Send::new(types::Fd(socket.fd.as_raw_fd()), remaining.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(key, Op::Send));
        self.push(entry);
    }

    /// One loop turn: push batched sends, submit and reap in a single
    /// `io_uring_enter`, dispatch completions. Returns how many completed.
    fn turn(&mut self) -> io::Result<usize> {
        self.turn_requested = false;
        let mut to_send = std::mem::take(&mut self.to_send);
        for &key in &to_send {
            // A slot whose socket failed and closed may have been reused by
            // a new socket that has not queued anything: skip it.
            if self
                .sockets
                .get_mut(key)
                .is_some_and(|s| std::mem::take(&mut s.queued))
            {
                self.start_send(key);
            }
        }
        to_send.clear();
        self.to_send = to_send;
        self.publish_buffers_and_rearm();
        // Enter only when there is something to submit or completion work
        // the kernel flagged; a turn that only submits leaves out GETEVENTS
        // (sends complete inline during the submit anyway). At a fixed
        // message rate this saved two of the three enters per message, and
        // the kernel's wait path on the third.
        let get_events = ring::kernel_has_work(&mut self.ring);
        if get_events || !self.ring.submission().is_empty() {
            self.enter(get_events)?;
        }
        // What was pushed above is submitted now (unless the kernel was busy),
        // so only work queued from here on needs another turn.
        self.turn_requested = !self.ring.submission().is_empty();
        Ok(self.reap())
    }

    /// Submits every queued SQE and, with `get_events`, runs pending
    /// completion work, without waiting. `EBUSY` and `EINTR` are not
    /// failures: the next turn retries.
    fn enter(&mut self, get_events: bool) -> io::Result<()> {
        let to_submit = self.ring.submission().len() as u32;
        let flags = if get_events { ENTER_GETEVENTS } else { 0 };
        // SAFETY: a plain io_uring_enter on our own ring with no extra
        // argument. GETEVENTS makes the kernel run pending task work so
        // completions are posted before we reap; min_complete 0 never blocks.
        match unsafe {
            self.ring
                .submitter()
                .enter::<libc::sigset_t>(to_submit, 0, flags, None)
        } {
            Ok(_) => Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    || e.raw_os_error() == Some(libc::EINTR) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Dispatches every posted completion; returns how many there were.
    fn reap(&mut self) -> usize {
        let mut completed = 0;
        loop {
            let Some(cqe) = self.ring.completion().next() else {
                break;
            };
            completed += 1;
            self.complete(cqe.user_data(), cqe.result(), cqe.flags());
        }
        completed
    }

    fn complete(&mut self, user_data: u64, result: i32, flags: u32) {
        let (key, op) = decode(user_data);
        match op {
            Some(Op::Recv) => self.complete_recv(key, result, flags),
            Some(Op::Send) => self.complete_send(key, result),
            Some(Op::Accept) => self.complete_accept(result, flags),
            Some(Op::Poll) => self.complete_poll(key, flags),
            Some(Op::Cancel) | None => {}
        }
    }

    fn complete_accept(&mut self, result: i32, flags: u32) {
        let Some(listener) = self.listener.as_mut() else {
            if result >= 0 {
                // SAFETY: a non-negative accept result is a new fd that nobody else owns.
                drop(unsafe { OwnedFd::from_raw_fd(result) });
            }
            return;
        };
        if !cqueue::more(flags) {
            listener.armed = false;
        }
        if result >= 0 {
            // SAFETY: a non-negative accept result is a new fd that nobody else owns.
            listener
                .accepted
                .push_back(unsafe { OwnedFd::from_raw_fd(result) });
        } else if -result == libc::ECANCELED {
            self.listener = None;
            return;
        } else {
            listener.error = Some(-result);
        }
        if let Some(waker) = listener.waiter.take() {
            waker.wake();
        }
    }

    fn complete_recv(&mut self, key: usize, result: i32, flags: u32) {
        let high_water = self.recv_high_water;
        let Some(socket) = self.sockets.get_mut(key) else {
            return;
        };
        let more = cqueue::more(flags);
        if !more {
            socket.ops -= 1;
            socket.recv = match socket.recv {
                RecvState::Armed => RecvState::Idle,
                RecvState::Cancelling => RecvState::Paused,
                other => other,
            };
        }
        match result {
            n if n > 0 => {
                let Some(first) = cqueue::buffer_select(flags) else {
                    tracing::error!("recv completion without a buffer id");
                    return;
                };
                let mut ids = std::mem::take(&mut self.bundle_scratch);
                self.buffers
                    .for_each_in_bundle(first, n as usize, |id, len| ids.push((id, len)));
                self.held += ids.len();
                let socket = &mut self.sockets[key];
                if socket.released {
                    for &(id, _) in &ids {
                        self.recycle(id);
                    }
                } else {
                    socket.received.extend(ids.iter().map(|&(id, len)| Chunk {
                        id,
                        offset: 0,
                        len: len as u32,
                    }));
                    socket.received_bytes += n as usize;
                    if more && socket.recv == RecvState::Armed {
                        if socket.received_bytes >= DIRECT_RECV_MIN {
                            self.enter_direct(key);
                        } else if socket.received_bytes > high_water {
                            socket.recv = RecvState::Cancelling;
                            self.cancel(user_data(key, Op::Recv));
                        }
                    }
                }
                ids.clear();
                self.bundle_scratch = ids;
            }
            0 => socket.read_end = Some(0),
            n if -n == libc::ENOBUFS => {
                socket.recv = RecvState::Starved;
                self.starved.push_back(key);
                if !self.ran_dry {
                    self.ran_dry = true;
                    tracing::info!(
                        "receive buffer ring ran dry ({} x {} B): receivers wait for \
                         recycled buffers (logged once; see --receive-buffers)",
                        self.buffers.count(),
                        self.buffers.buffer_size(),
                    );
                }
            }
            n if -n == libc::ECANCELED => {}
            n if -n == libc::EINVAL && self.bundles => {
                // Bundles need Linux 6.10; fall back to one buffer per CQE.
                tracing::warn!(
                    "recv bundles unsupported by this kernel; using plain multishot recv"
                );
                self.bundles = false;
            }
            n => socket.read_end = Some(-n),
        }
        let socket = &mut self.sockets[key];
        if let Some(reader) = socket.reader.take() {
            reader.wake();
        }
        let resume = match socket.recv {
            // Ended without EOF, error or our cancel (e.g. the kernel stopped
            // it for CQ overflow): keep receiving.
            RecvState::Idle => !more,
            RecvState::Paused => socket.received_bytes <= high_water / 2,
            _ => false,
        };
        if resume {
            self.arm_recv(key);
        }
        self.finish_release(key);
    }

    /// A bulk-mode readiness event (or the poll's end): the reader retries
    /// its direct read, which re-arms the poll if it has ended.
    fn complete_poll(&mut self, key: usize, flags: u32) {
        let Some(socket) = self.sockets.get_mut(key) else {
            return;
        };
        if !cqueue::more(flags) {
            socket.ops -= 1;
            socket.poll = PollState::Off;
        }
        if let Some(reader) = socket.reader.take() {
            reader.wake();
        }
        self.finish_release(key);
    }

    fn complete_send(&mut self, key: usize, result: i32) {
        let Some(socket) = self.sockets.get_mut(key) else {
            return;
        };
        socket.ops -= 1;
        socket.sending = false;
        if result > 0 {
            socket.sent += result as usize;
            if socket.sent == socket.inflight.len() {
                socket.inflight.clear();
                socket.sent = 0;
                if socket.inflight.capacity() > KEEP_SEND_CAPACITY {
                    socket.inflight = Vec::new();
                }
            }
            if socket.unsent() > 0 {
                self.start_send(key);
            }
        } else {
            // A zero-byte send of a non-empty buffer cannot make progress.
            socket.write_error = Some(if result == 0 { libc::EPIPE } else { -result });
            socket.pending = Vec::new();
        }
        let socket = &mut self.sockets[key];
        if socket.unsent() < SEND_HIGH_WATER / 2 || socket.write_error.is_some() {
            if let Some(writer) = socket.writer.take() {
                writer.wake();
            }
        }
        if socket.write_error.is_some() {
            if let Some(reader) = socket.reader.take() {
                reader.wake();
            }
        }
        self.finish_release(key);
    }

    /// Advances a released socket towards closing: once its sends are done,
    /// cancel its recv; once no operation names it, close the fd.
    fn finish_release(&mut self, key: usize) {
        let Some(socket) = self.sockets.get_mut(key) else {
            return;
        };
        if !socket.released {
            return;
        }
        let sends_done = socket.write_error.is_some() || (!socket.sending && socket.unsent() == 0);
        if !sends_done {
            if !socket.sending && !socket.queued {
                socket.queued = true;
                self.to_send.push(key);
                self.request_turn();
            }
            return;
        }
        if socket.recv == RecvState::Armed {
            socket.recv = RecvState::Cancelling;
            self.cancel(user_data(key, Op::Recv));
        }
        let socket = &mut self.sockets[key];
        if socket.poll == PollState::Armed {
            socket.poll = PollState::Cancelling;
            self.cancel(user_data(key, Op::Poll));
        }
        if self.sockets[key].ops == 0 {
            // Closing the fd (dropping it) is safe: no operation names it.
            self.sockets.remove(key);
        }
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        // Ask the kernel to cancel everything, then give it a moment to post
        // the completions, so the memory those operations target can be freed.
        let cancel_all = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(0);
        // SAFETY: a cancel SQE points at no memory.
        let _ = unsafe { inner.ring.submission().push(&cancel_all) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while inner.in_flight() {
            if std::time::Instant::now() > deadline {
                tracing::warn!("io_uring operations still in flight at exit; leaking their memory");
                return;
            }
            // GETEVENTS: with DEFER_TASKRUN the cancellations only complete
            // when we run our deferred work.
            let _ = inner.enter(true);
            inner.reap();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // SAFETY: `inner` is not used after this line and Drop runs once. No
        // operation is in flight any more, so the kernel holds no pointer
        // into the buffers and sockets freed here.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
    }
}

impl Inner {
    /// Whether any operation that targets our memory is still in flight.
    fn in_flight(&self) -> bool {
        self.sockets.iter().any(|(_, s)| s.ops > 0)
            || self.listener.as_ref().is_some_and(|l| l.armed)
    }
}

/// Sends what the kernel takes right now without blocking; returns the byte
/// count (0 on EAGAIN or error: the batched send path then reports errors).
fn send_now(fd: &OwnedFd, bufs: &[io::IoSlice<'_>]) -> usize {
    // SAFETY: `msghdr` is plain data; all-zero is a valid empty header.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    header.msg_iovlen = bufs.len();
    // SAFETY: `IoSlice` is ABI-compatible with `iovec` (std guarantees it on
    // Unix), the slices outlive this synchronous call, and the fd is open.
    let sent = unsafe {
        libc::sendmsg(
            fd.as_raw_fd(),
            &header,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(sent).unwrap_or(0)
}

fn store_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}
