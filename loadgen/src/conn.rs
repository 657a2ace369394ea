//! One client connection: its socket, buffers, handshake state and the
//! messages it has in flight.
//!
//! The connection does its own I/O (non-blocking, edge-triggered) and its
//! own echo checking; *when* to send is decided by the driver
//! ([`crate::closed`], [`crate::open`]), which calls
//! [`Conn::queue_message`] and then [`Conn::send_out`].
//!
//! No allocation happens per message, whatever the mode. Reads land in the
//! worker's shared [`Scratch`] buffer and frames are parsed in place there;
//! only a partial frame at the end of a read is copied into the
//! connection's own buffer (and a fragmented echo, which a plain echo
//! server never produces, is copied to reassemble it).

use std::io;
use std::os::fd::AsRawFd;

use mio::net::TcpStream;
use rand::rngs::StdRng;
use rand::Rng;

use crate::codec::{self, FrameHead, ProtocolError};
use crate::handshake::{self, Response};
use crate::inflight::InFlight;
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

/// Buffers a worker lends to each connection in turn, for one event.
///
/// Every echo is read into the same receive buffer and every message is
/// encoded into the same send buffer, so those stay in the CPU cache
/// across connections. Only what does not fit one event (a partial frame
/// at the end of a read, output the socket did not take) is copied into
/// the connection's own buffers.
#[derive(Debug)]
pub struct Scratch {
    /// Where every read lands first.
    pub rx: Vec<u8>,
    /// Where the drivers encode the messages of one event; drained by
    /// [`Conn::send_out`].
    pub tx: Vec<u8>,
}

impl Scratch {
    /// Size of the shared receive buffer: many small echoes or a few large
    /// ones per `recv`.
    pub const RX_LEN: usize = 64 * 1024;

    /// Fresh buffers.
    pub fn new() -> Scratch {
        Scratch {
            rx: vec![0; Scratch::RX_LEN],
            tx: Vec::with_capacity(Scratch::RX_LEN),
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// What the frames of one buffer did.
struct Parsed {
    /// Bytes of whole frames handled.
    consumed: usize,
    /// Total length of the partial frame after them, when its header is known.
    need: usize,
    /// Set when the connection ends.
    end: Option<Outcome>,
}

/// One WebSocket client connection.
///
/// `repr(C)` keeps the fields in the order written: the ones every echo
/// touches come first, so they share a few adjacent cache lines (profiling
/// showed the first touch of a connection after the kernel's work as a
/// cache miss per field group). Aligning it to 64 B, and touching all
/// ready connections before handling a batch, were tried and measured no
/// better.
#[derive(Debug)]
#[repr(C)]
pub struct Conn {
    /// Messages sent and not yet echoed, oldest first.
    pub inflight: InFlight,
    /// Time of the last read (ns since run start): the receive time of the
    /// echoes it carried and the send time of the messages they trigger.
    pub last_rx_ns: u64,
    next_seq: u64,
    rx_start: usize,
    rx_end: usize,
    tx_pos: usize,
    tx: Vec<u8>,
    template: Vec<u8>,
    frag: Option<(u8, Vec<u8>)>,
    /// The socket.
    pub stream: TcpStream,
    /// Life-cycle state.
    pub state: State,
    /// Open mode: true while the connection has an entry in the tick queue.
    pub scheduled: bool,
    /// Open mode: intended send time of the next message (ns since run start).
    pub next_tick_ns: u64,
    rx: Vec<u8>,
    /// Global connection index (0..connections), used for tick phases.
    pub id: usize,
    /// When `connect()` was called (monotonic ns), for connect latency.
    pub started_ns: u64,
    key: String,
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
        Conn {
            inflight: InFlight::with_capacity(in_flight.min(1024)),
            last_rx_ns: 0,
            next_seq: 0,
            rx_start: 0,
            rx_end: 0,
            tx_pos: 0,
            tx: Vec::new(),
            template: kind.template(max_size, id as u64),
            frag: None,
            stream,
            state: State::Connecting,
            scheduled: false,
            next_tick_ns: 0,
            // Only the handshake and partial frames land here; grows on demand.
            rx: vec![0; 4096],
            id,
            started_ns,
            key,
        }
    }

    /// Writes as much of the connection's own pending output as the socket takes.
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

    /// Sends the connection's own pending output (pongs, earlier backlog)
    /// and then `out`, the messages the driver just encoded into the
    /// worker's [`Scratch::tx`], in one `send` when the socket takes it.
    /// Whatever the socket does not take is kept in the connection's own
    /// buffer for the next writable event. `out` is left empty.
    #[inline]
    pub fn send_out(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        if !self.tx.is_empty() {
            self.tx.extend_from_slice(out);
            out.clear();
            return self.flush();
        }
        let mut pos = 0;
        let result = loop {
            if pos == out.len() {
                break Ok(());
            }
            match crate::sys::send(self.stream.as_raw_fd(), &out[pos..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.tx.extend_from_slice(&out[pos..]);
                    break Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        out.clear();
        result
    }

    /// True when output is waiting for the socket to become writable.
    pub fn has_backlog(&self) -> bool {
        self.tx_pos < self.tx.len()
    }

    /// Encodes the next data message of `len` bytes into `out`, sent at
    /// `now_ns` and intended for `intended_ns` (both ns since run start).
    #[inline]
    pub fn queue_message(
        &mut self,
        kind: PayloadKind,
        rng: &mut StdRng,
        len: usize,
        now_ns: u64,
        intended_ns: u64,
        out: &mut Vec<u8>,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        kind.write_header(&mut self.template, seq, now_ns);
        codec::encode_masked(out, kind.opcode(), &self.template[..len], rng.gen());
        self.inflight.push_back(Pending {
            seq,
            len: len as u32,
            sent_ns: now_ns,
            intended_ns,
        });
    }

    /// Queues a Close frame (1000, normal closure) and enters [`State::Closing`].
    pub fn start_close(&mut self, rng: &mut StdRng) {
        codec::encode_masked(
            &mut self.tx,
            codec::OP_CLOSE,
            &1000u16.to_be_bytes(),
            rng.gen(),
        );
        self.state = State::Closing;
        self.inflight.clear();
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

    /// Reads until the socket is drained, handling every whole frame.
    /// `t0` is the run start (monotonic ns); `shared_rx` is the worker's
    /// [`Scratch::rx`].
    ///
    /// Reads go into `shared_rx` unless the connection's own buffer holds
    /// a partial frame (or the handshake), in which case they append to it.
    pub fn on_readable(
        &mut self,
        kind: PayloadKind,
        rng: &mut StdRng,
        stats: &mut Interval,
        t0: u64,
        shared_rx: &mut [u8],
    ) -> Outcome {
        let mut echoes = 0usize;
        let mut opened = false;
        loop {
            let own = self.rx_end > 0 || self.state == State::Handshaking;
            if own && self.rx_end == self.rx.len() {
                // Full buffer: the frame at the front is bigger than the buffer.
                let need = (self.rx.len() * 2).min(codec::MAX_FRAME + 16);
                if need <= self.rx.len() {
                    return Outcome::Finished(Some(Failure::protocol(ProtocolError::TooLarge)));
                }
                self.rx.resize(need, 0);
            }
            let buf: &mut [u8] = if own {
                &mut self.rx[self.rx_end..]
            } else {
                &mut *shared_rx
            };
            let space = buf.len();
            let n = match crate::sys::recv(self.stream.as_raw_fd(), buf) {
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
            let now = crate::clock::now_ns().saturating_sub(t0);
            self.last_rx_ns = now;

            let handled = if own {
                self.rx_end += n;
                self.on_own_data(kind, rng, stats, now, &mut echoes, &mut opened)
            } else {
                self.on_shared_data(&shared_rx[..n], kind, rng, stats, now, &mut echoes)
            };
            match handled {
                Ok(Some(done)) => return done,
                Ok(None) => {}
                Err(e) => {
                    stats.errors.protocol += 1;
                    return Outcome::Finished(Some(Failure::protocol(e)));
                }
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

    /// Handles the bytes just appended to the connection's own buffer: the
    /// handshake response, then frames. Returns `Some` when the connection ends.
    fn on_own_data(
        &mut self,
        kind: PayloadKind,
        rng: &mut StdRng,
        stats: &mut Interval,
        now: u64,
        echoes: &mut usize,
        opened: &mut bool,
    ) -> Result<Option<Outcome>, ProtocolError> {
        if self.state == State::Handshaking {
            match handshake::parse_response(&self.rx[..self.rx_end], &self.key) {
                Response::Incomplete => return Ok(None),
                Response::Accepted { header_len } => {
                    self.rx_start = header_len;
                    self.state = State::Open;
                    self.key = String::new();
                    *opened = true;
                }
                Response::Rejected { status, reason } => {
                    return Ok(Some(Outcome::Finished(Some(Failure::new(
                        format!("http_{status}"),
                        format!("HTTP {status} {reason}").trim_end().to_string(),
                    )))));
                }
                Response::Invalid(why) => {
                    return Ok(Some(Outcome::Finished(Some(Failure::new(
                        "bad_handshake",
                        why,
                    )))));
                }
            }
        }
        // Lend the buffer out so the frames can be handled while `self` is
        // borrowed mutably; put it back before anything else.
        let rx = std::mem::take(&mut self.rx);
        let parsed = self.handle_frames(
            &rx[self.rx_start..self.rx_end],
            kind,
            rng,
            stats,
            now,
            echoes,
        );
        self.rx = rx;
        let parsed = parsed?;
        if parsed.end.is_some() {
            return Ok(parsed.end);
        }
        self.rx_start += parsed.consumed;
        // Keep the partial frame (if any) at the front of the buffer, with
        // room for all of it.
        if self.rx_start == self.rx_end {
            self.rx_start = 0;
            self.rx_end = 0;
        } else if self.rx_start > 0 {
            self.rx.copy_within(self.rx_start..self.rx_end, 0);
            self.rx_end -= self.rx_start;
            self.rx_start = 0;
        }
        if parsed.need > self.rx.len() {
            self.rx.resize(parsed.need.next_power_of_two(), 0);
        }
        Ok(None)
    }

    /// Handles a read that landed in the worker's shared buffer. A partial
    /// frame at its end moves to the connection's own buffer.
    fn on_shared_data(
        &mut self,
        data: &[u8],
        kind: PayloadKind,
        rng: &mut StdRng,
        stats: &mut Interval,
        now: u64,
        echoes: &mut usize,
    ) -> Result<Option<Outcome>, ProtocolError> {
        let parsed = self.handle_frames(data, kind, rng, stats, now, echoes)?;
        if parsed.end.is_some() {
            return Ok(parsed.end);
        }
        let rest = &data[parsed.consumed..];
        if !rest.is_empty() {
            let need = parsed.need.max(rest.len());
            if need > self.rx.len() {
                self.rx.resize(need.next_power_of_two(), 0);
            }
            self.rx[..rest.len()].copy_from_slice(rest);
            self.rx_start = 0;
            self.rx_end = rest.len();
        }
        Ok(None)
    }

    /// Handles every whole frame at the start of `buf`.
    fn handle_frames(
        &mut self,
        buf: &[u8],
        kind: PayloadKind,
        rng: &mut StdRng,
        stats: &mut Interval,
        now: u64,
        echoes: &mut usize,
    ) -> Result<Parsed, ProtocolError> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            let head: FrameHead = match codec::parse_head(rest)? {
                Some(h) if h.total_len() <= rest.len() => h,
                Some(h) => {
                    return Ok(Parsed {
                        consumed: pos,
                        need: h.total_len(),
                        end: None,
                    })
                }
                None => {
                    return Ok(Parsed {
                        consumed: pos,
                        need: 0,
                        end: None,
                    })
                }
            };
            let p0 = pos + head.header_len;
            let p1 = pos + head.total_len();
            pos = p1;
            let payload = &buf[p0..p1];
            match head.opcode {
                codec::OP_TEXT | codec::OP_BINARY => {
                    if self.frag.is_some() {
                        return Err(ProtocolError::Fragmentation);
                    }
                    if head.fin {
                        *echoes += self.on_message(kind, head.opcode, payload, stats, now);
                    } else {
                        self.frag = Some((head.opcode, payload.to_vec()));
                    }
                }
                codec::OP_CONT => {
                    let Some((_, data)) = self.frag.as_mut() else {
                        return Err(ProtocolError::Fragmentation);
                    };
                    data.extend_from_slice(payload);
                    if head.fin {
                        let (op, data) = self.frag.take().expect("checked above");
                        *echoes += self.on_message(kind, op, &data, stats, now);
                    }
                }
                codec::OP_PING => {
                    codec::encode_masked(&mut self.tx, codec::OP_PONG, payload, rng.gen());
                }
                codec::OP_PONG => {}
                codec::OP_CLOSE => {
                    if self.state == State::Closing {
                        return Ok(Parsed {
                            consumed: pos,
                            need: 0,
                            end: Some(Outcome::Finished(None)),
                        });
                    }
                    let code = if payload.len() >= 2 {
                        u16::from_be_bytes([payload[0], payload[1]])
                    } else {
                        1005
                    };
                    // Answer the close, then report the loss.
                    codec::encode_masked(
                        &mut self.tx,
                        codec::OP_CLOSE,
                        &payload[..payload.len().min(2)],
                        rng.gen(),
                    );
                    let _ = self.flush();
                    return Ok(Parsed {
                        consumed: pos,
                        need: 0,
                        end: Some(Outcome::Finished(Some(Failure::new(
                            "closed_by_server",
                            format!("server sent Close ({code})"),
                        )))),
                    });
                }
                other => return Err(ProtocolError::Opcode(other)),
            }
        }
    }

    /// Checks one echoed message; see [`on_message`].
    #[inline]
    fn on_message(
        &mut self,
        kind: PayloadKind,
        opcode: u8,
        data: &[u8],
        stats: &mut Interval,
        now: u64,
    ) -> usize {
        on_message(
            self.state,
            kind,
            opcode,
            data,
            &mut self.inflight,
            &self.template,
            stats,
            now,
        )
    }
}

/// Checks one echoed message against the oldest outstanding one and
/// records its latency. Returns 1 when it answered an outstanding message
/// (freeing a slot in the window), else 0. Public for the per-message cost
/// micro-benchmark in `bench/`.
///
/// A message sent exactly when it was meant to be (always in the closed
/// loop) has one latency, corrected and uncorrected alike: it is recorded
/// once, into [`Interval::same`], instead of into both histograms.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn on_message(
    state: State,
    kind: PayloadKind,
    opcode: u8,
    data: &[u8],
    inflight: &mut InFlight,
    template: &[u8],
    stats: &mut Interval,
    now: u64,
) -> usize {
    if state != State::Open {
        return 0; // late echoes while closing are not measured
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
            if p.sent_ns == p.intended_ns {
                stats.same.saturating_record(now.saturating_sub(p.sent_ns));
            } else {
                stats
                    .corrected
                    .saturating_record(now.saturating_sub(p.intended_ns));
                stats
                    .uncorrected
                    .saturating_record(now.saturating_sub(p.sent_ns));
            }
        }
        Err(m) => stats.errors.count(m),
    }
    1
}
