//! Keep-alive pings, pong deadlines, backpressure timeouts and the shutdown
//! close for open WebSockets.
//!
//! fastwebsockets' `read_frame` is not cancel-safe (it consumes a frame
//! header before awaiting the payload), so the echo loop cannot `select!`
//! between reading and a timer. Instead, control frames are injected *below*
//! the codec by [`SessionStream`]:
//!
//! - the echo loop is sequential (read a frame, write its echo, read again),
//!   so whenever a read is pending the write side sits at a frame boundary;
//! - at that moment [`SessionStream`] writes any due control frame (a ping, or
//!   close 1001 at shutdown) straight into the transport.
//!
//! A per-worker [`sweep`] task walks the worker's [`Sessions`] every tick and
//! marks pings due or sessions expired, so no connection owns a timer. Pongs
//! are reported back by the echo loop through [`Session::pong_received`].
//!
//! # Backpressure (epoll backend)
//!
//! The echo loop writes each echo before it reads the next frame, so a
//! client that never reads its echoes makes a write wait once the kernel's
//! send buffer is full, and the loop stops reading from that client by
//! itself: the engine holds at most the frame being written, and the cap in
//! bytes is the kernel's send buffer (`--max-backpressure` is for engines
//! that queue echoes). What remains is `--backpressure-timeout`: when a
//! write to the transport returns `Pending`, [`SessionStream`] records
//! "write blocked since" in the [`Session`] (one clock read, only on the
//! slow path) together with the task's waker, and clears it on the next
//! write that completes. No timer per write: the [`sweep`] marks a session
//! whose write has been blocked for the whole timeout and wakes it; its
//! next write fails, and the echo loop ends with
//! [`EchoEnd::BackpressureTimeout`](crate::epoll::echo::EchoEnd::BackpressureTimeout).
//! The close frame 1008 the policy asks for cannot get through a full send
//! buffer, so the connection is just dropped (the close is still counted,
//! see [`WorkerStats::backpressure_closed`]).
//!
//! [`SessionStream`] also runs the [`TextWatch`] over the bytes the codec
//! reads, so invalid UTF-8 fails a text frame as soon as it arrives rather
//! than once the whole frame is in, and an unmasked client frame fails the
//! connection (fastwebsockets would read it). The codec first gets every
//! frame before the refused one; then its read fails, and the echo loop
//! closes with the code in [`Session::refused_with`].
//!
//! # Memory (epoll backend)
//!
//! fastwebsockets gives every WebSocket an 8 KiB read buffer and reads into
//! it from where the last read ended, going back to its start only once the
//! end is reached. Pages of it become resident as the traffic first reaches
//! them: the second 4 KiB page after a connection's first 4 KiB or so of
//! input, and a freed buffer keeps its pages when the allocator hands it to
//! the next connection. Under churn the RSS so crept up for many minutes
//! (the 15,000-connection soak: `results/reliability.md`, "A bug the soak
//! found") before every buffer in use was resident. The first read therefore
//! initialises the codec's whole buffer ([`ReadBuf::initialize_unfilled`],
//! which marks nothing as read): each WebSocket costs from its first byte
//! what it would cost after its first few kilobytes, and the RSS follows
//! the number of connections, not their history.

use bytes::{Buf, Bytes};
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use fastwebsockets::OpCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::config::Config;
use crate::epoll::text_watch::{Refused, TextWatch};
use crate::metrics::WorkerStats;
use crate::protocol::CloseCode;
use crate::runtime::keep_alive::{sweep_period, Deadlines, Due, KeepAlive, Owed};

/// The worker's view of one open WebSocket.
#[derive(Debug)]
pub struct Session {
    waker: RefCell<Option<Waker>>,
    /// When the next ping is due, and since when a pong is awaited.
    keep_alive: Cell<KeepAlive<Instant>>,
    /// The ping or close 1001 owed at the next frame boundary.
    owed: Cell<Owed>,
    expired: Cell<bool>,
    /// The task's waker, stored when a write to the transport is pending.
    write_waker: RefCell<Option<Waker>>,
    /// Since when writes have been pending without progress, if they are.
    write_blocked_since: Cell<Option<Instant>>,
    /// Set by the sweep: writes were blocked for `--backpressure-timeout`.
    backpressure_expired: Cell<bool>,
    /// The close code of a refusal by the transport, once the codec saw it.
    refused_with: Cell<Option<CloseCode>>,
    /// permessage-deflate: the original first byte of each data message
    /// the codec has yet to take (see the text watch).
    message_starts: RefCell<std::collections::VecDeque<u8>>,
    /// permessage-deflate: the next frame written gets RSV1.
    compressed_write: Cell<bool>,
    /// The owning worker's counters.
    stats: Arc<WorkerStats>,
}

impl Session {
    fn new(keep_alive: KeepAlive<Instant>, stats: Arc<WorkerStats>) -> Self {
        Self {
            stats,
            waker: RefCell::new(None),
            keep_alive: Cell::new(keep_alive),
            owed: Cell::new(Owed::default()),
            expired: Cell::new(false),
            write_waker: RefCell::new(None),
            write_blocked_since: Cell::new(None),
            backpressure_expired: Cell::new(false),
            refused_with: Cell::new(None),
            message_starts: RefCell::default(),
            compressed_write: Cell::new(false),
        }
    }

    /// What the client's next data message really is, given the opcode the
    /// codec read: whether it is compressed, and its opcode before the text
    /// watch made compressed text binary. Without compression it is
    /// `opcode`, uncompressed.
    pub fn take_message_start(&self, opcode: OpCode) -> (bool, OpCode) {
        match self.message_starts.borrow_mut().pop_front() {
            Some(first) => {
                let original = if first & 0x0f == 1 {
                    OpCode::Text
                } else {
                    OpCode::Binary
                };
                (first & 0x40 != 0, original)
            }
            None => (false, opcode),
        }
    }

    /// Sets RSV1 on the next frame written (a compressed echo); the codec
    /// cannot set it.
    pub fn compress_next_frame(&self) {
        self.compressed_write.set(true);
    }

    /// The echo loop saw a pong: the peer is alive.
    pub fn pong_received(&self) {
        let mut keep_alive = self.keep_alive.get();
        keep_alive.pong_received();
        self.keep_alive.set(keep_alive);
    }

    /// Whether the server has already sent its close frame (at shutdown);
    /// after that no data frame may be sent.
    pub fn close_sent(&self) -> bool {
        self.owed.get().close_sent()
    }

    /// Changes what the session owes.
    fn owe(&self, change: impl FnOnce(&mut Owed)) {
        let mut owed = self.owed.get();
        change(&mut owed);
        self.owed.set(owed);
    }

    /// The close code to fail the connection with when the transport
    /// refused the client's stream below the codec: 1007 for invalid UTF-8
    /// in a text frame, 1002 for an unmasked frame. Set only once the
    /// codec's read has failed because of it, so a codec error on an earlier
    /// frame keeps its own code.
    pub fn refused_with(&self) -> Option<CloseCode> {
        self.refused_with.get()
    }

    /// Whether the pong deadline passed; the connection is to be dropped.
    pub fn expired(&self) -> bool {
        self.expired.get()
    }

    /// Whether writes stayed blocked for `--backpressure-timeout`; the
    /// connection is to be dropped (the transport fails every read and write
    /// from now on).
    pub fn backpressure_timed_out(&self) -> bool {
        self.backpressure_expired.get()
    }

    /// Notes the outcome of one write to the transport: a pending write
    /// starts (or continues) the blocked period and keeps `cx`'s waker for
    /// the sweep; a completed one ends the period.
    #[inline]
    fn note_write<T>(&self, cx: &Context<'_>, poll: &Poll<T>) {
        if poll.is_ready() {
            if self.write_blocked_since.get().is_some() {
                self.write_blocked_since.set(None);
            }
            return;
        }
        if self.write_blocked_since.get().is_none() {
            self.write_blocked_since.set(Some(Instant::now()));
        }
        let mut waker = self.write_waker.borrow_mut();
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
    }

    fn wake_writer(&self) {
        if let Some(waker) = self.write_waker.borrow().as_ref() {
            waker.wake_by_ref();
        }
    }

    fn wake(&self) {
        if let Some(waker) = self.waker.borrow().as_ref() {
            waker.wake_by_ref();
        }
    }

    /// The control frame to write now, if any (see [`Owed::take`]),
    /// counted as sent.
    fn take_due_frame(&self) -> Option<&'static [u8]> {
        let mut owed = self.owed.get();
        let control = owed.take();
        self.owed.set(owed);
        let control = control?;
        match control.close_code() {
            Some(code) => self.stats.close_sent(code),
            None => {
                let mut keep_alive = self.keep_alive.get();
                keep_alive.ping_sent(Instant::now());
                self.keep_alive.set(keep_alive);
                self.stats.ping_sent();
            }
        }
        Some(control.frame())
    }
}

/// All open WebSockets of one worker.
#[derive(Debug, Default)]
pub struct Sessions {
    open: RefCell<Slab<Rc<Session>>>,
    /// Keep-alive interval, pong timeout and backpressure timeout.
    deadlines: Deadlines<Duration>,
    /// Set by `close_all`: sessions opened later start with close 1001 due.
    closing: Cell<bool>,
    /// The worker's counters, handed to every session.
    stats: Arc<WorkerStats>,
}

impl Sessions {
    /// A registry that pings every `config.keep_alive_interval` (never when
    /// `None`), drops sessions whose pong is later than
    /// `config.keep_alive_timeout` or whose writes stay blocked for
    /// `config.backpressure_timeout`, and counts pings, timeouts and closes
    /// in `stats`.
    pub fn new(config: &Config, stats: Arc<WorkerStats>) -> Self {
        Self {
            open: RefCell::new(Slab::new()),
            deadlines: Deadlines::new(config),
            closing: Cell::new(false),
            stats,
        }
    }

    /// Registers a new WebSocket; it leaves the registry when the guard drops.
    pub fn open(self: &Rc<Self>) -> SessionGuard {
        let keep_alive = self.deadlines.open(Instant::now());
        let session = Rc::new(Session::new(keep_alive, self.stats.clone()));
        if self.closing.get() {
            session.owe(Owed::going_away);
        }
        let key = self.open.borrow_mut().insert(session.clone());
        SessionGuard {
            sessions: self.clone(),
            key,
            session,
        }
    }

    /// Number of open WebSockets.
    pub fn len(&self) -> usize {
        self.open.borrow().len()
    }

    /// Whether no WebSocket is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks every session to send close 1001 at its next frame boundary.
    pub fn close_all(&self) {
        self.closing.set(true);
        for (_, session) in self.open.borrow().iter() {
            session.owe(Owed::going_away);
            session.wake();
        }
    }

    /// One pass of the deadline rules ([`Deadlines::check`]) over every
    /// session: drops those whose writes have been blocked for the
    /// backpressure timeout or whose pong is late, and marks pings due.
    fn sweep_once(&self, now: Instant) {
        for (_, session) in self.open.borrow().iter() {
            let mut keep_alive = session.keep_alive.get();
            let due = self
                .deadlines
                .check(now, session.write_blocked_since.get(), &mut keep_alive);
            session.keep_alive.set(keep_alive);
            match due {
                Due::Nothing => {}
                Due::BackpressureTimeout => {
                    if !session.backpressure_expired.replace(true) {
                        self.stats.backpressure_closed();
                    }
                    session.wake_writer();
                    session.wake();
                }
                Due::PongTimeout => {
                    if !session.expired.replace(true) {
                        self.stats.keep_alive_timed_out();
                    }
                    session.wake();
                }
                Due::Ping => {
                    session.owe(Owed::ping);
                    session.wake();
                }
            }
        }
    }

    /// The sweep's period ([`sweep_period`]); `None` when every deadline is
    /// off and there is nothing to sweep.
    fn sweep_tick(&self) -> Option<Duration> {
        self.deadlines.shortest().map(sweep_period)
    }
}

/// The per-worker keep-alive and backpressure task: one pass over the
/// sessions every sweep period. It ends at once when pings and the
/// backpressure timeout are both off.
pub async fn sweep(sessions: Rc<Sessions>) {
    let Some(tick) = sessions.sweep_tick() else {
        return;
    };
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = ticker.tick().await;
        sessions.sweep_once(now);
    }
}

/// Keeps a session registered while its WebSocket is open.
pub struct SessionGuard {
    sessions: Rc<Sessions>,
    key: usize,
    session: Rc<Session>,
}

impl SessionGuard {
    /// The session this guard keeps open.
    pub fn session(&self) -> &Rc<Session> {
        &self.session
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.open.borrow_mut().remove(self.key);
    }
}

/// The transport under the WebSocket codec: replays bytes hyper read past the
/// handshake, then reads the socket, and injects control frames at frame
/// boundaries (see the module docs).
pub struct SessionStream<S> {
    inner: S,
    /// Bytes read by hyper after the upgrade request.
    prefix: Bytes,
    /// The unwritten rest of an injected control frame.
    control: &'static [u8],
    session: Rc<Session>,
    text_watch: TextWatch,
    /// A refusal by the watch, raised as a read error once the codec has
    /// read the frames before the refused one.
    refused: Option<Refused>,
    /// Whether the codec's read buffer has been committed (see the module
    /// docs, "Memory"); done on the first read.
    read_buffer_committed: bool,
}

impl<S> SessionStream<S> {
    /// Wraps `inner`; `prefix` holds bytes already read from it.
    /// `compression`: permessage-deflate was agreed.
    pub fn new(inner: S, prefix: Bytes, session: Rc<Session>, compression: bool) -> Self {
        let mut text_watch = TextWatch::new();
        if compression {
            text_watch.enable_compression();
        }
        Self {
            inner,
            prefix,
            control: &[],
            session,
            text_watch,
            refused: None,
            read_buffer_committed: false,
        }
    }
}

impl<S> SessionStream<S> {
    /// The transport, once the echo loop is over (see
    /// [`crate::epoll::linger`]); flush first, so that a control frame
    /// half written is not lost.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncWrite + Unpin> SessionStream<S> {
    /// Writes the rest of the current control frame. Ready once it is all out.
    fn poll_control(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.control.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, self.control))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.control = &self.control[n..];
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for SessionStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.session.expired() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "keep-alive timeout: no pong",
            )));
        }
        if this.session.backpressure_timed_out() {
            return Poll::Ready(Err(backpressure_timeout()));
        }
        if let Some(reason) = this.refused {
            return Poll::Ready(Err(this.raise(reason)));
        }
        if !this.read_buffer_committed {
            // The first read gets the codec's whole, still untouched buffer.
            this.read_buffer_committed = true;
            buf.initialize_unfilled();
        }
        let before = buf.filled().len();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return this.watch_new_bytes(buf, before);
        }
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            return this.watch_new_bytes(buf, before);
        }
        if read.is_pending() {
            // The codec waits for input, so its writer is between frames.
            if this.control.is_empty() {
                if let Some(frame) = this.session.take_due_frame() {
                    this.control = frame;
                }
            }
            if let Poll::Ready(Err(e)) = this.poll_control(cx) {
                return Poll::Ready(Err(e));
            }
            let mut waker = this.session.waker.borrow_mut();
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        read
    }
}

impl<S> SessionStream<S> {
    /// Runs the text watch over the bytes this read added after `before`.
    /// On a refusal the bytes of the refused frame are withheld, so the
    /// codec still gets every frame before it, and reads fail from then on.
    fn watch_new_bytes(&mut self, buf: &mut ReadBuf<'_>, before: usize) -> Poll<io::Result<()>> {
        let watched = self.text_watch.feed_mut(&mut buf.filled_mut()[before..]);
        let starts = self.text_watch.message_starts();
        if !starts.is_empty() {
            self.session.message_starts.borrow_mut().append(starts);
        }
        if let Err(refusal) = watched {
            self.refused = Some(refusal.reason);
            buf.set_filled(before + refusal.keep);
            if refusal.keep == 0 {
                return Poll::Ready(Err(self.raise(refusal.reason)));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The read error for a refusal; from now on the echo loop closes with
    /// its code.
    fn raise(&self, reason: Refused) -> io::Error {
        self.session.refused_with.set(Some(reason.close_code()));
        io::Error::new(io::ErrorKind::InvalidData, reason.describe())
    }
}

/// The read and write error once writes were blocked for the backpressure
/// timeout.
fn backpressure_timeout() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "backpressure timeout: the peer does not read its echoes",
    )
}

impl<S: AsyncWrite + Unpin> SessionStream<S> {
    /// One write-side poll: fails at once after a backpressure timeout,
    /// otherwise writes the rest of any control frame, runs `op` on the
    /// transport, and notes in the session whether the write is blocked
    /// (see "Backpressure" in the module docs).
    #[inline]
    fn poll_tracked<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if self.session.backpressure_timed_out() {
            return Poll::Ready(Err(backpressure_timeout()));
        }
        let poll = match self.poll_control(cx) {
            Poll::Ready(Ok(())) => op(Pin::new(&mut self.inner), cx),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        };
        self.session.note_write(cx, &poll);
        poll
    }
}

impl<S: AsyncWrite + Unpin> SessionStream<S> {
    /// Writes the start of a compressed echo: the codec begins every frame
    /// with a write whose first byte is the frame's first, and that byte
    /// goes out with RSV1 set (permessage-deflate). Once it is out, the
    /// rest of the frame is written as it is.
    fn poll_write_compressed(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(at) = bufs.iter().position(|buf| !buf.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        let first = [bufs[at][0] | 0x40];
        let mut with_rsv1 = Vec::with_capacity(bufs.len() - at + 1);
        with_rsv1.push(io::IoSlice::new(&first));
        with_rsv1.push(io::IoSlice::new(&bufs[at][1..]));
        with_rsv1.extend(bufs[at + 1..].iter().map(|buf| io::IoSlice::new(buf)));
        let poll = self.poll_tracked(cx, |inner, cx| inner.poll_write_vectored(cx, &with_rsv1));
        if let Poll::Ready(Ok(n)) = poll {
            if n > 0 {
                self.session.compressed_write.set(false);
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SessionStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.session.compressed_write.get() {
            return self.poll_write_compressed(cx, &[io::IoSlice::new(buf)]);
        }
        self.poll_tracked(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.session.compressed_write.get() {
            return self.poll_write_compressed(cx, bufs);
        }
        self.poll_tracked(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_tracked(cx, |inner, cx| inner.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_tracked(cx, |inner, cx| inner.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{GOING_AWAY_FRAME, PING_FRAME};

    use futures_util::task::noop_waker_ref;

    /// The default configuration with these keep-alive and backpressure
    /// settings.
    fn config(keep_alive: Option<Duration>, backpressure: Option<Duration>) -> Config {
        Config {
            keep_alive_interval: keep_alive,
            backpressure_timeout: backpressure,
            ..Config::default()
        }
    }

    #[test]
    fn the_sweep_runs_only_when_a_deadline_is_on() {
        let tick = |keep_alive, backpressure| {
            Sessions::new(&config(keep_alive, backpressure), Arc::default()).sweep_tick()
        };
        assert_eq!(tick(None, None), None, "nothing to sweep");
        assert_eq!(
            tick(None, Some(Duration::from_millis(200))),
            Some(Duration::from_millis(50)),
            "for backpressure even without pings"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_blocked_for_the_timeout_fails_and_is_counted_once() {
        let limit = Duration::from_secs(2);
        let sessions = Rc::new(Sessions::new(&config(None, Some(limit)), Arc::default()));
        let guard = sessions.open();
        let session = guard.session().clone();
        // A 16-byte pipe nobody reads: the second write has to wait.
        let (near, _far) = tokio::io::duplex(16);
        let mut stream = SessionStream::new(near, Bytes::new(), session.clone(), false);
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut write =
            |stream: &mut SessionStream<_>| Pin::new(stream).poll_write(&mut cx, &[0; 16]);
        assert!(matches!(write(&mut stream), Poll::Ready(Ok(16))));
        assert_eq!(session.write_blocked_since.get(), None);
        assert!(write(&mut stream).is_pending());
        let blocked_at = session.write_blocked_since.get().expect("blocked");
        assert!(
            session.write_waker.borrow().is_some(),
            "the sweep can wake it"
        );

        tokio::time::advance(limit / 2).await;
        assert!(write(&mut stream).is_pending());
        assert_eq!(
            session.write_blocked_since.get(),
            Some(blocked_at),
            "a retry without progress keeps the start"
        );
        tokio::time::advance(limit / 2 - Duration::from_millis(1)).await;
        sessions.sweep_once(Instant::now());
        assert!(!session.backpressure_timed_out(), "1 ms early");
        tokio::time::advance(Duration::from_millis(1)).await;
        sessions.sweep_once(Instant::now());
        sessions.sweep_once(Instant::now());
        assert!(session.backpressure_timed_out());
        match write(&mut stream) {
            Poll::Ready(Err(e)) => assert_eq!(e.kind(), io::ErrorKind::TimedOut),
            other => panic!("expected the write to fail, got {other:?}"),
        }
        let counted = sessions.stats.snapshot(0);
        assert_eq!(counted.backpressure_closes, 1, "counted once");
        assert_eq!(
            counted.close_codes_sent.iter().sum::<u64>(),
            1,
            "and its 1008 with it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn progress_clears_the_blocked_write() {
        let limit = Duration::from_secs(2);
        let sessions = Rc::new(Sessions::new(&config(None, Some(limit)), Arc::default()));
        let guard = sessions.open();
        let session = guard.session().clone();
        let (near, mut far) = tokio::io::duplex(16);
        let mut stream = SessionStream::new(near, Bytes::new(), session.clone(), false);
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut write =
            |stream: &mut SessionStream<_>| Pin::new(stream).poll_write(&mut cx, &[0; 16]);
        assert!(write(&mut stream).is_ready());
        assert!(write(&mut stream).is_pending());
        tokio::time::advance(limit).await;
        // The peer reads just in time: the write goes through.
        tokio::io::AsyncReadExt::read_exact(&mut far, &mut [0; 16])
            .await
            .expect("read");
        assert!(write(&mut stream).is_ready());
        assert_eq!(session.write_blocked_since.get(), None);
        sessions.sweep_once(Instant::now());
        assert!(!session.backpressure_timed_out());
        assert_eq!(sessions.stats.snapshot(0).backpressure_closes, 0);
    }

    #[test]
    fn close_wins_over_ping_and_nothing_follows_it() {
        let keep_alive = Deadlines::default().open(Instant::now());
        let session = Session::new(keep_alive, Arc::default());
        session.owe(Owed::ping);
        session.owe(Owed::going_away);
        assert_eq!(session.take_due_frame(), Some(&GOING_AWAY_FRAME[..]));
        assert!(session.close_sent());
        assert_eq!(session.take_due_frame(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn sweep_marks_pings_and_expires_silent_peers() {
        let sessions = Rc::new(Sessions::new(
            &Config {
                keep_alive_timeout: Some(Duration::from_millis(500)),
                ..config(Some(Duration::from_secs(1)), None)
            },
            Arc::default(),
        ));
        let guard = sessions.open();
        let session = guard.session().clone();
        sessions.sweep_once(Instant::now());
        assert_eq!(
            session.take_due_frame(),
            None,
            "no ping before the interval"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        sessions.sweep_once(Instant::now());
        assert_eq!(session.take_due_frame(), Some(&PING_FRAME[..]));
        tokio::time::advance(Duration::from_millis(499)).await;
        sessions.sweep_once(Instant::now());
        assert!(!session.expired());
        tokio::time::advance(Duration::from_millis(1)).await;
        sessions.sweep_once(Instant::now());
        assert!(session.expired());
        sessions.sweep_once(Instant::now());
        let counted = sessions.stats.snapshot(0);
        assert_eq!(counted.pings_sent, 1);
        assert_eq!(counted.keep_alive_timeouts, 1, "an expiry is counted once");
        drop(guard);
        assert!(sessions.is_empty());
    }

    #[test]
    fn sessions_opened_after_close_all_are_closed_too() {
        let sessions = Rc::new(Sessions::new(&config(None, None), Arc::default()));
        sessions.close_all();
        let guard = sessions.open();
        assert_eq!(
            guard.session().take_due_frame(),
            Some(&GOING_AWAY_FRAME[..])
        );
    }
}
