//! A connection slot in a worker's slab: its socket, where its recv and
//! send stand, and its phase. During the HTTP phase hyper owns the protocol
//! ([`HttpState`], boxed, freed at the upgrade); after the 101 a WebSocket
//! is [`WebSocketState`]: the decoder and a few counters, no task and no
//! buffer while idle; once the engine closes it, [`LingerState`].

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::task::Waker;

use async_task::Task;

use super::outbox::Outbox;
use crate::http::request_head::HeadEnd;
use crate::protocol::deflate::ConnDeflate;
use crate::protocol::Decoder;
use crate::runtime::keep_alive::{KeepAlive, Owed};
use crate::runtime::shared::Admission;

/// Where a connection's multishot recv stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvState {
    /// Not armed.
    Idle,
    /// A multishot recv is in flight.
    Armed,
    /// Its cancel is in flight; never re-arm before the final CQE, since a
    /// new recv would share its `user_data` and could be the one cancelled.
    Cancelling,
    /// Stopped because the connection holds too many unsent bytes
    /// (backpressure), or, in the HTTP phase, too many bytes hyper has not
    /// read; re-armed when they drain.
    Paused,
    /// Stopped by `ENOBUFS`: re-armed when buffers return to the ring.
    Starved,
}

/// A received range not yet read by hyper: bytes `start..end` of buffer `id`.
#[derive(Debug, Clone, Copy)]
pub struct Unread {
    /// Buffer id (held until read).
    pub id: u16,
    /// First unread byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

/// The HTTP phase: what hyper's I/O adapter reads and who waits for it.
#[derive(Default)]
pub struct HttpState {
    /// Received and not yet handed to hyper, oldest first.
    pub unread: VecDeque<Unread>,
    /// Where the request head handed to hyper ends: reads stop at the end
    /// of a request head, so that bytes after an upgrade request stay in
    /// the receive buffers for the WebSocket decoder.
    pub head_end: HeadEnd,
    /// Set when the first request head has been handed to hyper.
    pub seen_request: bool,
    /// The peer's EOF (0) or the recv error that ended reading.
    pub read_end: Option<i32>,
    /// hyper's read waker.
    pub reader: Option<Waker>,
    /// hyper's write waker, woken when the outbox drains.
    pub writer: Option<Waker>,
    /// The future serving HTTP; dropping it cancels it.
    pub task: Option<Task<()>>,
    /// hyper's I/O handle still exists: the slot must outlive it.
    pub io_alive: bool,
}

impl HttpState {
    /// Received bytes hyper has not read yet, held in receive buffers.
    pub fn unread_bytes(&self) -> usize {
        self.unread
            .iter()
            .map(|unread| (unread.end - unread.start) as usize)
            .sum()
    }
}

/// A WebSocket after the upgrade.
pub struct WebSocketState {
    /// The in-place frame decoder.
    pub decoder: Decoder,
    /// A fragmented message being reassembled. Boxed so that an idle
    /// WebSocket spends 8 bytes on it, not 24.
    #[allow(clippy::box_collection)]
    pub assembled: Option<Box<Vec<u8>>>,
    /// permessage-deflate, when agreed: the parameters and a compressed
    /// message in flight. Boxed: 8 bytes on a WebSocket without it.
    pub deflate: Option<Box<ConnDeflate>>,
    /// The text frame under way is being copied out of the ring: its echo
    /// is the last queued piece, an owned one, and grows as it arrives.
    pub copying: bool,
    /// Inside an echo frame whose pieces are being queued: control frames
    /// of our own wait for its end.
    pub mid_frame: bool,
    /// Bytes queued so far of the echo frame under way: backpressure does
    /// not count them, so a peer may send a whole frame before it reads.
    pub frame_queued: u64,
    /// The ping or close 1001 owed at the next frame boundary, and whether
    /// our close frame went out (then nothing more does).
    pub owed: Owed,
    /// When the next keep-alive ping is due and since when a pong is
    /// awaited (loop clock, ms).
    pub keep_alive: KeepAlive<u64>,
    /// The WebSocket's slot under `--max-connections`, held for its `Drop`,
    /// which gives the slot back when the connection is removed.
    pub _admission: Admission,
}

/// A WebSocket the engine is closing (an error, or 1001 at shutdown): its
/// close frame is queued; once it is sent, the write side is shut down, and
/// what the client still sends is read and discarded until its end of
/// stream or the bounds (`--linger-time`, `--linger-bytes`), so that the
/// client reads the close frame rather than a reset.
pub struct LingerState {
    /// When the lingering ends whatever arrives (loop clock, ms).
    pub until_ms: u64,
    /// Bytes still to be read and discarded before it ends.
    pub bytes_left: u64,
    /// The write side is shut down (after the close frame went out).
    pub write_shut: bool,
    /// The WebSocket's slot under `--max-connections`, held until the
    /// connection is removed.
    pub _admission: Admission,
}

/// What a connection is speaking.
pub enum Phase {
    /// HTTP, served by hyper.
    Http(Box<HttpState>),
    /// WebSocket, handled by the loop.
    WebSocket(WebSocketState),
    /// A WebSocket closed by the engine, lingering until the client is done.
    Lingering(LingerState),
}

/// One accepted TCP connection.
pub struct Conn {
    /// The socket; closed when the slot is removed.
    pub fd: OwnedFd,
    /// Tells this connection from earlier ones in the same slot.
    pub generation: u32,
    /// Operations in flight that name this slot; it is removed (and the fd
    /// closed) only at zero.
    pub ops: u16,
    /// The multishot recv.
    pub recv: RecvState,
    /// Closing: receive nothing more; close once the outbox is sent.
    pub closing: bool,
    /// Listed in the loop's send list.
    pub send_listed: bool,
    /// The last send was partial: the peer is not keeping up, so what waits
    /// for it is copied out of the receive ring before it is sent.
    pub peer_slow: bool,
    /// Pieces of `queued` that may be sent; the rest belong to a text
    /// frame still arriving.
    pub committed: u32,
    /// Bytes of `queued` that may be sent.
    pub committed_bytes: u32,
    /// Queued pieces (committed first).
    pub queued: Option<Box<Outbox>>,
    /// The send in flight and its pieces (see [`super::outbox`]).
    pub inflight: Option<Box<Outbox>>,
    /// Since when the connection holds more than `--max-backpressure`
    /// unsent bytes (loop clock, ms).
    pub over_cap_since_ms: Option<u64>,
    /// When the HTTP phase times out (loop clock, ms): the first request
    /// must be in by then, and later an HTTP connection with no bytes in
    /// either direction for `--handshake-timeout` is closed (as hyper's
    /// header read timeout does on the epoll backend). Moved on by every
    /// read and write.
    pub handshake_deadline_ms: u64,
    /// The protocol state.
    pub phase: Phase,
}

impl Conn {
    /// A new connection in the HTTP phase.
    pub fn new(fd: OwnedFd, handshake_deadline_ms: u64, generation: u32) -> Self {
        Self {
            fd,
            generation,
            ops: 0,
            recv: RecvState::Idle,
            closing: false,
            send_listed: false,
            peer_slow: false,
            committed: 0,
            committed_bytes: 0,
            queued: None,
            inflight: None,
            over_cap_since_ms: None,
            handshake_deadline_ms,
            phase: Phase::Http(Box::new(HttpState {
                io_alive: true,
                ..HttpState::default()
            })),
        }
    }

    /// Bytes queued or in flight and not yet accepted by the kernel.
    pub fn unsent(&self) -> usize {
        self.queued.as_ref().map_or(0, |q| q.bytes())
            + self.inflight.as_ref().map_or(0, |q| q.bytes())
    }

    /// The WebSocket state, if upgraded and not closing.
    pub fn websocket(&mut self) -> Option<&mut WebSocketState> {
        match &mut self.phase {
            Phase::WebSocket(ws) => Some(ws),
            Phase::Http(_) | Phase::Lingering(_) => None,
        }
    }

    /// The HTTP state, if not upgraded.
    pub fn http(&mut self) -> Option<&mut HttpState> {
        match &mut self.phase {
            Phase::Http(http) => Some(http),
            Phase::WebSocket(_) | Phase::Lingering(_) => None,
        }
    }

    /// The lingering close under way, if any.
    pub fn lingering(&mut self) -> Option<&mut LingerState> {
        match &mut self.phase {
            Phase::Lingering(linger) => Some(linger),
            Phase::Http(_) | Phase::WebSocket(_) => None,
        }
    }
}
