//! The incremental, in-place frame decoder.
//!
//! [`Decoder::feed`] takes each chunk the kernel received, in order, as a
//! mutable slice. It never copies payload bytes: it unmasks them where they
//! are and reports them as ranges of the chunk. Only a header cut across
//! two chunks is gathered in the decoder's 14 bytes, and a control payload
//! cut across chunks (at most 125 bytes) in a small buffer it allocates for
//! that moment alone.
//!
//! For a data frame that is a whole message (final, not a continuation) and
//! whose header lies in the chunk, the decoder writes the server's echo
//! header over the end of the client's header, so that the echo of the
//! frame is one contiguous range: `header_at..` the payload's end.
//!
//! The rules it enforces (each failure is an [`Event::Fail`] with the close
//! code, after which it reports nothing more):
//! - header rules from [`super::frame::parse_head`] (1002);
//! - a continuation without a message, or a new message inside one (1002);
//! - a frame or a fragmented message over the size limit (1009);
//! - text that is not UTF-8, as soon as the first invalid byte arrives (1007);
//! - a close payload that is malformed (1002) or has a non-UTF-8 reason (1007).
//!
//! Once permessage-deflate was agreed ([`Decoder::enable_compression`]), a
//! message whose first frame has RSV1 set is compressed: its events say so,
//! the in-place echo header keeps RSV1, and its text is not checked here
//! (the compressed bytes are not the text; the inflater checks it). The
//! size cap then bounds the compressed bytes; the inflater bounds the rest.

use std::ops::Range;

use super::close;
use super::close_code::CloseCode;
use super::frame::{self, FrameHead, HeadParse, OpCode, MAX_CLIENT_HEADER, MAX_CONTROL_PAYLOAD};
use super::utf8::Utf8Stream;

/// What the decoder found in a chunk, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Payload bytes of a data frame that is a whole message, unmasked in
    /// place at `range` of the chunk.
    Echo(DataFrame),
    /// Payload bytes of a compressed data frame that is a whole message,
    /// unmasked in place at `frame.range` of the chunk; `bytes` are those
    /// bytes, for the inflater.
    Compressed {
        /// Where the bytes lie, as for [`Event::Echo`].
        frame: DataFrame,
        /// The bytes themselves.
        bytes: &'a [u8],
    },
    /// Payload bytes of a fragmented message, unmasked; `message_end` on the
    /// event that completes its final fragment.
    Fragment {
        /// The message's opcode (text or binary).
        opcode: OpCode,
        /// The message is compressed (its first frame had RSV1 set).
        compressed: bool,
        /// The bytes, in the chunk.
        bytes: &'a [u8],
        /// This completes the message.
        message_end: bool,
    },
    /// A ping with this payload: answer with a pong carrying it.
    Ping(&'a [u8]),
    /// A pong with this payload.
    Pong(&'a [u8]),
    /// A valid close frame with this payload: answer it and close.
    Close(&'a [u8]),
    /// The stream broke a rule: close with this code.
    Fail(CloseCode),
}

/// One piece of a whole-message data frame, for [`Event::Echo`] and
/// [`Event::Compressed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFrame {
    /// Text or binary.
    pub opcode: OpCode,
    /// The message is compressed (RSV1 set); the in-place header keeps RSV1.
    pub compressed: bool,
    /// The frame's whole payload length.
    pub len: u64,
    /// The payload bytes in this chunk, unmasked.
    pub range: Range<usize>,
    /// First piece of the frame.
    pub first: bool,
    /// On the first piece: where the echo header was written in place (it
    /// ends at `range.start`); `None` when the client's header was cut
    /// across chunks and the echo needs a header of its own.
    pub header_at: Option<usize>,
    /// Last piece of the frame.
    pub last: bool,
}

/// Where the decoder is in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Gathering a header (`header_have` bytes of it held).
    Header,
    /// Inside the payload of `head`.
    Payload,
    /// After a close or a failure: nothing more is decoded.
    Done,
}

/// What kind of frame the payload belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A data frame that is a whole message.
    Whole,
    /// A fragment of a fragmented message.
    Fragment,
    /// A control frame.
    Control,
}

/// The decoder's state for one connection: a few dozen bytes.
#[derive(Debug)]
pub struct Decoder {
    phase: Phase,
    kind: Kind,
    /// The next payload event is the frame's first.
    first_pending: bool,
    /// Where the echo header of the current frame was written, if in place.
    header_at: Option<usize>,
    header_have: u8,
    /// A header cut across chunks.
    header: [u8; MAX_CLIENT_HEADER],
    head: FrameHead,
    /// Payload bytes of the current frame already seen.
    seen: u64,
    /// The opcode of the fragmented message under way.
    fragmented: Option<OpCode>,
    /// The fragmented message under way is compressed.
    fragmented_compressed: bool,
    /// permessage-deflate was agreed: RSV1 may start a message.
    compression: bool,
    /// Bytes of the fragmented message so far (all fragments' lengths).
    message_len: u64,
    /// Whether the current payload is text to validate.
    text: bool,
    utf8: Utf8Stream,
    /// A control payload cut across chunks.
    control: Option<Box<ControlPayload>>,
}

/// A control frame's payload gathered across chunks.
#[derive(Debug)]
struct ControlPayload {
    len: usize,
    bytes: [u8; MAX_CONTROL_PAYLOAD],
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            phase: Phase::Header,
            kind: Kind::Whole,
            first_pending: false,
            header_at: None,
            header_have: 0,
            header: [0; MAX_CLIENT_HEADER],
            head: FrameHead {
                fin: true,
                compressed: false,
                opcode: OpCode::Binary,
                len: 0,
                mask: [0; 4],
            },
            seen: 0,
            fragmented: None,
            fragmented_compressed: false,
            compression: false,
            message_len: 0,
            text: false,
            utf8: Utf8Stream::default(),
            control: None,
        }
    }
}

impl Decoder {
    /// A decoder at the start of a client's frame stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts compressed messages from now on: permessage-deflate was
    /// agreed in the handshake.
    pub fn enable_compression(&mut self) {
        self.compression = true;
    }

    /// Whether the decoder has seen a close or a failure.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Decodes `chunk`, the next bytes from the client, calling `on` for
    /// every event in order. Messages over `max_message` bytes fail with 1009.
    pub fn feed(&mut self, chunk: &mut [u8], max_message: usize, mut on: impl FnMut(Event<'_>)) {
        let mut at = 0;
        loop {
            match self.phase {
                Phase::Done => return,
                Phase::Header if at < chunk.len() => {
                    match self.header(chunk, at, max_message as u64) {
                        Ok(Some(next)) => at = next,
                        Ok(None) => return,
                        Err(code) => return self.fail(code, &mut on),
                    }
                }
                Phase::Payload if at < chunk.len() || self.first_pending => {
                    at = self.payload(chunk, at, &mut on);
                }
                _ => return,
            }
        }
    }

    /// Parses a header starting at `at`. `Ok(Some(start))`: the payload
    /// starts there; `Ok(None)`: the chunk ended inside the header.
    fn header(
        &mut self,
        chunk: &mut [u8],
        at: usize,
        max_message: u64,
    ) -> Result<Option<usize>, CloseCode> {
        let have = usize::from(self.header_have);
        let in_place = have == 0;
        let parsed = if in_place {
            frame::parse_head(&chunk[at..], self.compression)
        } else {
            let take = (MAX_CLIENT_HEADER - have).min(chunk.len() - at);
            self.header[have..have + take].copy_from_slice(&chunk[at..at + take]);
            frame::parse_head(&self.header[..have + take], self.compression)
        };
        let (head, header_len) = match parsed {
            HeadParse::Complete(head, len) => (head, len),
            HeadParse::Invalid(code) => return Err(code),
            HeadParse::Incomplete(_) => {
                // Keep what we have (never more than a header); the next
                // chunk completes it.
                let take = (chunk.len() - at).min(MAX_CLIENT_HEADER - have);
                if in_place {
                    self.header[..take].copy_from_slice(&chunk[at..at + take]);
                }
                self.header_have = (have + take) as u8;
                return Ok(None);
            }
        };
        let payload_start = at + header_len - have;
        self.header_have = 0;
        self.begin_frame(head, max_message)?;
        self.header_at = (in_place && self.kind == Kind::Whole).then(|| {
            frame::write_header_before(chunk, payload_start, head.opcode, head.compressed, head.len)
        });
        Ok(Some(payload_start))
    }

    /// Applies the message rules to a new frame and sets up its payload.
    fn begin_frame(&mut self, head: FrameHead, max_message: u64) -> Result<(), CloseCode> {
        let kind = match head.opcode {
            OpCode::Text | OpCode::Binary if self.fragmented.is_some() => {
                return Err(CloseCode::PROTOCOL_ERROR)
            }
            OpCode::Text | OpCode::Binary if head.fin => Kind::Whole,
            OpCode::Text | OpCode::Binary => Kind::Fragment,
            OpCode::Continuation if self.fragmented.is_none() => {
                return Err(CloseCode::PROTOCOL_ERROR)
            }
            OpCode::Continuation => Kind::Fragment,
            OpCode::Close | OpCode::Ping | OpCode::Pong => Kind::Control,
        };
        match kind {
            Kind::Whole => {
                if head.len > max_message {
                    return Err(CloseCode::MESSAGE_TOO_BIG);
                }
                self.text = head.opcode == OpCode::Text && !head.compressed;
                self.utf8.reset();
            }
            Kind::Fragment => {
                if head.opcode != OpCode::Continuation {
                    self.fragmented = Some(head.opcode);
                    self.fragmented_compressed = head.compressed;
                    self.message_len = 0;
                    self.text = head.opcode == OpCode::Text && !head.compressed;
                    self.utf8.reset();
                }
                self.message_len += head.len;
                if self.message_len > max_message {
                    return Err(CloseCode::MESSAGE_TOO_BIG);
                }
            }
            Kind::Control => {}
        }
        self.kind = kind;
        self.head = head;
        self.seen = 0;
        self.first_pending = true;
        self.phase = Phase::Payload;
        Ok(())
    }

    /// Handles payload bytes from `at`; returns where the chunk's next
    /// unread byte is.
    fn payload(&mut self, chunk: &mut [u8], at: usize, on: &mut impl FnMut(Event<'_>)) -> usize {
        let left = self.head.len - self.seen;
        let take = left.min((chunk.len() - at) as u64) as usize;
        let range = at..at + take;
        unmask_from(&mut chunk[range.clone()], self.head.mask, self.seen);
        self.seen += take as u64;
        let first = std::mem::take(&mut self.first_pending);
        let last = self.seen == self.head.len;
        if last {
            self.phase = Phase::Header;
        }
        match self.kind {
            Kind::Whole | Kind::Fragment => {
                let message_end = last && (self.kind == Kind::Whole || self.head.fin);
                if self.text {
                    let valid = self.utf8.feed(&chunk[range.clone()])
                        && (!message_end || self.utf8.is_complete());
                    if !valid {
                        self.fail(CloseCode::INVALID_PAYLOAD, on);
                        return chunk.len();
                    }
                }
                if self.kind == Kind::Whole {
                    let frame = DataFrame {
                        opcode: self.head.opcode,
                        compressed: self.head.compressed,
                        len: self.head.len,
                        range: range.clone(),
                        first,
                        header_at: if first { self.header_at } else { None },
                        last,
                    };
                    if frame.compressed {
                        on(Event::Compressed {
                            frame,
                            bytes: &chunk[range.clone()],
                        });
                    } else {
                        on(Event::Echo(frame));
                    }
                } else {
                    let opcode = self.fragmented.expect("a fragment belongs to a message");
                    if message_end {
                        self.fragmented = None;
                    }
                    on(Event::Fragment {
                        opcode,
                        compressed: self.fragmented_compressed,
                        bytes: &chunk[range.clone()],
                        message_end,
                    });
                }
            }
            Kind::Control => {
                if first && last {
                    // The usual case: the whole payload is in this chunk.
                    self.control_frame(&chunk[range.clone()], on);
                } else {
                    let gathered = self.control.get_or_insert_with(|| {
                        Box::new(ControlPayload {
                            len: 0,
                            bytes: [0; MAX_CONTROL_PAYLOAD],
                        })
                    });
                    gathered.bytes[gathered.len..gathered.len + take]
                        .copy_from_slice(&chunk[range.clone()]);
                    gathered.len += take;
                    if last {
                        let gathered = self.control.take().expect("gathered above");
                        self.control_frame(&gathered.bytes[..gathered.len], on);
                    }
                }
            }
        }
        range.end
    }

    /// A whole control frame's payload.
    fn control_frame(&mut self, payload: &[u8], on: &mut impl FnMut(Event<'_>)) {
        match self.head.opcode {
            OpCode::Ping => on(Event::Ping(payload)),
            OpCode::Pong => on(Event::Pong(payload)),
            _ => match close::check_payload(payload) {
                Ok(()) => {
                    self.phase = Phase::Done;
                    on(Event::Close(payload));
                }
                Err(code) => self.fail(code, on),
            },
        }
    }

    fn fail(&mut self, code: CloseCode, on: &mut impl FnMut(Event<'_>)) {
        self.phase = Phase::Done;
        self.control = None;
        on(Event::Fail(code));
    }
}

/// Unmasks `payload`, which starts `offset` bytes into its frame's payload,
/// in place (the key rotated by the offset).
fn unmask_from(payload: &mut [u8], mask: [u8; 4], offset: u64) {
    if payload.is_empty() {
        return;
    }
    let mut key = mask;
    key.rotate_left((offset % 4) as usize);
    fastwebsockets::unmask(payload, key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::encode;

    use crate::protocol::frame::client_frame as client;

    /// What a server built on the decoder sends back for `wire` fed in
    /// chunks cut at `cuts`: echoes taken from the chunks in place, pongs,
    /// the close answer, or a close with the failure code.
    fn serve(wire: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        let mut echo = Vec::new();
        let mut message = Vec::new();
        let mut bounds = vec![0];
        bounds.extend(cuts.iter().copied().filter(|&c| c > 0 && c < wire.len()));
        bounds.push(wire.len());
        for pair in bounds.windows(2) {
            let mut chunk = wire[pair[0]..pair[1]].to_vec();
            let mut events = Vec::new();
            decoder.feed(&mut chunk, 1 << 20, |event| {
                events.push(match event {
                    Event::Compressed { .. } => unreachable!("compression is not enabled"),
                    Event::Echo(frame) => {
                        let start = if frame.first {
                            frame.header_at.unwrap_or(frame.range.start)
                        } else {
                            frame.range.start
                        };
                        (
                            0,
                            frame.first && frame.header_at.is_none(),
                            start..frame.range.end,
                            frame.opcode,
                            frame.len,
                            frame.last,
                            Vec::new(),
                        )
                    }
                    Event::Fragment {
                        opcode,
                        bytes,
                        message_end,
                        ..
                    } => (1, message_end, 0..0, opcode, 0, false, bytes.to_vec()),
                    Event::Ping(p) => (2, false, 0..0, OpCode::Pong, 0, false, p.to_vec()),
                    Event::Pong(_) => (3, false, 0..0, OpCode::Pong, 0, false, Vec::new()),
                    Event::Close(p) => (4, false, 0..0, OpCode::Close, 0, false, p.to_vec()),
                    Event::Fail(code) => (
                        5,
                        false,
                        0..0,
                        OpCode::Close,
                        u64::from(code.get()),
                        false,
                        Vec::new(),
                    ),
                });
            });
            for (kind, flag, range, opcode, len, last, bytes) in events {
                match kind {
                    0 => {
                        if flag {
                            let header = encode(opcode, &vec![0; len as usize]);
                            echo.extend_from_slice(&header[..header.len() - len as usize]);
                        }
                        echo.extend_from_slice(&chunk[range]);
                        if last {
                            out.append(&mut echo);
                        }
                    }
                    1 => {
                        message.extend_from_slice(&bytes);
                        if flag {
                            out.extend(encode(opcode, &std::mem::take(&mut message)));
                        }
                    }
                    2 => out.extend(encode(OpCode::Pong, &bytes)),
                    3 => {}
                    4 => out.extend(encode(OpCode::Close, &bytes)),
                    _ => out.extend(frame::close_frame(CloseCode::new(len as u16))),
                }
            }
        }
        out
    }

    /// `serve` on every single cut and every pair of cuts must give `expected`.
    fn check_all_splits(wire: &[u8], expected: &[u8]) {
        assert_eq!(serve(wire, &[]), expected, "unsplit");
        for a in 1..wire.len() {
            assert_eq!(serve(wire, &[a]), expected, "cut at {a}");
        }
        if wire.len() < 300 {
            for a in 1..wire.len() {
                for b in a + 1..wire.len() {
                    assert_eq!(serve(wire, &[a, b]), expected, "cuts at {a}, {b}");
                }
            }
        }
    }

    #[test]
    fn echoes_whole_frames_in_place_at_every_split() {
        let mask = [0x11, 0x22, 0x33, 0x44];
        for len in [0usize, 1, 5, 125, 126, 1000] {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut wire = client(0x81, &payload, mask);
            wire.extend(client(0x82, &payload, [9, 8, 7, 6]));
            let mut expected = encode(OpCode::Text, &payload);
            expected.extend(encode(OpCode::Binary, &payload));
            check_all_splits(&wire, &expected);
        }
    }

    #[test]
    fn header_is_written_in_place_over_the_client_header() {
        let mut wire = client(0x82, b"hello", [1, 2, 3, 4]);
        let mut seen = None;
        Decoder::new().feed(&mut wire, 100, |event| {
            if let Event::Echo(frame) = event {
                seen = Some(frame);
            }
        });
        let frame = seen.expect("one echo");
        assert_eq!((frame.header_at, frame.range.clone()), (Some(4), 6..11));
        assert_eq!(&wire[4..11], &[0x82, 5, b'h', b'e', b'l', b'l', b'o']);
    }

    #[test]
    fn reassembles_fragments_with_control_frames_between() {
        let mut wire = client(0x01, "hé".as_bytes(), [1, 2, 3, 4]);
        wire.extend(client(0x89, b"ping", [5, 6, 7, 8]));
        wire.extend(client(0x00, "llo ".as_bytes(), [4, 3, 2, 1]));
        wire.extend(client(0x8A, b"pong", [5, 6, 7, 8]));
        wire.extend(client(0x80, "wörld".as_bytes(), [0, 0, 0, 1]));
        wire.extend(client(0x88, &[0x03, 0xe8, b'b', b'y', b'e'], [1, 1, 1, 1]));
        let mut expected = encode(OpCode::Pong, b"ping");
        expected.extend(encode(OpCode::Text, "héllo wörld".as_bytes()));
        expected.extend(encode(OpCode::Close, &[0x03, 0xe8, b'b', b'y', b'e']));
        check_all_splits(&wire, &expected);
    }

    #[test]
    fn fails_with_the_right_code() {
        let m = [1, 2, 3, 4];
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (client(0x81, b"\xED\xA0\x80", m), 1007),
            (client(0x81, "€".as_bytes()[..2].as_ref(), m), 1007),
            (client(0x00, b"x", m), 1002),
            (
                [client(0x01, b"x", m), client(0x82, b"y", m)].concat(),
                1002,
            ),
            (client(0x82, &[0; 2000], m), 1009),
            (
                [client(0x02, &[0; 600], m), client(0x80, &[0; 600], m)].concat(),
                1009,
            ),
            (client(0x88, &[0x03], m), 1002),
            (client(0x88, &[0x03, 0xed], m), 1002),
            (client(0x88, &[0x03, 0xe8, 0xff], m), 1007),
            (vec![0x82, 0x01, b'x'], 1002),
        ];
        for (wire, code) in cases {
            for cut in 0..wire.len() {
                let mut decoder = Decoder::new();
                let mut failed = None;
                let (a, b) = wire.split_at(cut);
                for part in [a, b] {
                    decoder.feed(&mut part.to_vec(), 1000, |event| {
                        if let Event::Fail(c) = event {
                            failed = Some(c);
                        }
                    });
                }
                assert_eq!(failed, Some(CloseCode::new(code)), "{wire:x?} cut at {cut}");
                assert!(decoder.is_done());
            }
        }
    }

    #[test]
    fn invalid_utf8_fails_before_the_frame_is_complete() {
        let wire = client(0x81, b"ok\xFFmore text that has not arrived", [1, 2, 3, 4]);
        let mut failed = None;
        Decoder::new().feed(&mut wire[..9].to_vec(), 1000, |event| {
            if let Event::Fail(code) = event {
                failed = Some(code);
            }
        });
        assert_eq!(failed, Some(CloseCode::INVALID_PAYLOAD));
    }

    #[test]
    fn nothing_is_decoded_after_a_close() {
        let mut wire = client(0x88, &[], [1, 2, 3, 4]);
        wire.extend(client(0x82, b"late", [1, 2, 3, 4]));
        let expected = encode(OpCode::Close, &[]);
        check_all_splits(&wire, &expected);
    }

    #[test]
    fn compressed_messages_once_compression_is_agreed() {
        // RSV1 on a text frame whose payload is not UTF-8 (compressed bytes).
        let payload = [0xf2, 0x48, 0xcd, 0xc9];
        let wire = client(0xC1, &payload, [1, 2, 3, 4]);
        let mut refused = None;
        Decoder::new().feed(&mut wire.clone(), 100, |event| {
            if let Event::Fail(code) = event {
                refused = Some(code);
            }
        });
        assert_eq!(
            refused,
            Some(CloseCode::PROTOCOL_ERROR),
            "RSV1 without the extension"
        );

        let mut decoder = Decoder::new();
        decoder.enable_compression();
        let mut chunk = wire.clone();
        let mut frames = Vec::new();
        decoder.feed(&mut chunk, 100, |event| match event {
            Event::Compressed { frame, bytes } => {
                assert_eq!(bytes, &payload, "not UTF-8 checked");
                frames.push(frame);
            }
            other => panic!("unexpected {other:?}"),
        });
        let frame = &frames[0];
        assert!(frame.compressed && frame.first && frame.last);
        assert_eq!(
            chunk[frame.header_at.unwrap()],
            0xC1,
            "the echo header keeps RSV1"
        );

        // A fragmented compressed message: the flag rides on every piece;
        // RSV1 on a continuation is a protocol error.
        let mut wire = client(0x41, &payload[..2], [1, 2, 3, 4]);
        wire.extend(client(0x80, &payload[2..], [4, 3, 2, 1]));
        let mut pieces = Vec::new();
        decoder.feed(&mut wire, 100, |event| {
            if let Event::Fragment { compressed, .. } = event {
                pieces.push(compressed);
            }
        });
        assert_eq!(pieces, [true, true]);
        let mut wire = client(0x41, &payload[..2], [1, 2, 3, 4]);
        wire.extend(client(0xC0, &payload[2..], [4, 3, 2, 1]));
        let mut refused = None;
        decoder.feed(&mut wire, 100, |event| {
            if let Event::Fail(code) = event {
                refused = Some(code);
            }
        });
        assert_eq!(
            refused,
            Some(CloseCode::PROTOCOL_ERROR),
            "RSV1 on a continuation"
        );
    }
}
