//! Fail-fast UTF-8 checking of text frames *while they arrive*.
//!
//! fastwebsockets hands over whole frames only, so a text frame whose
//! invalid byte arrives early (Autobahn 6.4.3/6.4.4 send one frame in
//! chunks a second apart) would be refused only once its last byte is in.
//! [`TextWatch`] sits below the codec, in the byte stream the codec reads:
//! it follows frame boundaries from the headers, unmasks a copy of every
//! text payload (first frames of text messages and their continuations)
//! and validates it incrementally, so the connection fails as soon as the
//! first invalid byte is read.
//!
//! It only flags bytes that are *certainly* invalid. A sequence cut short at
//! the end of a message is left to the echo loop's own check.
//!
//! The watch also refuses a header without the MASK bit: every client frame
//! must be masked (RFC 6455 §5.1), and fastwebsockets reads unmasked frames
//! as if nothing were wrong, so this is the one protocol error decided here
//! (close 1002), as soon as the header's second byte is in. Other protocol
//! errors are left to the codec and the echo loop: once a header is
//! malformed (reserved bits or opcodes) the watch stops looking, and the
//! codec answers with 1002.
//!
//! A refusal says which of the bytes fed in that call still belong to
//! frames before the refused one ([`Refusal::keep`]), so those are read and
//! echoed before the connection fails.
//!
//! # permessage-deflate
//!
//! fastwebsockets refuses RSV1, and checks the UTF-8 of text frames whose
//! payload, compressed, is not text. Once the extension was agreed
//! ([`TextWatch::enable_compression`]) the watch therefore rewrites the
//! first byte of each data message's first header as it passes: RSV1 is
//! cleared and a compressed text frame becomes binary, so the codec reads it
//! as bytes. The original first byte of every data message is kept, in
//! order, in [`TextWatch::message_starts`], from which the echo loop learns
//! which messages are compressed and of what type. RSV1 anywhere else (a
//! continuation, a control frame) or RSV2/RSV3 is left in place, and the
//! codec refuses it (1002).

use crate::protocol::frame::{self, OpCode};
use crate::protocol::utf8::Utf8Stream;
use crate::protocol::CloseCode;

/// Where the watch is within the client's frame stream.
#[derive(Debug)]
enum Position {
    /// Collecting a frame header; `have` of its bytes are in `header`.
    Header { header: [u8; 14], have: usize },
    /// Inside a payload: `left` bytes to go, `mask_at` bytes already unmasked.
    Payload {
        left: u64,
        mask: [u8; 4],
        mask_at: usize,
        text: bool,
    },
    /// A malformed header: the codec fails the connection; stop looking.
    Stopped,
    /// The stream was refused; every later feed is refused too.
    Refused(Refused),
}

/// Why the watch refused the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A text payload holds bytes that cannot be UTF-8.
    InvalidUtf8,
    /// A frame header lacks the MASK bit (RFC 6455 §5.1).
    Unmasked,
}

impl Refused {
    /// The close code the connection fails with: 1007 for invalid UTF-8,
    /// 1002 (protocol error) for an unmasked frame.
    pub fn close_code(self) -> CloseCode {
        match self {
            Refused::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            Refused::Unmasked => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// What went wrong, for the read error the codec sees.
    pub fn describe(self) -> &'static str {
        match self {
            Refused::InvalidUtf8 => "invalid UTF-8 in a text frame",
            Refused::Unmasked => "unmasked client frame",
        }
    }
}

/// A refusal by [`TextWatch::feed`], and how much of that call's bytes to
/// keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Why the stream was refused.
    pub reason: Refused,
    /// How many of the bytes fed in the refusing call belong to frames
    /// before the refused one (0 when it began in an earlier call).
    pub keep: usize,
}

/// Follows client frames; refuses invalid UTF-8 in text as it arrives, and
/// unmasked frames at their header.
#[derive(Debug)]
pub struct TextWatch {
    position: Position,
    /// A fragmented text message is under way.
    in_text_message: bool,
    utf8: Utf8Stream,
    /// Stream offset (bytes fed so far) where the current frame began.
    frame_start: u64,
    fed: u64,
    /// permessage-deflate was agreed: compressed messages are rewritten.
    compression: bool,
    /// The original first byte of each data message, in order (only with
    /// compression).
    message_starts: std::collections::VecDeque<u8>,
}

impl Default for TextWatch {
    fn default() -> Self {
        Self {
            position: Position::Header {
                header: [0; 14],
                have: 0,
            },
            in_text_message: false,
            utf8: Utf8Stream::default(),
            frame_start: 0,
            fed: 0,
            compression: false,
            message_starts: std::collections::VecDeque::new(),
        }
    }
}

/// Payload bytes unmasked per step, on the stack.
const UNMASK_CHUNK: usize = 1024;

impl TextWatch {
    /// A watch at the start of the client's frame stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads compressed messages from now on (see the module docs).
    pub fn enable_compression(&mut self) {
        self.compression = true;
    }

    /// The original first byte of each data message seen so far, oldest
    /// first, for the echo loop to take (only with compression).
    pub fn message_starts(&mut self) -> &mut std::collections::VecDeque<u8> {
        &mut self.message_starts
    }

    /// [`TextWatch::feed_mut`] on bytes that are not rewritten (tests).
    #[cfg(test)]
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Refusal> {
        self.feed_mut(&mut bytes.to_vec())
    }

    /// Feeds the next bytes read from the client, rewriting compressed
    /// messages' first bytes in place when compression is on. An `Err`
    /// means a frame was refused: a text frame holds invalid UTF-8, or a
    /// frame is not masked. Only the first [`Refusal::keep`] of these bytes
    /// belong to frames before it. Once refused, every later call is
    /// refused too, keeping nothing.
    pub fn feed_mut(&mut self, mut bytes: &mut [u8]) -> Result<(), Refusal> {
        let chunk_start = self.fed;
        while !bytes.is_empty() {
            match &mut self.position {
                Position::Stopped => break,
                Position::Refused(reason) => {
                    return Err(Refusal {
                        reason: *reason,
                        keep: 0,
                    })
                }
                Position::Header { header, have } => {
                    if *have == 0 {
                        self.frame_start = self.fed;
                        if self.compression {
                            bytes[0] = note_message_start(bytes[0], &mut self.message_starts);
                        }
                    }
                    let needed = header_len(&header[..*have]);
                    let take = (needed - *have).min(bytes.len());
                    header[*have..*have + take].copy_from_slice(&bytes[..take]);
                    *have += take;
                    self.fed += take as u64;
                    bytes = &mut std::mem::take(&mut bytes)[take..];
                    if *have >= 2 && !frame::is_masked(header[1]) {
                        return Err(self.refuse(Refused::Unmasked, chunk_start));
                    }
                    if *have == header_len(&header[..*have]) {
                        let header = *header;
                        self.start_frame(&header);
                    }
                }
                Position::Payload {
                    left,
                    mask,
                    mask_at,
                    text,
                } => {
                    let take = (*left).min(bytes.len() as u64) as usize;
                    let (payload, rest) = std::mem::take(&mut bytes).split_at_mut(take);
                    if *text && !check_masked_text(&mut self.utf8, payload, mask, mask_at) {
                        return Err(self.refuse(Refused::InvalidUtf8, chunk_start));
                    }
                    *left -= take as u64;
                    self.fed += take as u64;
                    bytes = rest;
                    if *left == 0 {
                        self.position = Position::Header {
                            header: [0; 14],
                            have: 0,
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// Refuses the current frame for `reason`: the bytes of this call from
    /// `chunk_start` (a stream offset) up to the frame's start are kept.
    fn refuse(&mut self, reason: Refused, chunk_start: u64) -> Refusal {
        self.position = Position::Refused(reason);
        let keep = self.frame_start.saturating_sub(chunk_start);
        Refusal {
            reason,
            keep: usize::try_from(keep).unwrap_or(usize::MAX),
        }
    }

    /// A complete header is in: decide whether its payload is text.
    fn start_frame(&mut self, header: &[u8; 14]) {
        let head = frame::read_wire_head(header);
        let (len, mask) = (head.len, head.mask);
        let opcode = match head.opcode {
            Some(opcode) if head.rsv == 0 => opcode,
            _ => {
                self.position = Position::Stopped;
                return;
            }
        };
        let text = match opcode {
            OpCode::Continuation => self.in_text_message,
            OpCode::Text => {
                self.utf8.reset();
                true
            }
            _ => false,
        };
        // Control frames may interleave a fragmented message.
        if !frame::is_control(opcode) {
            self.in_text_message = text && !head.fin;
        }
        self.position = if len == 0 {
            Position::Header {
                header: [0; 14],
                have: 0,
            }
        } else {
            Position::Payload {
                left: len,
                mask,
                mask_at: 0,
                text,
            }
        };
    }
}

/// Notes the first byte of a frame header: a data message's is kept in
/// `starts`, and a compressed one is returned rewritten so that the codec
/// reads it (RSV1 cleared, text made binary). Anything else is returned
/// as it is.
fn note_message_start(first: u8, starts: &mut std::collections::VecDeque<u8>) -> u8 {
    const RSV1: u8 = 0x40;
    const RSV2_RSV3: u8 = 0x30;
    let opcode = first & 0x0f;
    if !matches!(opcode, 1 | 2) {
        return first;
    }
    starts.push_back(first);
    if first & RSV1 != 0 && first & RSV2_RSV3 == 0 {
        (first & 0x80) | 2
    } else {
        first
    }
}

/// The header length implied by its first bytes (2 until byte 1 is known).
fn header_len(partial: &[u8]) -> usize {
    partial.get(1).map_or(2, |&second| frame::head_len(second))
}

/// Unmasks `payload` into a stack buffer piece by piece and feeds it to
/// `utf8`; `false` at the first certainly invalid byte.
fn check_masked_text(
    utf8: &mut Utf8Stream,
    payload: &[u8],
    mask: &[u8; 4],
    mask_at: &mut usize,
) -> bool {
    let mut scratch = [0u8; UNMASK_CHUNK];
    for piece in payload.chunks(UNMASK_CHUNK) {
        for (i, (out, byte)) in scratch.iter_mut().zip(piece).enumerate() {
            *out = byte ^ mask[(*mask_at + i) % 4];
        }
        *mask_at = (*mask_at + piece.len()) % 4;
        if !utf8.feed(&scratch[..piece.len()]) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
    /// The MASK bit in a header's second byte.
    const MASK_BIT: u8 = 0x80;

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        out
    }

    /// Feeds `stream` one byte at a time; the offset of the first refusal.
    fn first_refusal_bytewise(stream: &[u8]) -> Option<usize> {
        let mut watch = TextWatch::new();
        (0..stream.len()).find(|&i| watch.feed(&stream[i..=i]).is_err())
    }

    #[test]
    fn valid_text_binary_and_control_frames_pass_in_any_split() {
        let long_text = "aé€😀".repeat(5000);
        let mut stream = frame(true, 1, "héllo".as_bytes());
        stream.extend(frame(true, 2, &[0xff, 0xfe, 0x80]));
        stream.extend(frame(false, 1, &"€".as_bytes()[..1]));
        stream.extend(frame(true, 9, &[0xff]));
        stream.extend(frame(true, 0, &"€".as_bytes()[1..]));
        stream.extend(frame(true, 1, long_text.as_bytes()));
        assert_eq!(first_refusal_bytewise(&stream), None);
        assert_eq!(TextWatch::new().feed(&stream), Ok(()));
    }

    #[test]
    fn invalid_byte_is_refused_where_it_arrives_not_at_frame_end() {
        let mut payload = b"valid start ".to_vec();
        payload.push(0xff);
        payload.extend_from_slice(&[b'x'; 200]);
        let stream = frame(true, 1, &payload);
        let header = 2 + 2 + 4; // 16-bit length and mask
        assert_eq!(first_refusal_bytewise(&stream), Some(header + 12));
    }

    #[test]
    fn invalid_continuation_of_text_is_refused_but_binary_is_not() {
        let mut text = frame(false, 1, b"ok");
        text.extend(frame(true, 0, &[0xc0, 0xaf]));
        assert!(first_refusal_bytewise(&text).is_some());
        let mut binary = frame(false, 2, b"ok");
        binary.extend(frame(true, 0, &[0xc0, 0xaf]));
        assert_eq!(first_refusal_bytewise(&binary), None);
    }

    #[test]
    fn refusal_keeps_the_frames_before_the_bad_one() {
        let good = frame(true, 1, b"fine");
        let mut stream = good.clone();
        stream.extend(frame(true, 1, &[b'a', 0xff]));
        assert_eq!(
            TextWatch::new().feed(&stream),
            Err(Refusal {
                reason: Refused::InvalidUtf8,
                keep: good.len()
            })
        );
    }

    /// `frame` with the MASK bit cleared and the payload sent in the clear.
    fn unmasked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let masked = frame(fin, opcode, payload);
        let header_len = masked.len() - payload.len();
        let mut out = masked[..header_len - 4].to_vec();
        out[1] &= !MASK_BIT;
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn unmasked_frame_is_refused_at_its_second_header_byte() {
        let good = frame(true, 2, b"fine");
        let mut stream = good.clone();
        stream.extend(unmasked(true, 2, b"in the clear"));
        assert_eq!(first_refusal_bytewise(&stream), Some(good.len() + 1));
        assert_eq!(
            TextWatch::new().feed(&stream),
            Err(Refusal {
                reason: Refused::Unmasked,
                keep: good.len()
            }),
            "the frame before the unmasked one is kept"
        );
    }

    #[test]
    fn unmasked_control_frames_and_fragments_are_refused_too() {
        for (case, bad) in [
            ("ping", unmasked(true, 9, b"ping")),
            ("empty pong", unmasked(true, 10, b"")),
            ("close", unmasked(true, 8, &1000u16.to_be_bytes())),
            ("16-bit length", unmasked(true, 1, &[b'a'; 300])),
        ] {
            let mut watch = TextWatch::new();
            assert_eq!(
                watch.feed(&bad).map_err(|r| r.reason),
                Err(Refused::Unmasked),
                "{case}"
            );
        }
        let mut stream = frame(false, 1, b"first half, ");
        let start = stream.len();
        stream.extend(unmasked(true, 0, b"second half"));
        assert_eq!(first_refusal_bytewise(&stream), Some(start + 1));
    }

    #[test]
    fn refusal_across_feeds_keeps_nothing_and_sticks() {
        let good = frame(true, 1, b"ok");
        let bad = unmasked(true, 1, b"no mask");
        let mut watch = TextWatch::new();
        let mut first = good.clone();
        first.push(bad[0]);
        assert_eq!(watch.feed(&first), Ok(()), "one header byte says nothing");
        let refused = Err(Refusal {
            reason: Refused::Unmasked,
            keep: 0,
        });
        assert_eq!(watch.feed(&bad[1..]), refused);
        assert_eq!(
            watch.feed(&good),
            refused,
            "nothing is read after a refusal"
        );
    }

    #[test]
    fn refusal_reasons_map_to_close_codes() {
        assert_eq!(
            Refused::InvalidUtf8.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
        assert_eq!(Refused::Unmasked.close_code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn truncated_character_at_message_end_is_left_to_the_echo_loop() {
        let stream = frame(true, 1, &"€".as_bytes()[..2]);
        assert_eq!(TextWatch::new().feed(&stream), Ok(()));
    }

    #[test]
    fn malformed_headers_stop_the_watch() {
        let mut stream = frame(true, 1, b"x");
        stream[0] |= 0x40; // RSV1
        stream.extend(frame(true, 1, &[0xff]));
        assert_eq!(TextWatch::new().feed(&stream), Ok(()));
    }

    #[test]
    fn utf8_stream_handles_characters_split_across_feeds() {
        let emoji = "😀".as_bytes();
        let mut utf8 = Utf8Stream::default();
        for byte in emoji {
            assert!(utf8.feed(std::slice::from_ref(byte)));
        }
        assert!(utf8.is_complete());
        assert!(
            !utf8.feed(&[0xf0, 0x28]),
            "0x28 cannot continue a 4-byte character"
        );
    }
}
