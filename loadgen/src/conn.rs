//! One client connection's WebSocket side: its handshake, the messages it
//! has in flight, the bytes it has to send, and the check of every echo.
//!
//! A `Conn` does no I/O. The worker's I/O driver ([`crate::io`]) owns the
//! socket: it hands received bytes to [`Conn::on_bytes`] wherever they
//! landed, and sends what [`Conn::tx`] holds. *When* to send is decided by
//! the pacing ([`crate::closed`], [`crate::open`]), which calls
//! [`Conn::queue_message`].
//!
//! Frames are read as they land ([`crate::frames`]) and every echo is
//! checked in place against the worker's payload [`Template`]: nothing is
//! gathered or copied per message, whichever way the bytes were cut. The
//! only per-connection buffers are the bytes to send (reused) and, until
//! the `101`, the handshake response. With permessage-deflate
//! ([`crate::deflate`]) messages are compressed and echoes inflated by the
//! worker's shared state in the template; a compressed echo cut by a
//! receive boundary is gathered until its end.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;

use rand::rngs::StdRng;
use rand::Rng;

use crate::codec::{self, ProtocolError};
use crate::deflate::{self, MessageDeflate};
use crate::frames::{Flow, FrameReader, FrameSink};
use crate::handshake::{self, Response};
use crate::payload::{self, EchoCheck, PayloadKind, Pending, Template};
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
    /// We sent a Close frame; waiting for the server's.
    Closing,
    /// Finished (closed, failed or lost).
    Done,
    /// Dropped by the server and waiting for a reconnect attempt
    /// (`--reconnect`); its socket is closed and its in-flight messages
    /// are kept to be sent again.
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
    /// A failure with this key and description.
    pub fn new(key: impl Into<String>, detail: impl Into<String>) -> Failure {
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

/// What received bytes changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing the worker must act on.
    Idle,
    /// The handshake just completed.
    Opened,
    /// `n` echoes were consumed; the pacing may send more.
    Echoes(usize),
    /// The connection is finished; `Some` when that is a failure.
    Finished(Option<Failure>),
}

/// One WebSocket client connection (see the module docs).
#[derive(Debug)]
pub struct Conn {
    /// Global connection index (0..connections): tick phases and the filler offset.
    pub id: usize,
    /// Life-cycle state.
    pub state: State,
    /// When the connect started (monotonic ns), for connect latency.
    pub started_ns: u64,
    key: String,
    /// The handshake response so far (emptied once open).
    response: Vec<u8>,
    reader: FrameReader,
    /// The message being received in pieces, if any.
    partial: Option<(u8, EchoCheck)>,
    /// The compressed bytes of that message, when it is compressed.
    gathered: Option<Vec<u8>>,
    /// permessage-deflate was agreed: the window (bits) our messages use.
    client_window: Option<u8>,
    /// Bytes to send, in order; the worker hands them to its I/O driver.
    pub tx: Vec<u8>,
    /// Messages sent and not yet echoed, oldest first.
    pub inflight: VecDeque<Pending>,
    next_seq: u64,
    /// Open mode: intended send time of the next message (ns since run start).
    pub next_tick_ns: u64,
    /// Open mode: true while the connection has an entry in the tick queue.
    pub scheduled: bool,
    /// Time of the last receive (ns since run start): the receive time of
    /// the echoes it carried and the send time of the messages they trigger.
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
    /// A connection whose connect was just started, with handshake key
    /// `key`; `max_size` and `in_flight` size the buffers.
    pub fn new(id: usize, started_ns: u64, key: String, max_size: usize, in_flight: usize) -> Conn {
        Conn {
            id,
            state: State::Connecting,
            started_ns,
            key,
            response: Vec::new(),
            reader: FrameReader::default(),
            partial: None,
            gathered: None,
            client_window: None,
            tx: Vec::with_capacity((max_size + 14) * in_flight.min(64)),
            inflight: VecDeque::with_capacity(in_flight.min(1024)),
            next_seq: 0,
            next_tick_ns: 0,
            scheduled: false,
            last_rx_ns: 0,
            reconnecting: false,
            attempts: 0,
            drop_reason: None,
            peer_close_code: None,
        }
    }

    /// Starts a reconnect attempt whose connect was just started: the
    /// received and unsent bytes are dropped, while the in-flight
    /// messages, the sequence numbers and the tick schedule carry over.
    pub fn restart(&mut self, started_ns: u64, key: String) {
        self.state = State::Connecting;
        self.started_ns = started_ns;
        self.key = key;
        self.response.clear();
        self.reader.reset();
        self.partial = None;
        self.gathered = None;
        self.client_window = None;
        self.tx.clear();
        self.reconnecting = true;
    }

    /// Queues again every message still waiting for its echo (after a
    /// reconnect), oldest first with its own sequence number, sent at
    /// `now_ns`; the intended send time stays. Returns how many.
    pub fn resend_inflight(&mut self, tmpl: &Template, rng: &mut StdRng, now_ns: u64) -> usize {
        let filler = tmpl.filler(self.id);
        let deflate = compression(tmpl, self.client_window);
        for p in self.inflight.iter_mut() {
            encode_message(
                &mut self.tx,
                deflate,
                tmpl.kind(),
                filler,
                p.seq,
                p.len as usize,
                now_ns,
                rng,
            );
            p.sent_ns = now_ns;
        }
        self.inflight.len()
    }

    /// Queues the next data message of `len` bytes, sent at `now_ns` and
    /// intended for `intended_ns` (both ns since run start).
    #[inline]
    pub fn queue_message(
        &mut self,
        tmpl: &Template,
        rng: &mut StdRng,
        len: usize,
        now_ns: u64,
        intended_ns: u64,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        encode_message(
            &mut self.tx,
            compression(tmpl, self.client_window),
            tmpl.kind(),
            tmpl.filler(self.id),
            seq,
            len,
            now_ns,
            rng,
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

    /// The TCP connection is up: queues the upgrade request, which offers
    /// the extensions of the worker's template `tmpl` (permessage-deflate).
    pub fn on_connected(&mut self, target: &Target, tmpl: &Template) {
        let deflate = tmpl.deflate().map(RefCell::borrow);
        let offer = deflate.as_ref().map(|d| d.offer());
        self.tx
            .extend_from_slice(&handshake::request(target, &self.key, offer));
        self.state = State::Handshaking;
    }

    /// The server ended the stream (`error` is `None` for an orderly end of
    /// stream): how the connection ended.
    pub fn on_stream_end(&self, error: Option<&io::Error>) -> Option<Failure> {
        match (self.state, error) {
            (State::Closing, _) => None,
            (_, None) => Some(Failure::eof()),
            (_, Some(e)) => Some(Failure::from_io(e)),
        }
    }

    /// Takes bytes received at `now` (ns since run start): the handshake
    /// response, then frames. Every echo is checked against `tmpl` and
    /// counted in `stats`; pongs and a Close answer are queued in
    /// [`Conn::tx`].
    pub fn on_bytes(
        &mut self,
        data: &[u8],
        tmpl: &Template,
        rng: &mut StdRng,
        stats: &mut Interval,
        now: u64,
    ) -> Outcome {
        self.last_rx_ns = now;
        let mut opened = false;
        let mut response = Vec::new();
        let frames = match self.state {
            State::Handshaking => {
                self.response.extend_from_slice(data);
                match handshake::parse_response(&self.response, &self.key) {
                    Response::Incomplete => return Outcome::Idle,
                    Response::Accepted {
                        header_len,
                        extensions,
                    } => {
                        if let Err(failure) = self.agree(tmpl, extensions.as_deref(), stats) {
                            return Outcome::Finished(Some(failure));
                        }
                        self.state = State::Open;
                        self.key = String::new();
                        opened = true;
                        response = std::mem::take(&mut self.response);
                        header_len
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
            State::Open | State::Closing => 0,
            // Bytes for a connection that is not reading frames.
            _ => return Outcome::Idle,
        };
        let data = if opened { &response[frames..] } else { data };
        let mut sink = Sink {
            state: self.state,
            kind: tmpl.kind(),
            filler: tmpl.filler(self.id),
            deflate: tmpl.deflate(),
            inflight: &mut self.inflight,
            partial: &mut self.partial,
            gathered: &mut self.gathered,
            tx: &mut self.tx,
            peer_close_code: &mut self.peer_close_code,
            rng,
            stats,
            now,
            echoes: 0,
            finished: None,
        };
        let result = self.reader.feed(data, &mut sink);
        let (echoes, finished) = (sink.echoes, sink.finished);
        match result {
            Err(e) => {
                stats.errors.protocol += 1;
                Outcome::Finished(Some(Failure::protocol(e)))
            }
            Ok(Flow::Stop) => Outcome::Finished(finished.flatten()),
            Ok(Flow::Continue) if opened => Outcome::Opened,
            Ok(Flow::Continue) if echoes > 0 => Outcome::Echoes(echoes),
            Ok(Flow::Continue) => Outcome::Idle,
        }
    }
}

impl Conn {
    /// Checks the server's `Sec-WebSocket-Extensions` answer against what
    /// the template offered, and counts the agreed parameters in `stats`.
    fn agree(
        &mut self,
        tmpl: &Template,
        answer: Option<&str>,
        stats: &mut Interval,
    ) -> Result<(), Failure> {
        let Some(deflate) = tmpl.deflate() else {
            return match answer {
                None => Ok(()),
                Some(answer) => Err(Failure::new(
                    "bad_handshake",
                    format!("the server answered an extension that was not offered: {answer:?}"),
                )),
            };
        };
        let agreed = deflate::check_answer(deflate.borrow().offer(), answer)
            .map_err(|why| Failure::new("deflate_not_agreed", why))?;
        self.client_window = Some(agreed.client_window);
        self.reader.allow_compression();
        stats.extensions.count(&agreed.answer, &agreed.answer);
        Ok(())
    }
}

/// The worker's compression state and the connection's window, when its
/// messages are compressed.
fn compression(
    tmpl: &Template,
    client_window: Option<u8>,
) -> Option<(&RefCell<MessageDeflate>, u8)> {
    Some((tmpl.deflate()?, client_window?))
}

/// Appends one masked data frame of `kind` carrying (`seq`, `sent_ns`) and
/// `len - header` filler bytes to `out`, with a fresh mask key; compressed
/// (RSV1) when `deflate` gives the worker's state and the agreed window.
#[allow(clippy::too_many_arguments)]
fn encode_message(
    out: &mut Vec<u8>,
    deflate: Option<(&RefCell<MessageDeflate>, u8)>,
    kind: PayloadKind,
    filler: &[u8],
    seq: u64,
    len: usize,
    sent_ns: u64,
    rng: &mut StdRng,
) {
    let key: [u8; 4] = rng.gen();
    let mut header = [0u8; 32];
    let hdr = kind.min_size();
    kind.write_header(&mut header, seq, sent_ns);
    if let Some((deflate, window)) = deflate {
        let mut deflate = deflate.borrow_mut();
        let plain = deflate.plain_buffer();
        plain.extend_from_slice(&header[..hdr]);
        plain.extend_from_slice(&filler[hdr..len]);
        let compressed = deflate.compress_plain(window);
        codec::encode_masked_head(out, RSV1 | kind.opcode(), compressed.len(), key);
        let start = out.len();
        out.extend_from_slice(compressed);
        codec::apply_mask(&mut out[start..], key);
        return;
    }
    codec::encode_masked_head(out, kind.opcode(), len, key);
    let start = out.len();
    out.extend_from_slice(&header[..hdr]);
    out.extend_from_slice(&filler[hdr..len]);
    codec::apply_mask(&mut out[start..], key);
}

/// RSV1 in a frame's first byte, beside the opcode: a compressed message.
const RSV1: u8 = 0x40;

/// Where a connection's frames go: the echo check, pongs and the Close.
struct Sink<'a> {
    state: State,
    kind: PayloadKind,
    filler: &'a [u8],
    deflate: Option<&'a RefCell<MessageDeflate>>,
    inflight: &'a mut VecDeque<Pending>,
    partial: &'a mut Option<(u8, EchoCheck)>,
    gathered: &'a mut Option<Vec<u8>>,
    tx: &'a mut Vec<u8>,
    peer_close_code: &'a mut Option<u16>,
    rng: &'a mut StdRng,
    stats: &'a mut Interval,
    now: u64,
    echoes: usize,
    /// Set with [`Flow::Stop`]: how the connection ended.
    finished: Option<Option<Failure>>,
}

impl FrameSink for Sink<'_> {
    #[inline]
    fn message(&mut self, opcode: u8, compressed: bool, payload: &[u8]) -> Flow {
        if compressed {
            self.compressed_message(opcode, payload);
            return Flow::Continue;
        }
        self.echoes += on_message(
            self.state,
            self.kind,
            opcode,
            payload,
            self.inflight,
            self.filler,
            self.stats,
            self.now,
        );
        Flow::Continue
    }

    fn message_start(&mut self, opcode: u8, compressed: bool) {
        let expect = awaited(self.state, self.inflight)
            .then(|| self.inflight.front().copied())
            .flatten();
        *self.partial = Some((opcode, EchoCheck::new(expect)));
        *self.gathered = compressed.then(Vec::new);
    }

    fn message_bytes(&mut self, bytes: &[u8]) {
        if let Some(gathered) = self.gathered.as_mut() {
            gathered.extend_from_slice(bytes);
        } else if let Some((_, check)) = self.partial.as_mut() {
            check.piece(self.kind, bytes, self.filler);
        }
    }

    fn message_end(&mut self) -> Flow {
        if let Some(gathered) = self.gathered.take() {
            if let Some((opcode, _)) = self.partial.take() {
                self.compressed_message(opcode, &gathered);
            }
            return Flow::Continue;
        }
        if let Some((opcode, check)) = self.partial.take() {
            self.echoes += settle(
                self.state,
                self.kind,
                opcode,
                check.received(),
                self.inflight,
                self.stats,
                self.now,
                |p| {
                    if check.expected() == Some(*p) {
                        check.finish(self.kind)
                    } else {
                        Err(payload::Mismatch::Order)
                    }
                },
            );
        }
        Flow::Continue
    }

    fn control(&mut self, opcode: u8, payload: &[u8]) -> Flow {
        match opcode {
            codec::OP_PING => {
                codec::encode_masked(self.tx, codec::OP_PONG, payload, self.rng.gen());
                Flow::Continue
            }
            codec::OP_CLOSE => {
                let code = match payload {
                    [a, b, ..] => u16::from_be_bytes([*a, *b]),
                    _ => 1005,
                };
                *self.peer_close_code = Some(code);
                if self.state == State::Closing {
                    self.finished = Some(None);
                    return Flow::Stop;
                }
                // Answer the close, then report the loss.
                let echo = &payload[..payload.len().min(2)];
                codec::encode_masked(self.tx, codec::OP_CLOSE, echo, self.rng.gen());
                self.finished = Some(Some(Failure::new(
                    "closed_by_server",
                    format!("server sent Close ({code})"),
                )));
                Flow::Stop
            }
            _ => Flow::Continue, // a Pong
        }
    }
}

impl Sink<'_> {
    /// Inflates a compressed echo with the worker's inflater and checks it
    /// like an uncompressed one; one that does not inflate is a content
    /// error. Compressed bytes without an agreed extension cannot get here
    /// (the reader refuses RSV1).
    fn compressed_message(&mut self, opcode: u8, payload: &[u8]) {
        let Some(deflate) = self.deflate else {
            return;
        };
        let mut deflate = deflate.borrow_mut();
        match deflate.inflate(payload, self.filler.len()) {
            Ok(inflated) => {
                self.echoes += on_message(
                    self.state,
                    self.kind,
                    opcode,
                    inflated,
                    self.inflight,
                    self.filler,
                    self.stats,
                    self.now,
                );
            }
            Err(deflate::BadStream) => {
                self.echoes += settle(
                    self.state,
                    self.kind,
                    opcode,
                    payload.len(),
                    self.inflight,
                    self.stats,
                    self.now,
                    |_| Err(payload::Mismatch::Content),
                );
            }
        }
    }
}

/// Whether an echo arriving in `state` answers a message in flight: every
/// echo while open; while closing, only those still awaited (see
/// [`Conn::start_close_awaiting_echoes`]).
fn awaited(state: State, inflight: &VecDeque<Pending>) -> bool {
    match state {
        State::Open => true,
        State::Closing => !inflight.is_empty(),
        _ => false,
    }
}

/// Checks one echoed message against the oldest outstanding one and
/// records its latency. Returns 1 when it answered an outstanding message
/// (freeing a slot in the window), else 0. While closing, only the echoes
/// still awaited (see [`Conn::start_close_awaiting_echoes`]) are checked;
/// later ones are ignored. Public for the per-message cost
/// micro-benchmark in `bench/benches/loadgen_message.rs`; `filler` is the
/// connection's ([`Template::filler`]).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn on_message(
    state: State,
    kind: PayloadKind,
    opcode: u8,
    data: &[u8],
    inflight: &mut VecDeque<Pending>,
    filler: &[u8],
    stats: &mut Interval,
    now: u64,
) -> usize {
    settle(state, kind, opcode, data.len(), inflight, stats, now, |p| {
        payload::verify(kind, data, p, filler)
    })
}

/// Counts one echo of `len` payload bytes against the oldest outstanding
/// message, with `verdict` saying whether it matches (see [`on_message`]).
#[allow(clippy::too_many_arguments)]
#[inline]
fn settle(
    state: State,
    kind: PayloadKind,
    opcode: u8,
    len: usize,
    inflight: &mut VecDeque<Pending>,
    stats: &mut Interval,
    now: u64,
    verdict: impl FnOnce(&Pending) -> Result<(), payload::Mismatch>,
) -> usize {
    if !awaited(state, inflight) {
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
    match verdict(&p) {
        Ok(()) => {
            stats.messages += 1;
            stats.bytes += len as u64;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Unmasks the client frames in `tx` and returns their payloads.
    fn client_payloads(tx: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < tx.len() {
            let f = &tx[at..];
            let (len, mut h) = match f[1] & 0x7F {
                126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            let key: [u8; 4] = f[h..h + 4].try_into().unwrap();
            h += 4;
            let mut p = f[h..h + len].to_vec();
            for (i, b) in p.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
            out.push(p);
            at += h + len;
        }
        out
    }

    /// Server frames echoing `payloads`.
    fn echo_frames(payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            out.push(0x82);
            if p.len() < 126 {
                out.push(p.len() as u8);
            } else {
                out.push(126);
                out.extend_from_slice(&(p.len() as u16).to_be_bytes());
            }
            out.extend_from_slice(p);
        }
        out
    }

    fn open_conn(id: usize) -> Conn {
        let mut c = Conn::new(id, 0, "k".into(), 2000, 8);
        c.state = State::Open;
        c
    }

    #[test]
    fn echoes_cut_anywhere_are_checked_and_counted() {
        let tmpl = Template::new(PayloadKind::Binary, 2000);
        let mut rng = StdRng::seed_from_u64(1);
        for step in [1usize, 2, 7, 100, 5000] {
            let mut c = open_conn(3);
            for (i, len) in [20usize, 1500, 16, 300].into_iter().enumerate() {
                c.queue_message(&tmpl, &mut rng, len, 100 + i as u64, 100 + i as u64);
            }
            let bytes = echo_frames(&client_payloads(&c.tx));
            c.tx.clear();
            let mut stats = Interval::default();
            let mut echoes = 0;
            for piece in bytes.chunks(step) {
                if let Outcome::Echoes(n) = c.on_bytes(piece, &tmpl, &mut rng, &mut stats, 500) {
                    echoes += n;
                }
            }
            assert_eq!(
                (echoes, stats.messages, stats.errors.total()),
                (4, 4, 0),
                "step {step}"
            );
            assert!(c.inflight.is_empty());
        }
    }

    #[test]
    fn a_wrong_byte_in_a_cut_echo_is_a_content_error() {
        let tmpl = Template::new(PayloadKind::Binary, 2000);
        let mut rng = StdRng::seed_from_u64(2);
        let mut c = open_conn(0);
        c.queue_message(&tmpl, &mut rng, 1000, 1, 1);
        let mut payloads = client_payloads(&c.tx);
        payloads[0][700] ^= 0x20;
        let bytes = echo_frames(&payloads);
        let mut stats = Interval::default();
        for piece in bytes.chunks(333) {
            c.on_bytes(piece, &tmpl, &mut rng, &mut stats, 9);
        }
        assert_eq!(stats.errors.content, 1);
        assert_eq!(stats.messages, 0);
    }

    #[test]
    fn another_connections_filler_is_a_content_error() {
        let tmpl = Template::new(PayloadKind::Binary, 100);
        let mut rng = StdRng::seed_from_u64(3);
        let (mut a, mut b) = (open_conn(0), open_conn(1));
        a.queue_message(&tmpl, &mut rng, 64, 5, 5);
        b.queue_message(&tmpl, &mut rng, 64, 5, 5);
        // a's echo arrives on b: same sequence number and send time.
        let bytes = echo_frames(&client_payloads(&a.tx));
        let mut stats = Interval::default();
        b.on_bytes(&bytes, &tmpl, &mut rng, &mut stats, 9);
        assert_eq!(stats.errors.content, 1);
    }

    #[test]
    fn handshake_then_frames_in_the_same_bytes() {
        let tmpl = Template::new(PayloadKind::Binary, 100);
        let mut rng = StdRng::seed_from_u64(4);
        let key = handshake::new_key([7; 16]);
        let mut c = Conn::new(0, 0, key.clone(), 100, 1);
        let target = Target::parse("ws://127.0.0.1:1/ws").unwrap();
        c.on_connected(&target, &tmpl);
        assert_eq!(c.state, State::Handshaking);
        let mut bytes = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            handshake::expected_accept(&key)
        )
        .into_bytes();
        bytes.extend_from_slice(&[0x89, 0x01, b'p']);
        let mut stats = Interval::default();
        let (a, b) = bytes.split_at(10);
        assert_eq!(c.on_bytes(a, &tmpl, &mut rng, &mut stats, 1), Outcome::Idle);
        c.tx.clear();
        assert_eq!(
            c.on_bytes(b, &tmpl, &mut rng, &mut stats, 2),
            Outcome::Opened
        );
        assert_eq!(c.state, State::Open);
        assert_eq!(
            client_payloads(&c.tx),
            vec![b"p".to_vec()],
            "the ping is answered"
        );
    }
}
