//! The io_uring driver: the engine's techniques on the client side.
//!
//! * **One ring per worker**, created on the worker's thread with
//!   `SINGLE_ISSUER | DEFER_TASKRUN` (completion work runs only inside our
//!   own `io_uring_enter`, never interrupting the loop).
//! * **One `io_uring_enter` per turn**: it submits the turn's sends (and
//!   connects, re-armed recvs, the timer) and waits for the next
//!   completions. A turn reads the clock once, after the enter: the receive
//!   time of everything it reaped.
//! * **Multishot recv into a provided-buffer ring** ([`buffers`]): one recv
//!   per socket for its whole life, delivering into shared, incrementally
//!   consumed buffers, where the worker checks the echoes in place.
//! * **Sends from the connection's own bytes**: [`Driver::send`] takes the
//!   connection's buffer (a swap, no copy) and submits it; bytes queued
//!   while a send is in flight follow when it completes.
//! * **Deadlines as a ring timeout** (`IORING_OP_TIMEOUT`, absolute
//!   `CLOCK_MONOTONIC`), moved with `IORING_TIMEOUT_UPDATE` when the
//!   earliest deadline changes: ticks, connect timeouts and interval ends
//!   cost no syscall of their own.
//! * **Connects as ring operations** (`IORING_OP_CONNECT`), and Ctrl-C as a
//!   one-shot poll on the stop signal's fd.
//!
//! # Who owns what
//!
//! An operation in flight may read or write memory we gave it until its
//! last completion: a send reads its bytes, a connect its address, a recv
//! writes into the provided buffers. So:
//! - a socket's entry ([`sockets::SocketIo`]) counts its operations in
//!   flight and keeps its file descriptor, its address and its send bytes
//!   until that count is zero, also after the worker closed the slot (the
//!   driver cancels the operations and waits for their completions);
//! - the bytes of a send in flight are frozen: nothing writes to that
//!   buffer or moves it until the send completes;
//! - received bytes are read before the next completion is looked at, and
//!   only then given back to the kernel (see [`buffers`]);
//! - when the driver goes away with operations still in flight, it cancels
//!   them and waits (briefly) for their completions; whatever is still in
//!   flight after that keeps its memory forever (it is leaked, not freed).

pub mod buffers;
pub mod ops;
pub mod sockets;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use io_uring::types::{Fd, TimeoutFlags, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use super::{Driver, Event, IoKind};
use crate::clock::{self, NANOS_PER_SEC};
use crate::interrupt::StopSignal;
use buffers::{ProvidedBuffers, GROUP_ID};
use ops::{Op, UserData};
use sockets::{SocketIo, Sockets};

/// Submission queue entries.
const SQ_ENTRIES: u32 = 4096;
/// Completion queue entries: room for a turn in which every socket of a
/// large run completes a recv and a send.
const CQ_ENTRIES: u32 = 65536;
/// Receive buffers: count and size.
const BUFFER_COUNT: usize = 256;
const BUFFER_SIZE: usize = 64 * 1024;
/// How long dropping the driver waits for cancelled operations.
const DRAIN_ON_DROP_NS: u64 = NANOS_PER_SEC;

/// One completion, copied out of the ring.
#[derive(Debug, Clone, Copy)]
struct Completion {
    user_data: u64,
    result: i32,
    flags: u32,
}

/// The bytes of the last [`Event::Received`], in a provided buffer.
#[derive(Debug, Clone, Copy)]
struct Held {
    buffer: u16,
    start: usize,
    len: usize,
    /// The kernel is done with the buffer: recycle it once read.
    last: bool,
}

/// The io_uring driver of one worker (see the module docs).
pub struct UringDriver {
    // Declared first so that it drops first: the ring (and with it the
    // buffer ring's registration) goes before the memory it points at.
    ring: IoUring,
    buffers: ProvidedBuffers,
    sockets: Sockets,
    completions: Vec<Completion>,
    next: usize,
    held: Option<Held>,
    /// Monotonic time at the end of the last enter.
    turn_ns: u64,
    /// The deadline the ring timeout is set to, if one is in flight.
    timer_at: Option<u64>,
    /// Generation of the ring timeout in flight (stale completions of an
    /// earlier one are told apart by it).
    timer_generation: u32,
    /// The deadline of the timer SQE of this turn (the kernel copies it
    /// while it takes the SQE, inside the enter).
    timer_spec: Box<Timespec>,
    stop_armed: bool,
}

impl UringDriver {
    /// Queues `entry`, making room by submitting what is queued if the
    /// submission queue is full.
    ///
    /// # Safety
    ///
    /// Every buffer `entry` points at must stay valid, and unchanged where
    /// the kernel reads it, until the operation's last completion (or, for
    /// the timer's timespec, until the enter that submits it returns).
    unsafe fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: passed on to the caller (see above).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            match self.ring.submitter().submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    // The completion queue is over-full: reap into our list.
                    self.reap();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Copies every available completion into `completions`.
    fn reap(&mut self) {
        for cqe in self.ring.completion() {
            self.completions.push(Completion {
                user_data: cqe.user_data(),
                result: cqe.result(),
                flags: cqe.flags(),
            });
        }
    }

    /// Arms the multishot recv of socket `index`.
    fn arm_recv(&mut self, index: u32) -> io::Result<()> {
        let Some(sock) = self.sockets.get_mut(index) else {
            return Ok(());
        };
        let fd = sock.fd.as_raw_fd();
        let user_data = UserData::new(Op::Recv, index, sock.generation).0;
        sock.recv_armed = true;
        sock.ops += 1;
        let entry = opcode::RecvMulti::new(Fd(fd), GROUP_ID)
            .build()
            .user_data(user_data);
        // SAFETY: the recv writes only into provided buffers, which live as
        // long as the ring (see the module docs); the socket keeps its fd
        // open while the recv is counted in `ops`.
        unsafe { self.push(entry) }
    }

    /// Submits the send of socket `index`'s frozen bytes from `sent` on.
    fn submit_send(&mut self, index: u32) -> io::Result<()> {
        let Some(sock) = self.sockets.get_mut(index) else {
            return Ok(());
        };
        let fd = sock.fd.as_raw_fd();
        let user_data = UserData::new(Op::Send, index, sock.generation).0;
        let rest = &sock.sending[sock.sent..];
        let (ptr, len) = (rest.as_ptr(), rest.len() as u32);
        sock.send_in_flight = true;
        sock.ops += 1;
        let entry = opcode::Send::new(Fd(fd), ptr, len)
            .flags(libc::MSG_NOSIGNAL | libc::MSG_WAITALL)
            .build()
            .user_data(user_data);
        // SAFETY: `sending` is frozen while `send_in_flight` is set: nothing
        // writes to it, resizes it or swaps it out until this send's
        // completion clears the flag, and a closed socket's entry keeps it
        // until its operations are done (or leaks it).
        unsafe { self.push(entry) }
    }

    /// Cancels every operation of socket `index` (it was closed).
    fn cancel(&mut self, index: u32) -> io::Result<()> {
        let Some(sock) = self.sockets.get_mut(index) else {
            return Ok(());
        };
        if sock.cancel_sent {
            return Ok(());
        }
        sock.cancel_sent = true;
        sock.ops += 1;
        let fd = sock.fd.as_raw_fd();
        let user_data = UserData::new(Op::Cancel, index, sock.generation).0;
        let entry = opcode::AsyncCancel2::new(io_uring::types::CancelBuilder::fd(Fd(fd)).all())
            .build()
            .user_data(user_data);
        // SAFETY: a cancel points at no memory; the fd it names stays open
        // while the cancel is counted in `ops`, so it cannot match another
        // socket that reused the number.
        unsafe { self.push(entry) }
    }

    /// Sets the ring timeout to `deadline_ns`, if it is not set to it yet.
    fn arm_timer(&mut self, deadline_ns: u64) -> io::Result<()> {
        if self.timer_at == Some(deadline_ns) {
            return Ok(());
        }
        *self.timer_spec = Timespec::new()
            .sec(deadline_ns / NANOS_PER_SEC)
            .nsec((deadline_ns % NANOS_PER_SEC) as u32);
        let spec: *const Timespec = &*self.timer_spec;
        let entry = if self.timer_at.is_some() {
            let target = UserData::new(Op::Timer, 0, self.timer_generation).0;
            opcode::TimeoutUpdate::new(target, spec)
                .flags(TimeoutFlags::ABS)
                .build()
                .flags(squeue::Flags::SKIP_SUCCESS)
                .user_data(UserData::new(Op::TimerUpdate, 0, self.timer_generation).0)
        } else {
            self.timer_generation = (self.timer_generation + 1) & ops::GENERATION_MASK;
            opcode::Timeout::new(spec)
                .flags(TimeoutFlags::ABS)
                .build()
                .user_data(UserData::new(Op::Timer, 0, self.timer_generation).0)
        };
        self.timer_at = Some(deadline_ns);
        // SAFETY: the timespec is boxed in `self` and not written again
        // before the next `wait`, after the enter that submits this entry
        // (the kernel copies it while taking the SQE).
        unsafe { self.push(entry) }
    }

    /// Gives the buffer of the last received bytes back, if they were the
    /// kernel's last in it.
    fn release_held(&mut self) {
        if let Some(h) = self.held.take() {
            if h.last {
                self.buffers.recycle(h.buffer);
            }
        }
    }

    /// A socket's operation completed: forget the socket once the worker
    /// has closed it and nothing of it is in flight any more.
    fn op_done(&mut self, index: u32) {
        if let Some(sock) = self.sockets.get_mut(index) {
            sock.ops -= 1;
            if sock.slot.is_none() && sock.ops == 0 {
                self.sockets.remove(index);
            }
        }
    }

    /// Handles one completion; returns the event it means for the worker.
    fn complete(&mut self, c: Completion) -> io::Result<Option<Event>> {
        let ud = UserData(c.user_data);
        let index = ud.index();
        match ud.op() {
            Op::Stop => Ok(Some(Event::Stop)),
            Op::Timer => {
                if ud.generation() == self.timer_generation {
                    self.timer_at = None;
                }
                Ok(None)
            }
            Op::TimerUpdate => {
                // Only failures post a completion: the timer had fired.
                if ud.generation() == self.timer_generation {
                    self.timer_at = None;
                }
                Ok(None)
            }
            Op::Cancel => {
                self.op_done(index);
                Ok(None)
            }
            Op::Connect => {
                let live = self.sockets.live(index, ud.generation());
                self.op_done(index);
                let event = match live {
                    Some(slot) if c.result < 0 => Some(Event::ConnectFailed(
                        slot,
                        io::Error::from_raw_os_error(-c.result),
                    )),
                    Some(slot) => {
                        let mut queued = false;
                        if let Some(sock) = self.sockets.get_mut(index) {
                            sock.connecting = false;
                            sock.set_nodelay();
                            if !sock.queued.is_empty() {
                                std::mem::swap(&mut sock.sending, &mut sock.queued);
                                sock.sent = 0;
                                queued = true;
                            }
                        }
                        self.arm_recv(index)?;
                        if queued {
                            self.submit_send(index)?;
                        }
                        Some(Event::Connected(slot))
                    }
                    None => None,
                };
                Ok(event)
            }
            Op::Recv => self.complete_recv(index, ud.generation(), c),
            Op::Send => {
                let live = self.sockets.live(index, ud.generation());
                let mut event = None;
                let mut resend = false;
                if let Some(sock) = self.sockets.get_mut(index) {
                    sock.send_in_flight = false;
                    if c.result < 0 {
                        sock.sending.clear();
                        sock.sent = 0;
                        if let Some(slot) = live {
                            if !std::mem::replace(&mut sock.ended, true) {
                                event = Some(Event::Closed(
                                    slot,
                                    Some(io::Error::from_raw_os_error(-c.result)),
                                ));
                            }
                        }
                    } else {
                        sock.sent += c.result as usize;
                        if sock.sent >= sock.sending.len() {
                            sock.sending.clear();
                            sock.sent = 0;
                            if !sock.queued.is_empty() {
                                std::mem::swap(&mut sock.sending, &mut sock.queued);
                            }
                        }
                        resend = live.is_some() && !sock.ended && !sock.sending.is_empty();
                    }
                }
                self.op_done(index);
                if resend {
                    self.submit_send(index)?;
                }
                Ok(event)
            }
        }
    }

    fn complete_recv(
        &mut self,
        index: u32,
        generation: u32,
        c: Completion,
    ) -> io::Result<Option<Event>> {
        let more = cqueue::more(c.flags);
        let live = self.sockets.live(index, generation);
        let mut event = None;
        if let Some(id) = cqueue::buffer_select(c.flags) {
            let len = c.result.max(0) as usize;
            let last = !cqueue::buffer_more(c.flags);
            let start = self.buffers.take(id, len, !last);
            let held = Held {
                buffer: id,
                start,
                len,
                last,
            };
            let ended = self.sockets.get_mut(index).is_none_or(|s| s.ended);
            match live {
                Some(slot) if len > 0 && !ended => {
                    self.held = Some(held);
                    event = Some(Event::Received(slot, self.turn_ns));
                }
                _ => {
                    self.held = Some(held);
                    self.release_held();
                }
            }
        }
        let mut rearm = false;
        if let Some(sock) = self.sockets.get_mut(index) {
            if c.result == 0 || (c.result < 0 && c.result != -libc::ENOBUFS) {
                // End of stream or an error (a cancel included).
                if let Some(slot) = live {
                    if c.result != -libc::ECANCELED && !std::mem::replace(&mut sock.ended, true) {
                        let error = (c.result < 0).then(|| io::Error::from_raw_os_error(-c.result));
                        event = Some(Event::Closed(slot, error));
                    }
                }
            } else if !more {
                // Out of buffers (ENOBUFS), or the kernel ended the
                // multishot for its own reasons: arm it again.
                if c.result == -libc::ENOBUFS {
                    self.buffers.ran_short();
                }
                rearm = live.is_some() && !sock.ended;
            }
            if !more {
                sock.recv_armed = false;
            }
        }
        if !more {
            self.op_done(index);
        }
        if rearm {
            self.arm_recv(index)?;
        }
        Ok(event)
    }

    /// Operations in flight that point at our memory.
    fn in_flight(&self) -> u32 {
        self.sockets.ops_in_flight()
    }
}

/// Builds a ring with deferred task work, or cooperative task work where
/// the kernel refuses that (`EINVAL`, before 6.1).
fn build_ring() -> io::Result<IoUring> {
    let build = |deferred: bool| {
        let mut builder = IoUring::builder();
        builder
            .setup_single_issuer()
            .setup_cqsize(CQ_ENTRIES)
            .setup_submit_all();
        if deferred {
            builder.setup_defer_taskrun();
        } else {
            builder.setup_coop_taskrun();
        }
        builder.build(SQ_ENTRIES)
    };
    match build(true) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => build(false),
        other => other,
    }
}

impl Driver for UringDriver {
    const KIND: IoKind = IoKind::Uring;

    fn new(connections: usize, stop: &StopSignal) -> io::Result<Self> {
        let ring = build_ring()?;
        let mut buffers = ProvidedBuffers::new(BUFFER_COUNT, BUFFER_SIZE)?;
        buffers.register(&ring.submitter())?;
        let mut driver = UringDriver {
            ring,
            buffers,
            sockets: Sockets::with_capacity(connections),
            completions: Vec::with_capacity(1024),
            next: 0,
            held: None,
            turn_ns: clock::now_ns(),
            timer_at: None,
            timer_generation: 0,
            timer_spec: Box::new(Timespec::new()),
            stop_armed: false,
        };
        let entry = opcode::PollAdd::new(Fd(stop.wake_fd()), libc::POLLIN as u32)
            .build()
            .user_data(UserData::new(Op::Stop, 0, 0).0);
        // SAFETY: a poll points at no memory; the stop signal's fd outlives
        // every worker of the run.
        unsafe { driver.push(entry)? };
        driver.stop_armed = true;
        Ok(driver)
    }

    fn connect(&mut self, slot: usize, addr: SocketAddr, source: Option<IpAddr>) -> io::Result<()> {
        self.close(slot);
        let socket = super::socket::client_socket(addr, source)?;
        let index = self
            .sockets
            .insert(SocketIo::new(socket.into(), slot, addr));
        let sock = self.sockets.get_mut(index).expect("just inserted");
        sock.ops += 1;
        let (ptr, len) = (sock.addr.as_ptr(), sock.addr.len());
        let fd = sock.fd.as_raw_fd();
        let user_data = UserData::new(Op::Connect, index, sock.generation).0;
        let entry = opcode::Connect::new(Fd(fd), ptr.cast(), len)
            .build()
            .user_data(user_data);
        // SAFETY: the address is boxed in the socket's entry, which lives
        // until the connect (counted in `ops`) completes.
        unsafe { self.push(entry) }
    }

    fn send(&mut self, slot: usize, bytes: &mut Vec<u8>) -> io::Result<()> {
        let Some(index) = self.sockets.index_of(slot) else {
            bytes.clear();
            return Ok(());
        };
        let sock = self.sockets.get_mut(index).expect("slot maps to a socket");
        if sock.ended || bytes.is_empty() {
            bytes.clear();
            return Ok(());
        }
        if sock.send_in_flight || sock.connecting {
            if sock.queued.is_empty() {
                std::mem::swap(&mut sock.queued, bytes);
            } else {
                sock.queued.extend_from_slice(bytes);
            }
            bytes.clear();
            return Ok(());
        }
        // `sending` is empty when no send is in flight: swap, no copy.
        std::mem::swap(&mut sock.sending, bytes);
        bytes.clear();
        sock.sent = 0;
        self.submit_send(index)
    }

    fn close(&mut self, slot: usize) {
        let Some(index) = self.sockets.detach(slot) else {
            return;
        };
        match self.sockets.get_mut(index) {
            Some(sock) if sock.ops == 0 => self.sockets.remove(index),
            Some(_) => {
                // Not fatal: a failed cancel leaves the operations to end
                // by themselves (the peer's end of stream, or the drop).
                let _ = self.cancel(index);
            }
            None => {}
        }
    }

    fn wait(&mut self, deadline_ns: u64) -> io::Result<()> {
        self.release_held();
        self.completions.clear();
        self.next = 0;
        self.buffers.publish();
        self.arm_timer(deadline_ns)?;
        match self.ring.submitter().submit_and_wait(1) {
            Ok(_) => {}
            // A signal (Ctrl-C on this thread) or a full completion queue:
            // reap what is there and come back.
            Err(e)
                if e.kind() == io::ErrorKind::Interrupted
                    || e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        self.turn_ns = clock::now_ns();
        self.reap();
        Ok(())
    }

    fn next_event(&mut self) -> Option<Event> {
        self.release_held();
        while self.next < self.completions.len() {
            let c = self.completions[self.next];
            self.next += 1;
            match self.complete(c) {
                Ok(Some(event)) => return Some(event),
                Ok(None) => {}
                Err(e) => {
                    // Only pushing a follow-up (a recv re-arm or the rest
                    // of a send) can fail, when the ring itself fails.
                    let slot = self.sockets.live(
                        UserData(c.user_data).index(),
                        UserData(c.user_data).generation(),
                    );
                    if let Some(slot) = slot {
                        return Some(Event::Closed(slot, Some(e)));
                    }
                }
            }
        }
        None
    }

    fn received(&self) -> &[u8] {
        match self.held {
            Some(h) => self.buffers.bytes(h.buffer, h.start, h.len),
            None => &[],
        }
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        self.release_held();
        self.sockets.detach_all();
        if self.in_flight() > 0 {
            self.completions.clear();
            let entry = opcode::AsyncCancel2::new(io_uring::types::CancelBuilder::any())
                .build()
                .user_data(UserData::new(Op::Cancel, ops::NO_SOCKET, 0).0);
            // SAFETY: a cancel points at no memory.
            let _ = unsafe { self.push(entry) };
            let give_up = clock::now_ns() + DRAIN_ON_DROP_NS;
            while self.in_flight() > 0 && clock::now_ns() < give_up {
                let _ = self.arm_timer(clock::now_ns() + DRAIN_ON_DROP_NS / 10);
                let _ = self.ring.submitter().submit_and_wait(1);
                self.reap();
                for c in std::mem::take(&mut self.completions) {
                    let _ = self.complete(c);
                    self.release_held();
                }
            }
        }
        if self.in_flight() > 0 {
            // The kernel may still use these: keep their memory forever.
            std::mem::forget(std::mem::take(&mut self.sockets));
            let buffers = ProvidedBuffers::new(1, 1);
            if let Ok(empty) = buffers {
                std::mem::forget(std::mem::replace(&mut self.buffers, empty));
            }
        }
    }
}

/// Checks that io_uring works here as the driver needs it: the ring, the
/// provided-buffer ring, and a multishot recv delivering into it.
pub fn probe() -> io::Result<()> {
    let mut ring =
        build_ring().map_err(|e| io::Error::new(e.kind(), format!("io_uring_setup: {e}")))?;
    let mut buffers = ProvidedBuffers::new(MIN_PROBE_BUFFERS, 4096)?;
    buffers
        .register(&ring.submitter())
        .map_err(|e| io::Error::new(e.kind(), format!("provided-buffer ring: {e}")))?;
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    let entry = opcode::RecvMulti::new(Fd(b.as_raw_fd()), GROUP_ID)
        .build()
        .user_data(1);
    // SAFETY: the recv writes only into the provided buffers, which outlive
    // the ring (declared after it in this function, so dropped after it),
    // and `b` stays open until the recv's last completion below.
    unsafe { ring.submission().push(&entry) }
        .map_err(|_| io::Error::other("submission queue full"))?;
    std::io::Write::write_all(&mut &a, b"x")?;
    ring.submitter().submit_and_wait(1)?;
    let first = ring
        .completion()
        .next()
        .ok_or_else(|| io::Error::other("no completion"))?;
    if first.result() != 1 || !cqueue::more(first.flags()) {
        return Err(io::Error::other(format!(
            "multishot recv is not supported (result {}, flags {:#x})",
            first.result(),
            first.flags()
        )));
    }
    // End the recv: its last completion comes with the end of stream.
    drop(a);
    loop {
        ring.submitter().submit_and_wait(1)?;
        if ring.completion().any(|c| !cqueue::more(c.flags())) {
            break;
        }
    }
    drop(ring);
    drop(buffers);
    Ok(())
}

/// Buffers of the probe's ring.
const MIN_PROBE_BUFFERS: usize = 8;
