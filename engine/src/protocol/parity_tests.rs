//! Property tests: the in-place [`Decoder`] against fastwebsockets on the
//! same byte streams.
//!
//! The reference is the epoll backend's read side: fastwebsockets'
//! `WebSocket::read_frame` (server role, auto-close and auto-pong off, the
//! same inclusive size limit) with the epoll loop's checks around it, as
//! `crate::echo` applies them: fragments go through [`MessageAssembler`],
//! close payloads through [`close::check_payload`], pongs over 125 bytes are
//! refused. Both read the same stream, cut into the same random chunks, and
//! must report the same messages, pings, pongs and close, and end the same
//! way (the stream's end, the close, or a failure with the same code).
//!
//! The streams: messages of random size, text (any characters) or binary,
//! whole or fragmented at random byte offsets (inside characters too), with
//! pings and pongs between fragments, random mask keys and length encodings
//! (16- and 64-bit forms of short lengths too); then frames drawn at random,
//! which break the rules now and then: RSV bits, reserved opcodes, control
//! frames fragmented or over 125 bytes, continuations out of order, text
//! that is not UTF-8, bad close payloads, frames and messages over the
//! limit, a 64-bit length with its top bit set, an unmasked frame, and a
//! stream cut short inside its last frame.
//!
//! Where the two legitimately differ, from the first frame that shows the
//! difference on, the decoder's own rule is checked instead, and the
//! stream before that frame must still give the same result on both:
//! - an **unmasked** frame: RFC 6455 §5.1 says the server MUST close, and
//!   the decoder fails with 1002; fastwebsockets accepts it (the epoll
//!   backend enforces the mask below the codec, in `crate::text_watch`);
//! - a 64-bit length with the **top bit** set (§5.2 says it MUST be 0):
//!   the decoder fails with 1002, fastwebsockets with "frame too large",
//!   1009;
//! - a **control frame over 125 bytes**: the decoder fails with 1002 at
//!   its header (§5.5); the reference fails too, but with 1009 when the
//!   frame is also over the size limit (fastwebsockets checks the size
//!   first for pongs and closes);
//! - a **control frame over a size limit under 125 bytes**: fastwebsockets
//!   applies its frame limit to control frames and fails with 1009; the
//!   decoder takes it, as the limit is on messages (`--max-message-size`)
//!   and RFC 6455 allows any control payload up to 125 bytes. So with
//!   `--max-message-size` under 125 the epoll backend refuses a ping that
//!   the io_uring backend answers;
//! - a **data frame over the size limit**: both refuse it, with 1009 when
//!   nothing else is wrong; when it also breaks another rule (a
//!   continuation with no message under way, a new message inside one),
//!   fastwebsockets reports the size (1009) and the decoder the message
//!   rule (1002);
//! - a stream **cut short** inside its last frame: the decoder fails as
//!   soon as the bytes it has break a rule (text that cannot be UTF-8, a
//!   continuation with no message, a message over the limit, all known
//!   from the header or the first payload bytes), while fastwebsockets
//!   waits for the whole frame and sees the stream end; when fastwebsockets
//!   fails first, the decoder fails with the same code.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use fastwebsockets::{OpCode, Role, WebSocket, WebSocketError};
use futures_util::FutureExt;
use proptest::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::close;
use super::{CloseCode, Decoder, Event};
use crate::epoll::message::MessageAssembler;

/// What a reader reported, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Message(u8, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Vec<u8>),
}

/// How a reader's stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The bytes ran out (at a frame boundary or not).
    Eof,
    /// A valid close frame.
    Closed,
    /// A broken rule and the close code it calls for.
    Fail(CloseCode),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    items: Vec<Item>,
    end: End,
}

/// Feeds `chunks` to the in-place decoder, as the io_uring loop does, and
/// lists what it reported in stream order. Whole-frame echoes are ranges of
/// the chunk, read once the decoder has let go of it.
fn decode(chunks: &[Vec<u8>], max_message: usize) -> Outcome {
    /// One thing the decoder reported, during `feed`.
    enum Seen {
        Piece(std::ops::Range<usize>, OpCode, bool),
        Item(Item),
    }
    let mut decoder = Decoder::new();
    let mut items = Vec::new();
    let mut end = End::Eof;
    let mut frame = Vec::new();
    let mut message = Vec::new();
    for chunk in chunks {
        let mut chunk = chunk.clone();
        let mut seen = Vec::new();
        decoder.feed(&mut chunk, max_message, |event| match event {
            Event::Echo(piece) => seen.push(Seen::Piece(piece.range, piece.opcode, piece.last)),
            Event::Compressed { .. } => unreachable!("compression is not enabled"),
            Event::Fragment {
                opcode,
                bytes,
                message_end,
                ..
            } => {
                message.extend_from_slice(bytes);
                if message_end {
                    let whole = std::mem::take(&mut message);
                    seen.push(Seen::Item(Item::Message(opcode as u8, whole)));
                }
            }
            Event::Ping(p) => seen.push(Seen::Item(Item::Ping(p.to_vec()))),
            Event::Pong(p) => seen.push(Seen::Item(Item::Pong(p.to_vec()))),
            Event::Close(p) => {
                seen.push(Seen::Item(Item::Close(p.to_vec())));
                end = End::Closed;
            }
            Event::Fail(code) => end = End::Fail(code),
        });
        for s in seen {
            match s {
                Seen::Piece(range, opcode, last) => {
                    frame.extend_from_slice(&chunk[range]);
                    if last {
                        items.push(Item::Message(opcode as u8, std::mem::take(&mut frame)));
                    }
                }
                Seen::Item(item) => items.push(item),
            }
        }
    }
    Outcome { items, end }
}

/// A transport that hands out the same chunks, one per read, and never
/// waits: fastwebsockets' futures complete on their first poll.
struct Chunks(VecDeque<Vec<u8>>);

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(front) = self.0.front_mut() {
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front[..n]);
            front.drain(..n);
            if front.is_empty() {
                self.0.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Chunks {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Reads `chunks` with fastwebsockets and the epoll loop's checks.
fn reference(chunks: &[Vec<u8>], max_message: usize) -> Outcome {
    let mut ws = WebSocket::after_handshake(Chunks(chunks.iter().cloned().collect()), Role::Server);
    ws.set_auto_close(false);
    ws.set_auto_pong(false);
    // fastwebsockets refuses `len >= limit`; the decoder's limit is inclusive.
    ws.set_max_message_size(max_message.saturating_add(1));
    let mut message = MessageAssembler::new(max_message);
    let mut items = Vec::new();
    let end = loop {
        let frame = match ws.read_frame().now_or_never().expect("never waits") {
            Ok(frame) => frame,
            Err(WebSocketError::UnexpectedEOF) => break End::Eof,
            Err(WebSocketError::InvalidUTF8) => break End::Fail(CloseCode::INVALID_PAYLOAD),
            Err(WebSocketError::FrameTooLarge) => break End::Fail(CloseCode::MESSAGE_TOO_BIG),
            Err(_) => break End::Fail(CloseCode::PROTOCOL_ERROR),
        };
        let payload = frame.payload.to_vec();
        let step = match frame.opcode {
            OpCode::Text | OpCode::Binary if message.in_progress() => {
                Err(CloseCode::PROTOCOL_ERROR)
            }
            OpCode::Text | OpCode::Binary if frame.fin => {
                items.push(Item::Message(frame.opcode as u8, payload));
                Ok(())
            }
            OpCode::Text | OpCode::Binary => message
                .start(frame.opcode, &payload)
                .map_err(|e| e.close_code()),
            OpCode::Continuation => match message.push(&payload, frame.fin) {
                Ok(Some((opcode, whole))) => {
                    items.push(Item::Message(opcode as u8, whole));
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e.close_code()),
            },
            OpCode::Close => match close::check_payload(&payload) {
                Ok(()) => {
                    items.push(Item::Close(payload));
                    break End::Closed;
                }
                Err(code) => Err(code),
            },
            OpCode::Pong if payload.len() > super::frame::MAX_CONTROL_PAYLOAD => {
                Err(CloseCode::PROTOCOL_ERROR)
            }
            OpCode::Pong => {
                items.push(Item::Pong(payload));
                Ok(())
            }
            OpCode::Ping => {
                items.push(Item::Ping(payload));
                Ok(())
            }
        };
        if let Err(code) = step {
            break End::Fail(code);
        }
    };
    Outcome { items, end }
}

/// How a frame's length is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Shortest,
    Bits16,
    Bits64,
    /// 64-bit with the top bit set (never valid).
    TopBit,
}

/// One client frame, valid or not.
#[derive(Debug, Clone)]
struct FrameSpec {
    /// FIN, RSV and opcode, as sent.
    first: u8,
    masked: bool,
    length: Length,
    key: [u8; 4],
    payload: Vec<u8>,
}

impl FrameSpec {
    fn new(first: u8, payload: Vec<u8>, key: [u8; 4]) -> Self {
        Self {
            first,
            masked: true,
            length: Length::Shortest,
            key,
            payload,
        }
    }

    fn is_control(&self) -> bool {
        self.first & 0x08 != 0
    }

    fn encode(&self, wire: &mut Vec<u8>) {
        let len = self.payload.len();
        let mask_bit = if self.masked { 0x80 } else { 0 };
        wire.push(self.first);
        match (self.length, len) {
            (Length::Shortest, 0..=125) => wire.push(mask_bit | len as u8),
            (Length::Shortest | Length::Bits16, 126..=65_535) | (Length::Bits16, 0..=125) => {
                wire.push(mask_bit | 126);
                wire.extend_from_slice(&(len as u16).to_be_bytes());
            }
            (Length::Shortest | Length::Bits16 | Length::Bits64, _) => {
                wire.push(mask_bit | 127);
                wire.extend_from_slice(&(len as u64).to_be_bytes());
            }
            (Length::TopBit, _) => {
                wire.push(mask_bit | 127);
                wire.extend_from_slice(&((len as u64) | 1 << 63).to_be_bytes());
            }
        }
        if self.masked {
            wire.extend_from_slice(&self.key);
            let key = self.key;
            wire.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            wire.extend_from_slice(&self.payload);
        }
    }

    /// Whether the two readers may legitimately part from this frame on
    /// (see the module documentation), and why.
    fn parting(&self, max_message: usize) -> Option<Parting> {
        let len = self.payload.len();
        if !self.masked {
            Some(Parting::Unmasked)
        } else if self.is_control() && len <= super::frame::MAX_CONTROL_PAYLOAD && len > max_message
        {
            Some(Parting::ControlOverLimit)
        } else {
            None
        }
    }
}

/// Why the readers may part at a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parting {
    /// The decoder refuses it with 1002; fastwebsockets reads it.
    Unmasked,
    /// A control frame of at most 125 bytes over a size limit under 125:
    /// fastwebsockets refuses it (1009), the decoder takes it.
    ControlOverLimit,
    /// The stream ends inside this frame.
    Cut,
}

/// The rules of RFC 6455 over a stream of [`FrameSpec`]s, read frame by
/// frame, apart from both readers: the message under way and its bytes.
#[derive(Debug, Default)]
struct Rules {
    message: Option<(u8, Vec<u8>)>,
}

impl Rules {
    /// The close codes of every rule `frame` breaks (empty when it breaks
    /// none); a frame that breaks none moves the state on.
    fn broken(&mut self, frame: &FrameSpec, max_message: usize) -> Vec<CloseCode> {
        let mut codes = Vec::new();
        let opcode = frame.first & 0x0f;
        let fin = frame.first & 0x80 != 0;
        let control = frame.is_control();
        let len = frame.payload.len();
        if frame.first & 0x70 != 0 || !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) {
            codes.push(CloseCode::PROTOCOL_ERROR);
        }
        if control && (!fin || len > super::frame::MAX_CONTROL_PAYLOAD) {
            codes.push(CloseCode::PROTOCOL_ERROR);
        }
        if frame.length == Length::TopBit {
            // Against §5.2, and a length over any limit.
            codes.extend([CloseCode::PROTOCOL_ERROR, CloseCode::MESSAGE_TOO_BIG]);
        }
        if len > max_message && (!control || len > super::frame::MAX_CONTROL_PAYLOAD) {
            codes.push(CloseCode::MESSAGE_TOO_BIG);
        }
        match (opcode, &self.message) {
            (1 | 2, Some(_)) | (0, None) => codes.push(CloseCode::PROTOCOL_ERROR),
            (0, Some((_, so_far))) if so_far.len() + len > max_message => {
                codes.push(CloseCode::MESSAGE_TOO_BIG)
            }
            _ => {}
        }
        if opcode == 1 && fin && std::str::from_utf8(&frame.payload).is_err() {
            // A whole text frame's UTF-8 is a rule of its own.
            codes.push(CloseCode::INVALID_PAYLOAD);
        }
        if !codes.is_empty() {
            return codes;
        }
        match opcode {
            0..=2 => {
                let (message_opcode, mut so_far) = match opcode {
                    0 => self.message.take().expect("checked above"),
                    _ => (opcode, Vec::new()),
                };
                so_far.extend_from_slice(&frame.payload);
                if message_opcode == 1 {
                    let valid = match std::str::from_utf8(&so_far) {
                        Ok(_) => true,
                        Err(e) => !fin && e.error_len().is_none(),
                    };
                    if !valid {
                        return vec![CloseCode::INVALID_PAYLOAD];
                    }
                }
                if !fin {
                    self.message = Some((message_opcode, so_far));
                }
            }
            8 => {
                if let Err(code) = close_rule(&frame.payload) {
                    return vec![code];
                }
            }
            _ => {}
        }
        Vec::new()
    }
}

/// The close payload rules (§5.5.1, §7.4), apart from `close::check_payload`.
fn close_rule(payload: &[u8]) -> Result<(), CloseCode> {
    match payload {
        [] => Ok(()),
        [_] => Err(CloseCode::PROTOCOL_ERROR),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
                Err(CloseCode::PROTOCOL_ERROR)
            } else if std::str::from_utf8(reason).is_err() {
                Err(CloseCode::INVALID_PAYLOAD)
            } else {
                Ok(())
            }
        }
    }
}

fn key() -> impl Strategy<Value = [u8; 4]> {
    any::<[u8; 4]>()
}

/// A text or binary message, whole or fragmented at random offsets, with
/// control frames between its fragments.
fn message() -> impl Strategy<Value = Vec<FrameSpec>> {
    let payload = prop_oneof![
        3 => any::<String>().prop_map(|s| (1u8, s.into_bytes())),
        1 => "[a-zé€𝄞]{0,300}".prop_map(|s| (1u8, s.into_bytes())),
        3 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| (2u8, b)),
        1 => (126usize..70_000).prop_map(|n| (2u8, vec![0xa5; n])),
    ];
    let control = prop_oneof![
        (prop::collection::vec(any::<u8>(), 0..=125), key())
            .prop_map(|(p, k)| FrameSpec::new(0x89, p, k)),
        (prop::collection::vec(any::<u8>(), 0..=125), key())
            .prop_map(|(p, k)| FrameSpec::new(0x8A, p, k)),
    ];
    (
        payload,
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        prop::collection::vec(prop::option::weighted(0.3, control), 4),
        prop::collection::vec((key(), 0u8..8), 5),
    )
        .prop_map(|((opcode, payload), cuts, controls, keys)| {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(payload.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut bounds = vec![0];
            bounds.extend(cuts);
            bounds.push(payload.len());
            let pieces = bounds.len() - 1;
            let mut frames = Vec::new();
            for (i, pair) in bounds.windows(2).enumerate() {
                let fin = if i + 1 == pieces { 0x80 } else { 0 };
                let op = if i == 0 { opcode } else { 0 };
                let (k, form) = keys[i % keys.len()];
                let mut frame = FrameSpec::new(fin | op, payload[pair[0]..pair[1]].to_vec(), k);
                frame.length = match form {
                    0 => Length::Bits16,
                    1 => Length::Bits64,
                    _ => Length::Shortest,
                };
                frames.push(frame);
                if i + 1 < pieces {
                    if let Some(control) = &controls[i % controls.len()] {
                        frames.push(control.clone());
                    }
                }
            }
            frames
        })
}

/// A frame drawn at random, breaking a rule now and then.
fn any_frame() -> impl Strategy<Value = FrameSpec> {
    let first = prop_oneof![
        6 => prop::sample::select(vec![0x81u8, 0x82, 0x80, 0x01, 0x02, 0x00, 0x88, 0x89, 0x8A]),
        1 => any::<u8>(),
    ];
    let payload = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..40),
        2 => any::<String>().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 120..140),
        1 => (0u16..5000, "[a-z€]{0,10}").prop_map(|(code, reason)| {
            let mut p = code.to_be_bytes().to_vec();
            p.extend(reason.into_bytes());
            p
        }),
        1 => prop::collection::vec(any::<u8>(), 1000..3000),
    ];
    let length = prop_oneof![
        12 => Just(Length::Shortest),
        1 => Just(Length::Bits16),
        1 => Just(Length::Bits64),
        1 => Just(Length::TopBit),
    ];
    (first, payload, prop::bool::weighted(0.95), length, key()).prop_map(
        |(first, payload, masked, length, key)| FrameSpec {
            first,
            masked,
            length,
            key,
            payload,
        },
    )
}

/// A client stream: messages, then random frames, maybe cut short.
#[derive(Debug, Clone)]
struct Stream {
    frames: Vec<FrameSpec>,
    /// Keep only this many bytes of the last frame (cut inside it).
    cut_last: Option<prop::sample::Index>,
    chunk_sizes: Vec<usize>,
    max_message: usize,
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        prop::collection::vec(message(), 0..5),
        prop::collection::vec(any_frame(), 0..4),
        prop::option::weighted(0.2, any::<prop::sample::Index>()),
        prop_oneof![
            prop::collection::vec(1usize..16, 1..6),
            prop::collection::vec(1usize..3000, 1..6),
            Just(vec![usize::MAX]),
        ],
        prop_oneof![Just(1usize << 20), 0usize..2000],
    )
        .prop_map(
            |(messages, random, cut_last, chunk_sizes, max_message)| Stream {
                frames: messages.into_iter().flatten().chain(random).collect(),
                cut_last,
                chunk_sizes,
                max_message,
            },
        )
}

impl Stream {
    /// The bytes of the first `frames` frames, cut as the stream says (the
    /// cut applies only when the last frame is among them).
    fn wire(&self, frames: usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for (i, frame) in self.frames[..frames].iter().enumerate() {
            let start = wire.len();
            frame.encode(&mut wire);
            if i + 1 == self.frames.len() {
                if let Some(cut) = self.cut_last {
                    wire.truncate(start + cut.index(wire.len() - start));
                }
            }
        }
        wire
    }

    fn chunks(&self, wire: &[u8]) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        let mut sizes = self.chunk_sizes.iter().cycle();
        let mut at = 0;
        while at < wire.len() {
            let size = (*sizes.next().expect("sizes")).min(wire.len() - at);
            chunks.push(wire[at..at + size].to_vec());
            at += size;
        }
        chunks
    }

    /// The first frame where the readers may part, and why.
    fn parting(&self) -> Option<(usize, Parting)> {
        let rule = self
            .frames
            .iter()
            .enumerate()
            .find_map(|(i, f)| Some((i, f.parting(self.max_message)?)));
        let cut = self
            .cut_last
            .and(self.frames.len().checked_sub(1))
            .map(|last| (last, Parting::Cut));
        match (rule, cut) {
            (Some(rule), Some(cut)) if cut.0 < rule.0 => Some(cut),
            (rule, cut) => rule.or(cut),
        }
    }

    /// The first frame that breaks a rule, and the close codes of the
    /// rules it breaks.
    fn first_broken(&self) -> Option<(usize, Vec<CloseCode>)> {
        let mut rules = Rules::default();
        self.frames.iter().enumerate().find_map(|(i, f)| {
            let codes = rules.broken(f, self.max_message);
            (!codes.is_empty()).then_some((i, codes))
        })
    }
}

/// Both readers on `frames` frames of the stream, same chunks.
fn both(stream: &Stream, frames: usize) -> (Outcome, Outcome) {
    let wire = stream.wire(frames);
    let chunks = stream.chunks(&wire);
    (
        decode(&chunks, stream.max_message),
        reference(&chunks, stream.max_message),
    )
}

fn check(stream: &Stream) -> Result<(), TestCaseError> {
    let all = stream.frames.len();
    let parting = stream.parting();
    let broken = stream.first_broken();
    // The first frame that is not plain valid traffic.
    let first = [parting.map(|p| p.0), broken.as_ref().map(|b| b.0)]
        .into_iter()
        .flatten()
        .min();
    let Some(first) = first else {
        let (decoded, reference) = both(stream, all);
        prop_assert_eq!(decoded, reference);
        return Ok(());
    };
    // Up to it, the readers agree.
    let (before, before_reference) = both(stream, first);
    prop_assert_eq!(&before, &before_reference);
    let (decoded, reference) = both(stream, all);
    if before.end != End::Eof {
        // It ended before that frame: the rest is never read.
        prop_assert_eq!(&decoded, &before);
        prop_assert_eq!(&reference, &before);
        return Ok(());
    }
    match parting.filter(|p| p.0 == first) {
        None => {
            // A whole frame that breaks rules: both refuse it, each with
            // the code of a rule it breaks (the same one when it breaks
            // only one).
            let codes = broken.expect("a broken frame").1;
            prop_assert_eq!(&decoded.items, &before.items);
            prop_assert_eq!(&reference.items, &before.items);
            let code_of = |end: End| match end {
                End::Fail(code) => Some(code),
                _ => None,
            };
            let (ours, theirs) = (code_of(decoded.end), code_of(reference.end));
            prop_assert!(
                ours.is_some_and(|c| codes.contains(&c)),
                "{:?} {:?}",
                decoded,
                codes
            );
            prop_assert!(
                theirs.is_some_and(|c| codes.contains(&c)),
                "{:?} {:?}",
                reference,
                codes
            );
            if codes.len() == 1 {
                prop_assert_eq!(ours, theirs);
            }
        }
        Some((_, Parting::Unmasked)) => {
            prop_assert_eq!(&decoded.items, &before.items);
            let cut_here = stream.cut_last.is_some() && first == all - 1;
            if !cut_here || decoded.end != End::Eof {
                prop_assert_eq!(decoded.end, End::Fail(CloseCode::PROTOCOL_ERROR));
            }
        }
        Some((_, Parting::ControlOverLimit)) => {
            prop_assert!(decoded.items.starts_with(&before.items));
            prop_assert_eq!(&reference.items, &before.items);
            let cut_here = stream.cut_last.is_some() && first == all - 1;
            if !cut_here {
                prop_assert!(
                    matches!(
                        reference.end,
                        End::Fail(CloseCode::PROTOCOL_ERROR | CloseCode::MESSAGE_TOO_BIG)
                    ),
                    "{:?}",
                    reference
                );
            }
        }
        Some((_, Parting::Cut)) => {
            // fastwebsockets sees the end of the stream unless the bytes it
            // has break a rule; the decoder may fail sooner.
            prop_assert_eq!(&decoded.items, &before.items);
            prop_assert_eq!(&reference.items, &before.items);
            match (reference.end, decoded.end) {
                (End::Eof, end) => prop_assert!(matches!(end, End::Eof | End::Fail(_))),
                (End::Fail(theirs), End::Fail(ours)) if theirs != ours => {
                    // A header that breaks two rules (see above).
                    let codes = broken.filter(|b| b.0 == first).map(|b| b.1);
                    prop_assert!(
                        codes.is_some_and(|c| c.contains(&ours) && c.contains(&theirs)),
                        "{:?} {:?}",
                        decoded,
                        reference
                    );
                }
                (end, ours) => prop_assert_eq!(ours, end),
            }
        }
    }
    Ok(())
}

/// 512 streams a run, or `PROPTEST_CASES` (for longer hunts).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn decoder_agrees_with_fastwebsockets(stream in stream()) {
        check(&stream)?;
    }
}

#[test]
fn an_unmasked_frame_is_where_they_part() {
    let mut unmasked = FrameSpec::new(0x82, b"hi".to_vec(), [1, 2, 3, 4]);
    unmasked.masked = false;
    let stream = Stream {
        frames: vec![FrameSpec::new(0x81, b"ok".to_vec(), [9, 9, 9, 9]), unmasked],
        cut_last: None,
        chunk_sizes: vec![3],
        max_message: 100,
    };
    let (decoded, reference) = both(&stream, 2);
    let ok = Item::Message(1, b"ok".to_vec());
    assert_eq!(decoded.items, vec![ok.clone()]);
    assert_eq!(decoded.end, End::Fail(CloseCode::PROTOCOL_ERROR));
    assert_eq!(reference.items, vec![ok, Item::Message(2, b"hi".to_vec())]);
    check(&stream).expect("a legitimate difference");
}
