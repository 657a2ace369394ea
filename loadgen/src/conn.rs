//! One client connection: its socket, buffers, handshake state and the
//! messages it has in flight.
//!
//! The connection does its own I/O (non-blocking, edge-triggered) and its
//! own echo checking; *when* to send is decided by the driver
//! ([`crate::closed`], [`crate::open`]), which calls
//! [`Conn::queue_message`] and then [`Conn::flush`].
//!
//! Buffers are allocated once per connection and reused: after the
//! handshake no allocation happens per message, whatever the mode.
//! Frames are parsed in place in the receive buffer; only a fragmented
//! echo (which a plain echo server never produces) is copied to reassemble it.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;

use mio::net::TcpStream;
use rand::rngs::StdRng;
use rand::Rng;

use crate::codec::{self, FrameHead, ProtocolError};
use crate::handshake::{self, Response};
use crate::payload::{self, PayloadKind, Pending};
use crate::stats::Interval;
use crate::target::Target;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent, waiting for the `101`.
    Handshaking,
    /// Exchanging messages.
    Open,
    /// We sent a Close frame at the end of the run; waiting for the server's.
    Closing,
    /// Finished (closed, failed or lost); the socket is dropped.
    Done,
    /// Dropped by the server and waiting for a reconnect attempt
    /// (`--reconnect`); its socket is deregistered and its in-flight
    /// messages are kept to be sent again.
    Parked,
}

/// Why a connection failed or was lost, as a reason key and a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Stable key for reports: `refused`, `reset`, `timeout`, `http_403`, ...
    pub key: String,
    /// Human description: `connection refused`, `HTTP 403 Forbidden`, ...
    pub detail: String,
}

impl Failure {
    fn new(key: impl Into<String>, detail: impl Into<String>) -> Failure {
        Failure {
            key: key.into(),
            detail: detail.into(),
        }
    }

    /// Classifies an I/O error.
    pub fn from_io(e: &io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Failure::new("refused", "connection refused"),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                Failure::new("reset", "connection reset")
            }
            io::ErrorKind::ConnectionAborted => Failure::new("aborted", "connection aborted"),
            io::ErrorKind::TimedOut => Failure::new("timeout", "timed out"),
            io::ErrorKind::AddrNotAvailable => {
                Failure::new("addr_not_available", "no local address/port available")
            }
            _ => Failure::new("io", format!("I/O error: {e}")),
        }
    }

    /// The server closed the TCP stream.
    pub fn eof() -> Failure {
        Failure::new("eof", "server closed the connection")
    }

    /// The connect + handshake took too long.
    pub fn timeout() -> Failure {
        Failure::new("timeout", "connect/handshake timed out")
    }

    /// The server broke the WebSocket framing.
    pub fn protocol(e: ProtocolError) -> Failure {
        Failure::new("protocol", format!("protocol error: {e}"))
    }
}

/// What a readiness event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing the worker must act on.
    Idle,
    /// The handshake just completed.
    Opened,
    /// `n` echoes were consumed; the driver may send more.
    Echoes(usize),
    /// The connection is finished; `Some` when that is a failure.
    Finished(Option<Failure>),
}

/// One WebSocket client connection.
#[derive(Debug)]
pub struct Conn {
    /// Global connection index (0..connections), used for tick phases.
    pub id: usize,
    /// The socket.
    pub stream: TcpStream,
    /// Life-cycle state.
    pub state: State,
    /// When `connect()` was called (monotonic ns), for connect latency.
    pub started_ns: u64,
    key: String,
    rx: Vec<u8>,
    rx_start: usize,
    rx_end: usize,
    tx: Vec<u8>,
    tx_pos: usize,
    template: Vec<u8>,
    /// Messages sent and not yet echoed, oldest first.
    pub inflight: VecDeque<Pending>,
    next_seq: u64,
    frag: Option<(u8, Vec<u8>)>,
    /// Open mode: intended send time of the next message (ns since run start).
    pub next_tick_ns: u64,
    /// Open mode: true while the connection has an entry in the tick queue.
    pub scheduled: bool,
    /// Time of the last read (ns since run start): the receive time of the
    /// echoes it carried and the send time of the messages they trigger.
    pub last_rx_ns: u64,
    /// `--reconnect`: this socket is a reconnect attempt, not the first
    /// connection of its slot.
    pub reconnecting: bool,
    /// `--reconnect`: failed attempts since the connection was dropped.
    pub attempts: u32,
    /// `--reconnect`: why the open connection was dropped (what it counts
    /// as if it is not back before the end of the run).
    pub drop_reason: Option<Failure>,
    /// The status code of the server's Close frame, once one arrived
    /// (1005 when it carried none).
    pub peer_close_code: Option<u16>,
}

impl Conn {
    /// Wraps a socket whose non-blocking `connect()` was just issued.
    pub fn new(
        id: usize,
        stream: TcpStream,
        started_ns: u64,
        key: String,
        kind: PayloadKind,
        max_size: usize,
        in_flight: usize,
    ) -> Conn {
        // Room for a full window of the largest frames, within sane bounds;
        // grows on demand for anything bigger.
        let frame = max_size + 14;
        let rx_len = (frame * in_flight).clamp(4096, 256 * 1024).max(frame);
        Conn {
            id,
            stream,
            state: State::Connecting,
            started_ns,
            key,
            rx: vec![0; rx_len],
            rx_start: 0,
            rx_end: 0,
            tx: Vec::with_capacity(frame * in_flight.min(64)),
            tx_pos: 0,
            template: kind.template(max_size, id as u64),
            inflight: VecDeque::with_capacity(in_flight.min(1024)),
            next_seq: 0,
            frag: None,
            next_tick_ns: 0,
            scheduled: false,
            last_rx_ns: 0,
            reconnecting: false,
            attempts: 0,
            drop_reason: None,
            peer_close_code: None,
        }
    }

    /// Starts a reconnect attempt on `stream`, whose non-blocking
    /// `connect()` was just issued: the old socket is closed and the
    /// buffers emptied, while the in-flight messages, the sequence numbers
    /// and the tick schedule carry over.
    pub fn restart(&mut self, stream: TcpStream, started_ns: u64, key: String) {
        self.stream = stream;
        self.state = State::Connecting;
        self.started_ns = started_ns;
        self.key = key;
        self.rx_start = 0;
        self.rx_end = 0;
        self.tx.clear();
        self.tx_pos = 0;
        self.frag = None;
        self.reconnecting = true;
    }

    /// Queues again every message still waiting for its echo (after a
    /// reconnect), oldest first with its own sequence number, sent at
    /// `now_ns`; the intended send time stays. Returns how many.
    pub fn resend_inflight(&mut self, kind: PayloadKind, rng: &mut StdRng, now_ns: u64) -> usize {
        for p in self.inflight.iter_mut() {
            kind.write_header(&mut self.template, p.seq, now_ns);
            codec::encode_masked(
                &mut self.tx,
                kind.opcode(),
                &self.template[..p.len as usize],
                rng.gen(),
            );
            p.sent_ns = now_ns;
        }
        self.inflight.len()
    }

    /// Writes as much of the pending output as the socket takes.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.tx_pos < self.tx.len() {
            match crate::sys::send(self.stream.as_raw_fd(), &self.tx[self.tx_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.tx_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.tx.clear();
        self.tx_pos = 0;
        Ok(())
    }

    /// True when output is waiting for the socket to become writable.
    pub fn has_backlog(&self) -> bool {
        self.tx_pos < self.tx.len()
    }

    /// Queues the next data message of `len` bytes, sent at `now_ns` and
    /// intended for `intended_ns` (both ns since run start).
    #[inline]
    pub fn queue_message(
        &mut self,
        kind: PayloadKind,
        rng: &mut StdRng,
        len: usize,
        now_ns: u64,
        intended_ns: u64,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        kind.write_header(&mut self.template, seq, now_ns);
        codec::encode_masked(
            &mut self.tx,
            kind.opcode(),
            &self.template[..len],
            rng.gen(),
        );
        self.inflight.push_back(Pending {
            seq,
            len: len as u32,
            sent_ns: now_ns,
            intended_ns,
        });
    }

    /// Queues a Close frame (1000, normal closure) and enters
    /// [`State::Closing`]; echoes still on their way are no longer awaited.
    pub fn start_close(&mut self, rng: &mut StdRng) {
        self.start_close_awaiting_echoes(rng);
        self.inflight.clear();
    }

    /// Queues a Close frame (1000, normal closure) and enters
    /// [`State::Closing`], still expecting the echoes of the messages in
    /// flight: a server must send them before its own Close (RFC 6455
    /// §5.5.1: the Close is the last frame), so they are checked as they
    /// come, and whatever is left in [`Conn::inflight`] when the server's
    /// Close arrives was lost.
    pub fn start_close_awaiting_echoes(&mut self, rng: &mut StdRng) {
        codec::encode_masked(
            &mut self.tx,
            codec::OP_CLOSE,
            &1000u16.to_be_bytes(),
            rng.gen(),
        );
        self.state = State::Closing;
    }

    /// Handles writability while connecting: sends the upgrade request.
    pub fn on_connected(&mut self, target: &Target) -> Outcome {
        match self.stream.take_error() {
            Ok(Some(e)) | Err(e) => return Outcome::Finished(Some(Failure::from_io(&e))),
            Ok(None) => {}
        }
        match self.stream.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Outcome::Idle,
            Err(e) => return Outcome::Finished(Some(Failure::from_io(&e))),
        }
        let _ = self.stream.set_nodelay(true);
        self.tx
            .extend_from_slice(&handshake::request(target, &self.key));
        self.state = State::Handshaking;
        match self.flush() {
            Ok(()) => Outcome::Idle,
            Err(e) => Outcome::Finished(Some(Failure::from_io(&e))),
        }
    }

    /// Reads until the socket is drained. `now` gives the receive time
    /// (monotonic ns) and `t0` the run start.
    pub fn on_readable(
        &mut self,
        kind: PayloadKind,
        rng: &mut StdRng,
        stats: &mut Interval,
        t0: u64,
    ) -> Outcome {
        let mut echoes = 0usize;
        let mut opened = false;
        loop {
            if self.rx_end == self.rx.len() {
                // Full buffer: the frame at rx_start is bigger than the buffer.
                let need = (self.rx.len() * 2).min(codec::MAX_FRAME + 16);
                if need <= self.rx.len() {
                    return Outcome::Finished(Some(Failure::protocol(ProtocolError::TooLarge)));
                }
                self.rx.resize(need, 0);
            }
            let space = self.rx.len() - self.rx_end;
            let n = match crate::sys::recv(self.stream.as_raw_fd(), &mut self.rx[self.rx_end..]) {
                Ok(0) => {
                    return Outcome::Finished(match self.state {
                        State::Closing => None,
                        _ => Some(Failure::eof()),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Outcome::Finished(match self.state {
                        State::Closing => None,
                        _ => Some(Failure::from_io(&e)),
                    })
                }
            };
            self.rx_end += n;
            let now = crate::clock::now_ns().saturating_sub(t0);
            self.last_rx_ns = now;

            if self.state == State::Handshaking {
                match handshake::parse_response(&self.rx[..self.rx_end], &self.key) {
                    Response::Incomplete => {
                        if n < space {
                            break;
                        }
                        continue;
                    }
                    Response::Accepted { header_len } => {
                        self.rx_start = header_len;
                        self.state = State::Open;
                        self.key = String::new();
                        opened = true;
                    }
                    Response::Rejected { status, reason } => {
                        return Outcome::Finished(Some(Failure::new(
                            format!("http_{status}"),
                            format!("HTTP {status} {reason}").trim_end().to_string(),
                        )));
                    }
                    Response::Invalid(why) => {
                        return Outcome::Finished(Some(Failure::new("bad_handshake", why)));
                    }
                }
            }

            match self.parse_frames(kind, rng, stats, now, &mut echoes) {
                Ok(Some(done)) => return done,
                Ok(None) => {}
                Err(e) => {
                    stats.errors.protocol += 1;
                    return Outcome::Finished(Some(Failure::protocol(e)));
                }
            }
            // Keep the partial frame (if any) at the front of the buffer.
            if self.rx_start == self.rx_end {
                self.rx_start = 0;
                self.rx_end = 0;
            } else if self.rx_start > 0 {
                self.rx.copy_within(self.rx_start..self.rx_end, 0);
                self.rx_end -= self.rx_start;
                self.rx_start = 0;
            }
            // A short read means the socket was empty at that moment; with
            // edge-triggered readiness the next arrival raises a new edge, so
            // no extra read() just to see EAGAIN.
            if n < space {
                break;
            }
        }
        if opened {
            Outcome::Opened
        } else if echoes > 0 {
            Outcome::Echoes(echoes)
        } else {
            Outcome::Idle
        }
    }

    /// Parses and handles every complete frame in the receive buffer.
    /// Returns `Ok(Some(outcome))` when the connection ends.
    fn parse_frames(
        &mut self,
        kind: PayloadKind,
        rng: &mut StdRng,
        stats: &mut Interval,
        now: u64,
        echoes: &mut usize,
    ) -> Result<Option<Outcome>, ProtocolError> {
        loop {
            let buf = &self.rx[self.rx_start..self.rx_end];
            let head: FrameHead = match codec::parse_head(buf)? {
                Some(h) if h.total_len() <= buf.len() => h,
                Some(h) => {
                    // Make sure the buffer can hold the whole frame.
                    if h.total_len() > self.rx.len() {
                        let need = h.total_len().next_power_of_two();
                        self.rx.resize(need, 0);
                    }
                    return Ok(None);
                }
                None => return Ok(None),
            };
            let p0 = self.rx_start + head.header_len;
            let p1 = self.rx_start + head.total_len();
            self.rx_start = p1;
            match head.opcode {
                codec::OP_TEXT | codec::OP_BINARY => {
                    if self.frag.is_some() {
                        return Err(ProtocolError::Fragmentation);
                    }
                    if head.fin {
                        *echoes += on_message(
                            self.state,
                            kind,
                            head.opcode,
                            &self.rx[p0..p1],
                            &mut self.inflight,
                            &self.template,
                            stats,
                            now,
                        );
                    } else {
                        self.frag = Some((head.opcode, self.rx[p0..p1].to_vec()));
                    }
                }
                codec::OP_CONT => {
                    let Some((_, data)) = self.frag.as_mut() else {
                        return Err(ProtocolError::Fragmentation);
                    };
                    data.extend_from_slice(&self.rx[p0..p1]);
                    if head.fin {
                        let (op, data) = self.frag.take().expect("checked above");
                        *echoes += on_message(
                            self.state,
                            kind,
                            op,
                            &data,
                            &mut self.inflight,
                            &self.template,
                            stats,
                            now,
                        );
                    }
                }
                codec::OP_PING => {
                    let mut payload = [0u8; 125];
                    let len = p1 - p0;
                    payload[..len].copy_from_slice(&self.rx[p0..p1]);
                    codec::encode_masked(&mut self.tx, codec::OP_PONG, &payload[..len], rng.gen());
                }
                codec::OP_PONG => {}
                codec::OP_CLOSE => {
                    let code = if p1 - p0 >= 2 {
                        u16::from_be_bytes([self.rx[p0], self.rx[p0 + 1]])
                    } else {
                        1005
                    };
                    self.peer_close_code = Some(code);
                    if self.state == State::Closing {
                        return Ok(Some(Outcome::Finished(None)));
                    }
                    // Answer the close, then report the loss.
                    codec::encode_masked(
                        &mut self.tx,
                        codec::OP_CLOSE,
                        &self.rx[p0..p1.min(p0 + 2)],
                        rng.gen(),
                    );
                    let _ = self.flush();
                    return Ok(Some(Outcome::Finished(Some(Failure::new(
                        "closed_by_server",
                        format!("server sent Close ({code})"),
                    )))));
                }
                other => return Err(ProtocolError::Opcode(other)),
            }
        }
    }
}

/// Checks one echoed message against the oldest outstanding one and
/// records its latency. Returns 1 when it answered an outstanding message
/// (freeing a slot in the window), else 0. While closing, only the echoes
/// still awaited (see [`Conn::start_close_awaiting_echoes`]) are checked;
/// later ones are ignored. Public for the per-message cost
/// micro-benchmark in `bench/benches/loadgen_message.rs`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn on_message(
    state: State,
    kind: PayloadKind,
    opcode: u8,
    data: &[u8],
    inflight: &mut VecDeque<Pending>,
    template: &[u8],
    stats: &mut Interval,
    now: u64,
) -> usize {
    let awaited = match state {
        State::Open => true,
        State::Closing => !inflight.is_empty(),
        _ => false,
    };
    if !awaited {
        return 0; // late echoes after a plain close are not measured
    }
    let Some(p) = inflight.pop_front() else {
        stats.errors.unexpected += 1;
        return 0;
    };
    if opcode != kind.opcode() {
        stats.errors.protocol += 1;
        return 1;
    }
    match payload::verify(kind, data, &p, template) {
        Ok(()) => {
            stats.messages += 1;
            stats.bytes += data.len() as u64;
            // Sent exactly when intended (every closed-loop message): one
            // latency, corrected and uncorrected alike, recorded once.
            if p.sent_ns == p.intended_ns {
                stats.same.saturating_record(now.saturating_sub(p.sent_ns));
            } else {
                stats
                    .uncorrected
                    .saturating_record(now.saturating_sub(p.sent_ns));
                stats
                    .corrected
                    .saturating_record(now.saturating_sub(p.intended_ns));
            }
        }
        Err(m) => stats.errors.count(m),
    }
    1
}
