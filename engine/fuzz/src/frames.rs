//! The `frames` target: the io_uring path's frame decoder and echo planning.
//!
//! A fuzz input becomes a client byte stream (taken as it is, or built from
//! frame descriptors so that most frames are well formed) and a list of
//! chunk sizes. The stream is fed to a [`Decoder`] in those chunks, and each
//! event goes through [`plan::decide`] and then through [`Connection`], a
//! model of what `Loop::apply` does with the actions (queue the pieces,
//! commit, drop what is uncommitted on a failure, stop after a close), so
//! the decoder is driven exactly as the loop drives it, in-place header
//! rewrite included. The same stream is also fed as one chunk.
//!
//! What must hold, or the target panics:
//! - nothing panics (overflow checks and debug assertions are on);
//! - every event is well formed: echo ranges inside the chunk, the in-place
//!   header right in front of the payload and saying what the frame is,
//!   a frame's pieces adding up to its length, close codes among the
//!   legal ones (1002, 1007, 1009), a close payload that RFC 6455 allows,
//!   no event after a close or a failure;
//! - what the server sends, fed in chunks or whole, is byte for byte what
//!   [`expected_reply`] (a plain whole-buffer reading of RFC 6455, written
//!   apart from the decoder) says: every message echoed once as one
//!   unmasked frame, a pong per ping, the close echoed, or our close with
//!   the code the first broken rule calls for.
//!
//! Half the inputs run with permessage-deflate agreed (no context takeover,
//! 15-bit windows: the passthrough echo). Then a data message whose first
//! frame has RSV1 is compressed: the model inflates what has arrived with
//! flate2 (independently of the engine's inflater) and expects the
//! client's own compressed bytes back with RSV1 in one frame, or 1007 for
//! a stream that does not inflate or text that is not UTF-8, or 1009 for a
//! message that inflates past the limit.

use std::ops::Range;

use arbitrary::Unstructured;
use ringecho::internals::protocol::deflate::{negotiate, ConnDeflate, Policy, WorkerDeflate};
use ringecho::internals::protocol::frame::{self, OpCode};
use ringecho::internals::protocol::plan::{self, Action, Compression};
use ringecho::internals::protocol::{DataFrame, Decoder, Event};

/// `--max-message-size` values the inputs choose from.
const MAX_MESSAGES: [usize; 8] = [0, 1, 125, 126, 1000, 65_535, 65_536, 1 << 20];

/// Runs one input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let Some(case) = Case::from_bytes(data) else {
        return;
    };
    let expected = if case.close_sent {
        // Our close went out already: nothing more is sent, whatever comes.
        Vec::new()
    } else {
        expected_reply(&case.wire, case.max_message, case.compression)
    };
    let serve = |chunks: &[usize]| {
        serve_with(
            &case.wire,
            chunks,
            case.max_message,
            case.close_sent,
            case.compression,
        )
    };
    let whole = serve(&[]);
    assert_eq!(
        whole.sent, expected,
        "fed whole: the reply differs from the model"
    );
    let chunked = serve(&case.chunks);
    assert_eq!(
        chunked.sent, expected,
        "fed in chunks of {:?}: the reply differs from the model",
        case.chunks
    );
    // A compressed message that fails its check (1007, 1009) fails the
    // connection in the plan, not in the decoder: feeding stops at the end
    // of that chunk, while fed whole the decoder reads on to the end of the
    // stream. The decoder's own end state is comparable when both runs fed
    // it everything, or when the decoder itself ended.
    if chunked.fed_all || chunked.done {
        assert_eq!(
            chunked.done, whole.done,
            "the decoder's end state depends on the chunking"
        );
    }
}

/// One fuzz case: the client's bytes and how they are cut.
#[derive(Debug)]
pub struct Case {
    /// `--max-message-size`.
    pub max_message: usize,
    /// Our close frame has gone out before the stream starts (shutdown).
    pub close_sent: bool,
    /// permessage-deflate was agreed.
    pub compression: bool,
    /// Sizes of the chunks the stream is fed in, cycled; empty: one chunk.
    pub chunks: Vec<usize>,
    /// The client's bytes.
    pub wire: Vec<u8>,
}

impl Case {
    /// Reads a case from fuzz input: a settings byte (the size limit, raw
    /// or built frames, the closed flag), up to 7 chunk sizes, then either
    /// the raw stream or frame descriptors (see [`build_frames`]).
    pub fn from_bytes(data: &[u8]) -> Option<Case> {
        let mut u = Unstructured::new(data);
        let settings: u8 = u.arbitrary().ok()?;
        let max_message = MAX_MESSAGES[usize::from(settings & 7)];
        let built = settings & 0x08 != 0;
        let close_sent = settings & 0x70 == 0x70;
        let compression = settings & 0x40 != 0 && !close_sent;
        let count = u.int_in_range(0..=7u8).ok()?;
        let mut chunks = Vec::new();
        for _ in 0..count {
            let size: u8 = u.arbitrary().ok()?;
            // 1 to 8,129 bytes, small sizes most likely.
            chunks.push(1 + usize::from(size) * usize::from(size) / 8);
        }
        let rest = u.take_rest();
        let wire = if built {
            build_frames(rest)
        } else {
            rest.to_vec()
        };
        Some(Case {
            max_message,
            close_sent,
            compression,
            chunks,
            wire,
        })
    }
}

/// Builds a client stream from descriptors, so that the fuzzer reaches deep
/// states (fragmented text cut inside characters, control frames between
/// fragments) without having to find masks and lengths that agree. Each
/// descriptor is: the first header byte as it is (FIN, RSV, opcode); a
/// flags byte (bit 7: send unmasked; bits 0-1: length encoding, minimal,
/// 16-bit or 64-bit); a length byte (255: a 16-bit length follows); the
/// 4-byte mask key; then the payload in clear. A payload shorter than its
/// length (the input ran out) leaves the last frame cut short.
pub fn build_frames(descriptors: &[u8]) -> Vec<u8> {
    let mut u = Unstructured::new(descriptors);
    let mut wire = Vec::new();
    while !u.is_empty() {
        let first: u8 = u.arbitrary().unwrap_or(0x82);
        let flags: u8 = u.arbitrary().unwrap_or(0);
        let mut len = usize::from(u.arbitrary::<u8>().unwrap_or(0));
        if len == 255 {
            len = u
                .bytes(2)
                .map_or(255, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        }
        let mut key = [0u8; 4];
        let _ = u.fill_buffer(&mut key);
        let payload = u.bytes(len.min(u.len())).unwrap_or_default();
        let masked = flags & 0x80 == 0;
        wire.push(first);
        let mask_bit = if masked { 0x80 } else { 0 };
        match (flags & 3, len) {
            (1, _) | (0 | 3, 126..=65_535) => {
                wire.push(mask_bit | 126);
                wire.extend_from_slice(&(len as u16).to_be_bytes());
            }
            (2, _) | (0 | 3, 65_536..) => {
                wire.push(mask_bit | 127);
                wire.extend_from_slice(&(len as u64).to_be_bytes());
            }
            _ => wire.push(mask_bit | len as u8),
        }
        if masked {
            wire.extend_from_slice(&key);
            wire.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            wire.extend_from_slice(payload);
        }
    }
    wire
}

/// What one run of the decoder produced.
#[derive(Debug)]
pub struct Served {
    /// The bytes the server sends (everything committed).
    pub sent: Vec<u8>,
    /// The decoder saw a close or a failure.
    pub done: bool,
    /// The whole stream was fed (not cut short by a failure or a close).
    pub fed_all: bool,
}

/// Feeds `wire` to a decoder in chunks of `chunk_sizes` (cycled; empty:
/// one chunk), applies the plan as the loop does and returns what it sends.
pub fn serve(wire: &[u8], chunk_sizes: &[usize], max_message: usize, close_sent: bool) -> Served {
    serve_with(wire, chunk_sizes, max_message, close_sent, false)
}

/// [`serve`], with permessage-deflate agreed when `compression`.
pub fn serve_with(
    wire: &[u8],
    chunk_sizes: &[usize],
    max_message: usize,
    close_sent: bool,
    compression: bool,
) -> Served {
    let mut conn = Connection::new(close_sent);
    let mut decoder = Decoder::new();
    let agreed = negotiate([&b"permessage-deflate"[..]], Policy::default()).expect("agreed");
    let mut deflate_conn = ConnDeflate::new(agreed);
    let mut deflate_worker = WorkerDeflate::new();
    if compression {
        decoder.enable_compression();
    }
    let mut watch = EventWatch::default();
    let mut at = 0;
    let mut sizes = chunk_sizes.iter().copied().cycle();
    while at < wire.len() && !conn.closing {
        let size = sizes.next().unwrap_or(wire.len()).min(wire.len() - at);
        let mut chunk = wire[at..at + size].to_vec();
        at += size;
        let mut actions = Vec::new();
        let mut frames = Vec::new();
        let close_sent = conn.close_sent;
        let chunk_len = chunk.len();
        decoder.feed(&mut chunk, max_message, |event| {
            watch.see(&event, chunk_len);
            if let Event::Echo(piece) | Event::Compressed { frame: piece, .. } = &event {
                frames.push(piece.clone());
            }
            let mut deflate = compression.then_some(Compression {
                conn: &mut deflate_conn,
                worker: &mut deflate_worker,
                max_message: max_message as u64,
            });
            plan::decide(
                event,
                close_sent,
                &mut conn.assembled,
                deflate.as_mut(),
                &mut actions,
            );
        });
        // The chunk is only read from here on, as in the loop.
        for piece in &frames {
            check_in_place_header(&chunk, piece);
        }
        assert_eq!(
            decoder.is_done(),
            watch.ended,
            "is_done disagrees with the events"
        );
        for action in actions {
            conn.apply(&chunk, action);
        }
    }
    Served {
        sent: conn.sent(),
        done: decoder.is_done(),
        fed_all: at >= wire.len(),
    }
}

/// The in-place echo header of a frame's first piece lies right in front
/// of its payload and says what the frame is.
fn check_in_place_header(chunk: &[u8], piece: &DataFrame) {
    let Some(at) = piece.header_at.filter(|_| piece.first) else {
        return;
    };
    let header = &chunk[at..piece.range.start];
    let rsv1 = if piece.compressed { 0x40 } else { 0 };
    let opcode = rsv1 | if piece.opcode == OpCode::Text { 1 } else { 2 };
    assert_eq!(
        header,
        &server_header(opcode, piece.len)[..],
        "in-place header of {piece:?}"
    );
}

/// Checks each event on its own and in order.
#[derive(Debug, Default)]
struct EventWatch {
    /// A close or a failure was reported.
    ended: bool,
    /// The whole-message frame under way: its length and bytes seen.
    frame: Option<(u64, u64)>,
}

impl EventWatch {
    fn see(&mut self, event: &Event<'_>, chunk_len: usize) {
        assert!(!self.ended, "{event:?} after a close or a failure");
        match event {
            Event::Echo(piece) | Event::Compressed { frame: piece, .. } => {
                self.see_piece(piece, chunk_len)
            }
            Event::Fragment { .. } => {}
            Event::Ping(payload) | Event::Pong(payload) => {
                assert!(payload.len() <= frame::MAX_CONTROL_PAYLOAD, "{event:?}");
            }
            Event::Close(payload) => {
                assert!(close_payload_is_legal(payload), "{event:?}");
                self.ended = true;
            }
            Event::Fail(code) => {
                assert!(matches!(code.get(), 1002 | 1007 | 1009), "{event:?}");
                self.ended = true;
            }
        }
        if !matches!(
            event,
            Event::Echo(_) | Event::Compressed { .. } | Event::Fail(_)
        ) {
            assert!(self.frame.is_none(), "{event:?} inside a frame's echo");
        }
    }

    fn see_piece(&mut self, piece: &DataFrame, chunk_len: usize) {
        let Range { start, end } = piece.range;
        assert!(
            start <= end && end <= chunk_len,
            "{piece:?} outside the chunk"
        );
        assert!(matches!(piece.opcode, OpCode::Text | OpCode::Binary));
        if piece.first {
            assert!(self.frame.is_none(), "{piece:?} starts inside a frame");
            if let Some(at) = piece.header_at {
                assert_eq!(at + frame::server_header_len(piece.len), start);
            }
            self.frame = Some((piece.len, 0));
        } else {
            assert!(piece.header_at.is_none(), "{piece:?}");
        }
        let (len, seen) = self.frame.as_mut().expect("a piece belongs to a frame");
        assert_eq!(*len, piece.len, "{piece:?}");
        *seen += (end - start) as u64;
        assert!(*seen <= *len, "{piece:?} past the frame's end");
        assert_eq!(piece.last, *seen == *len, "{piece:?}");
        if piece.last {
            self.frame = None;
        }
    }
}

/// A close payload a peer may send (RFC 6455 §5.5.1, §7.4), checked apart
/// from the engine's `close::check_payload`.
fn close_payload_is_legal(payload: &[u8]) -> bool {
    match payload {
        [] => true,
        [_] => false,
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            let defined = (1000..=1003).contains(&code) || (1007..=1014).contains(&code);
            payload.len() <= 125
                && (defined || (3000..=4999).contains(&code))
                && std::str::from_utf8(reason).is_ok()
        }
    }
}

/// The model of `Loop::apply` for one connection: queued pieces, how many
/// are committed (sendable), and whether our close went out.
struct Connection {
    queued: Vec<Vec<u8>>,
    committed: usize,
    close_sent: bool,
    /// Receives nothing more (after a close or a failure).
    closing: bool,
    #[allow(clippy::box_collection)] // as in `WebSocketState::assembled`
    assembled: Option<Box<Vec<u8>>>,
}

impl Connection {
    fn new(close_sent: bool) -> Self {
        Self {
            queued: Vec::new(),
            committed: 0,
            close_sent,
            closing: false,
            assembled: None,
        }
    }

    fn apply(&mut self, chunk: &[u8], action: Action) {
        match action {
            Action::Echo { start, end, .. } => self.queued.push(chunk[start..end].to_vec()),
            Action::Owned(bytes) => self.queued.push(bytes),
            Action::Commit | Action::EndMessage { .. } => self.committed = self.queued.len(),
            Action::Discarded { .. } | Action::Pong => {}
            Action::Close { code, reply } => {
                assert!(
                    code.get() == 1005 || close_payload_is_legal(&code.to_be_bytes()),
                    "close code {code}"
                );
                assert_eq!(reply.is_some(), !self.close_sent);
                if let Some(reply) = reply {
                    self.queued.push(reply);
                    self.committed = self.queued.len();
                }
                self.close_sent = true;
                self.closing = true;
            }
            Action::Fail(code) => {
                self.queued.truncate(self.committed);
                if !std::mem::replace(&mut self.close_sent, true) {
                    self.queued.push(frame::close_frame(code));
                    self.committed = self.queued.len();
                }
                self.closing = true;
            }
        }
    }

    /// What goes out: the committed pieces (the rest belongs to a text
    /// frame cut short, which is never sent).
    fn sent(&self) -> Vec<u8> {
        self.queued[..self.committed].concat()
    }
}

/// What an echo server that follows RFC 6455 sends back for `wire`, read
/// as one buffer, frame by frame, with `max_message` as the size limit.
///
/// The rules, in the order a streaming server can apply them: a header is
/// refused (1002) for RSV bits, a reserved opcode or a fragmented control
/// frame as soon as its first byte is there, for a missing mask once its
/// second byte is, and for a 64-bit length with the top bit set or a
/// control payload over 125 bytes once it is whole. A whole header then
/// breaks the message rules (1002: a continuation with no message under
/// way, a new message inside one) or the size limit (1009: a frame, or a
/// fragmented message so far, over `max_message`). Text is refused (1007)
/// at the first byte that cannot continue UTF-8, or when it ends inside a
/// character; a close payload must be legal (1002, or 1007 for its
/// reason's UTF-8).
///
/// What goes out for a stream that ends inside a frame: a binary frame's
/// header and payload so far (binary echoes stream), nothing of a text
/// frame or a fragmented message.
pub fn expected_reply(wire: &[u8], max_message: usize, compression: bool) -> Vec<u8> {
    let cap = max_message;
    let max_message = max_message as u64;
    let mut out = Vec::new();
    let fail = |mut out: Vec<u8>, code: u16| {
        out.extend(server_frame(0x8, &code.to_be_bytes()));
        out
    };
    // The fragmented message under way: opcode (RSV1 included when it is
    // compressed) and payload so far.
    let mut message: Option<(u8, Vec<u8>)> = None;
    let mut rest = wire;
    while let Some(&first) = rest.first() {
        let opcode = first & 0x0f;
        let control = opcode >= 8;
        let rsv = first & 0x70;
        let compressed_start = compression && rsv == 0x40 && matches!(opcode, 1 | 2);
        if (rsv != 0 && !compressed_start) || !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) {
            return fail(out, 1002);
        }
        if control && first & 0x80 == 0 {
            return fail(out, 1002);
        }
        let Some(&second) = rest.get(1) else {
            return out;
        };
        if second & 0x80 == 0 {
            return fail(out, 1002);
        }
        let header_len = match second & 0x7f {
            126 => 8,
            127 => 14,
            _ => 6,
        };
        if rest.len() < header_len {
            return out;
        }
        let len = match header_len {
            8 => u64::from(u16::from_be_bytes([rest[2], rest[3]])),
            14 => u64::from_be_bytes(rest[2..10].try_into().expect("8 bytes")),
            _ => u64::from(second & 0x7f),
        };
        if len >= 1 << 63 || (control && len > 125) {
            return fail(out, 1002);
        }
        let fin = first & 0x80 != 0;
        match (opcode, &message) {
            (1 | 2, Some(_)) | (0, None) => return fail(out, 1002),
            (1 | 2, None) if len > max_message => return fail(out, 1009),
            (0, Some((_, so_far))) if so_far.len() as u64 + len > max_message => {
                return fail(out, 1009)
            }
            _ => {}
        }
        let key = &rest[header_len - 4..header_len];
        let available = (rest.len() - header_len).min(len as usize);
        let payload: Vec<u8> = rest[header_len..header_len + available]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        let complete = available as u64 == len;
        match opcode {
            1 | 2 if fin && compressed_start => {
                if let Err(code) = inflate_check(&payload, complete, cap, opcode == 1) {
                    return fail(out, code);
                }
                if complete {
                    out.extend(server_frame(0x40 | opcode, &payload));
                }
            }
            1 | 2 if compressed_start => {
                message = Some((0x40 | opcode, payload.clone()));
                if let Err(code) = inflate_check(&payload, false, cap, opcode == 1) {
                    return fail(out, code);
                }
            }
            0 if message.as_ref().is_some_and(|(op, _)| op & 0x40 != 0) => {
                let (message_opcode, so_far) = message.as_mut().expect("under way");
                so_far.extend_from_slice(&payload);
                let ends = complete && fin;
                let text = *message_opcode & 0x0f == 1;
                if let Err(code) = inflate_check(so_far, ends, cap, text) {
                    return fail(out, code);
                }
                if ends {
                    let (message_opcode, so_far) = message.take().expect("under way");
                    out.extend(server_frame(message_opcode, &so_far));
                }
            }
            1 | 2 if fin => {
                if opcode == 1 && !text_may_continue(&payload, complete) {
                    return fail(out, 1007);
                }
                if complete {
                    out.extend(server_frame(opcode, &payload));
                } else if opcode == 2 {
                    // The header, then what has arrived: binary streams.
                    out.extend(server_header(2, len));
                    out.extend(payload);
                }
            }
            0..=2 => {
                let (message_opcode, so_far) = message.get_or_insert_with(|| (opcode, Vec::new()));
                so_far.extend_from_slice(&payload);
                let ends = complete && fin;
                if *message_opcode == 1 && !text_may_continue(so_far, ends) {
                    return fail(out, 1007);
                }
                if ends {
                    let (message_opcode, so_far) = message.take().expect("under way");
                    out.extend(server_frame(message_opcode, &so_far));
                }
            }
            _ if !complete => {}
            8 => {
                return match close_reply_code(&payload) {
                    None => {
                        out.extend(server_frame(8, &payload));
                        out
                    }
                    Some(code) => fail(out, code),
                };
            }
            9 => out.extend(server_frame(0xA, &payload)),
            _ => {}
        }
        if !complete {
            return out;
        }
        rest = &rest[header_len + len as usize..];
    }
    out
}

/// Whether `text` is UTF-8 so far: with `ends`, whole; otherwise it may
/// stop inside a character that the next bytes complete.
/// The model's check of a compressed message's bytes so far: inflated with
/// flate2 (the tail put back once the message has ended), at most
/// `cap + 1` bytes. What was inflated up to the cap must be text that may
/// continue (1007); past the cap is 1009; a stream flate2 refuses is 1007.
fn inflate_check(compressed: &[u8], ends: bool, cap: usize, text: bool) -> Result<(), u16> {
    let mut input = compressed.to_vec();
    if ends {
        input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    }
    let mut inflater = flate2::Decompress::new_with_window_bits(false, 15);
    let mut out = Vec::with_capacity(cap + 1);
    let status = inflater.decompress_vec(&input, &mut out, flate2::FlushDecompress::None);
    let checked = &out[..out.len().min(cap)];
    if text && !text_may_continue(checked, false) {
        return Err(1007);
    }
    if out.len() > cap {
        return Err(1009);
    }
    if status.is_err() {
        return Err(1007);
    }
    if text && ends && !text_may_continue(&out, true) {
        return Err(1007);
    }
    Ok(())
}

fn text_may_continue(text: &[u8], ends: bool) -> bool {
    match std::str::from_utf8(text) {
        Ok(_) => true,
        Err(e) => !ends && e.error_len().is_none(),
    }
}

/// `None` for a legal close payload; otherwise the code to fail with.
fn close_reply_code(payload: &[u8]) -> Option<u16> {
    if close_payload_is_legal(payload) {
        None
    } else if payload.len() >= 2 && close_payload_is_legal(&payload[..2]) {
        // The code is fine: the reason is not UTF-8.
        Some(1007)
    } else {
        Some(1002)
    }
}

/// An unmasked, final server frame (written apart from the engine's
/// `frame::encode`).
fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = server_header(opcode, payload.len() as u64);
    out.extend_from_slice(payload);
    out
}

/// The header of an unmasked, final server frame with the shortest length.
fn server_header(opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match len {
        0..=125 => out.push(len as u8),
        126..=65_535 => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut descriptor = vec![first, 0];
        if payload.len() >= 255 {
            descriptor.push(255);
            descriptor.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        } else {
            descriptor.push(payload.len() as u8);
        }
        descriptor.extend_from_slice(&[0x37, 0xfa, 0x21, 0x3d]);
        descriptor.extend_from_slice(payload);
        build_frames(&descriptor)
    }

    #[test]
    fn model_echoes_messages_pings_and_the_close() {
        let mut wire = client(0x81, b"hello");
        wire.extend(client(0x02, b"ab"));
        wire.extend(client(0x89, b"p"));
        wire.extend(client(0x80, b"cd"));
        wire.extend(client(0x88, &[0x03, 0xe8]));
        let mut expected = server_frame(1, b"hello");
        expected.extend(server_frame(0xA, b"p"));
        expected.extend(server_frame(2, b"abcd"));
        expected.extend(server_frame(8, &[0x03, 0xe8]));
        assert_eq!(expected_reply(&wire, 100, false), expected);
    }

    #[test]
    fn model_fails_with_the_first_broken_rule() {
        assert_eq!(
            expected_reply(&client(0x81, b"\xff"), 100, false),
            server_frame(8, &1007u16.to_be_bytes())
        );
        assert_eq!(
            expected_reply(&client(0x82, &[0; 101]), 100, false),
            server_frame(8, &1009u16.to_be_bytes())
        );
        assert_eq!(
            expected_reply(&[0x82, 0x01, b'x'], 100, false),
            server_frame(8, &1002u16.to_be_bytes()),
            "unmasked"
        );
        assert_eq!(
            expected_reply(&client(0x88, &[0x03, 0xe8, 0xff]), 100, false),
            server_frame(8, &1007u16.to_be_bytes())
        );
    }

    #[test]
    fn decoder_matches_the_model_on_every_split() {
        let mut wire = client(0x01, "h€".as_bytes());
        wire.extend(client(0x8A, b""));
        wire.extend(client(0x80, "llo".as_bytes()));
        wire.extend(client(0x82, &[7; 300]));
        wire.extend(client(0x81, b"bad \xc3\x28"));
        let expected = expected_reply(&wire, 1000, false);
        assert!(expected.ends_with(&server_frame(8, &1007u16.to_be_bytes())));
        for size in 1..wire.len() {
            assert_eq!(serve(&wire, &[size], 1000, false).sent, expected, "{size}");
        }
    }

    #[test]
    fn a_binary_frame_cut_short_streams_what_arrived() {
        let wire = client(0x82, &[5; 50]);
        let cut = &wire[..20];
        let reply = serve(cut, &[7], 100, false).sent;
        assert_eq!(reply, expected_reply(cut, 100, false));
        assert_eq!(&reply[..2], &[0x82, 50]);
        assert_eq!(reply.len(), 2 + 14);
    }
}
