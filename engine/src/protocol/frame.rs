//! Frame header layout (RFC 6455 §5.2) and the server's own headers.
//!
//! A client header is 2 bytes, plus 2 or 8 for an extended length, plus the
//! 4-byte mask key. The server's header for the same payload has no key and
//! uses the shortest length encoding, so it is always at least 4 bytes
//! shorter: the echo header fits over the end of the client's header, right
//! in front of the payload ([`write_header_before`]).

pub use fastwebsockets::OpCode;

use super::close_code::CloseCode;

/// Largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Longest client (masked) header.
pub const MAX_CLIENT_HEADER: usize = 14;
/// An unmasked server ping with an empty payload (keep-alive).
pub const PING_FRAME: [u8; 2] = [FIN | OpCode::Ping as u8, 0x00];
/// An unmasked server close frame with code 1001 (going away) and no
/// reason: what every WebSocket gets at shutdown.
pub const GOING_AWAY_FRAME: [u8; 4] = close_frame_of(CloseCode::GOING_AWAY);

/// The FIN bit of a header's first byte.
const FIN: u8 = 0x80;
/// RSV1: the message is compressed (permessage-deflate, RFC 7692 §6).
const RSV1: u8 = 0x40;
/// RSV2 and RSV3: no extension this server speaks uses them.
const RSV2_RSV3: u8 = 0x30;
/// The opcode bits of a header's first byte.
const OPCODE: u8 = 0x0f;
/// The MASK bit of a header's second byte.
const MASKED: u8 = 0x80;
/// The length bits of a header's second byte.
const LENGTH: u8 = 0x7f;

/// A parsed client frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// Final fragment of its message.
    pub fin: bool,
    /// RSV1 set: the first frame of a compressed message.
    pub compressed: bool,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// Payload length in bytes.
    pub len: u64,
    /// The client's mask key.
    pub mask: [u8; 4],
}

/// What the first bytes of a header say.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadParse {
    /// The header is this long; fewer bytes are at hand.
    Incomplete(usize),
    /// A whole header of this many bytes.
    Complete(FrameHead, usize),
    /// Not a frame this server accepts: close with this code.
    Invalid(CloseCode),
}

/// A header's fields as they are on the wire, before any rule is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireHead {
    /// Final fragment of its message.
    pub fin: bool,
    /// The reserved bits RSV1-3, as they are in the first byte (`0x70`).
    pub rsv: u8,
    /// The opcode; `None` for a reserved one (3-7, 11-15).
    pub opcode: Option<OpCode>,
    /// The MASK bit is set.
    pub masked: bool,
    /// Payload length in bytes.
    pub len: u64,
    /// The mask key (zeros when unmasked).
    pub mask: [u8; 4],
}

/// The length of a header whose second byte is `second`: 2 bytes, plus 2
/// or 8 for an extended length, plus 4 for a mask key.
pub fn head_len(second: u8) -> usize {
    let extended = match second & LENGTH {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if is_masked(second) { 4 } else { 0 };
    2 + extended + mask
}

/// Whether a header whose second byte is `second` carries a mask key, as
/// every client frame must (RFC 6455 §5.1).
pub fn is_masked(second: u8) -> bool {
    second & MASKED != 0
}

/// The payload length a header declares; `head` holds at least its first
/// [`head_len`]`(head[1])` bytes.
fn payload_len(head: &[u8]) -> u64 {
    match head[1] & LENGTH {
        126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        127 => u64::from_be_bytes(head[2..10].try_into().expect("8 bytes")),
        short => u64::from(short),
    }
}

/// Reads a whole header's fields with no rule applied; `head` holds at
/// least its first [`head_len`]`(head[1])` bytes.
pub fn read_wire_head(head: &[u8]) -> WireHead {
    let (first, second) = (head[0], head[1]);
    let masked = is_masked(second);
    let len = head_len(second);
    WireHead {
        fin: first & FIN != 0,
        rsv: first & (RSV1 | RSV2_RSV3),
        opcode: OpCode::try_from(first & OPCODE).ok(),
        masked,
        len: payload_len(head),
        mask: if masked {
            head[len - 4..len].try_into().expect("4 bytes")
        } else {
            [0; 4]
        },
    }
}

/// Parses a client header from the start of `bytes` (at least one byte).
/// Rejects reserved bits (RSV1 is allowed only when `compression` was
/// negotiated, and only on the first frame of a data message: RFC 7692
/// §6.1), reserved opcodes, unmasked frames (§5.1: the server MUST close),
/// fragmented or oversized control frames and 64-bit lengths with the top
/// bit set.
pub fn parse_head(bytes: &[u8], compression: bool) -> HeadParse {
    const INVALID: HeadParse = HeadParse::Invalid(CloseCode::PROTOCOL_ERROR);
    let first = bytes[0];
    let Ok(opcode) = OpCode::try_from(first & OPCODE) else {
        return INVALID;
    };
    let compressed = first & RSV1 != 0;
    let rsv1_allowed = compression && matches!(opcode, OpCode::Text | OpCode::Binary);
    if first & RSV2_RSV3 != 0 || (compressed && !rsv1_allowed) {
        return INVALID;
    }
    let fin = first & FIN != 0;
    if is_control(opcode) && !fin {
        return INVALID;
    }
    let Some(&second) = bytes.get(1) else {
        return HeadParse::Incomplete(2);
    };
    if !is_masked(second) {
        return INVALID;
    }
    let header_len = head_len(second);
    if bytes.len() < header_len {
        return HeadParse::Incomplete(header_len);
    }
    let len = payload_len(bytes);
    if len >> 63 != 0 || (is_control(opcode) && len > MAX_CONTROL_PAYLOAD as u64) {
        return INVALID;
    }
    let key = header_len - 4;
    let mask = bytes[key..header_len].try_into().expect("4 bytes");
    HeadParse::Complete(
        FrameHead {
            fin,
            compressed,
            opcode,
            len,
            mask,
        },
        header_len,
    )
}

/// Whether `opcode` is a control frame (close, ping, pong).
pub fn is_control(opcode: OpCode) -> bool {
    matches!(opcode, OpCode::Close | OpCode::Ping | OpCode::Pong)
}

/// Length of the server's header for a `len`-byte payload.
pub fn server_header_len(len: u64) -> usize {
    match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

/// Writes a final, unmasked server header for `opcode` and `len` (with
/// RSV1 when `compressed`) so that it ends exactly at `end` in `buf`;
/// returns where it starts.
pub fn write_header_before(
    buf: &mut [u8],
    end: usize,
    opcode: OpCode,
    compressed: bool,
    len: u64,
) -> usize {
    let start = end - server_header_len(len);
    let out = &mut buf[start..end];
    out[0] = FIN | if compressed { RSV1 } else { 0 } | opcode as u8;
    match out.len() {
        2 => out[1] = len as u8,
        4 => {
            out[1] = 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out[1] = 127;
            out[2..10].copy_from_slice(&len.to_be_bytes());
        }
    }
    start
}

/// A whole unmasked server frame (header and payload) in a new vector.
pub fn encode(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    encode_message(opcode, false, payload)
}

/// A whole unmasked server frame carrying a message, compressed (RSV1 set)
/// or not, in a new vector.
pub fn encode_message(opcode: OpCode, compressed: bool, payload: &[u8]) -> Vec<u8> {
    let header = server_header_len(payload.len() as u64);
    let mut frame = vec![0; header + payload.len()];
    write_header_before(&mut frame, header, opcode, compressed, payload.len() as u64);
    frame[header..].copy_from_slice(payload);
    frame
}

/// A server close frame with `code` and no reason.
pub fn close_frame(code: CloseCode) -> Vec<u8> {
    close_frame_of(code).to_vec()
}

/// A server close frame with `code` and no reason, as a constant.
const fn close_frame_of(code: CloseCode) -> [u8; 4] {
    let [high, low] = code.to_be_bytes();
    [FIN | OpCode::Close as u8, 2, high, low]
}

/// The masked length field of a client header for a `len`-byte payload.
#[cfg(test)]
fn length_bytes(len: u64) -> Vec<u8> {
    match len {
        0..=125 => vec![0x80 | len as u8],
        126..=65535 => [&[0x80 | 126][..], &(len as u16).to_be_bytes()].concat(),
        _ => [&[0x80 | 127][..], &len.to_be_bytes()].concat(),
    }
}

/// A whole masked client frame, for the protocol's tests.
#[cfg(test)]
pub(crate) fn client_frame(first: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut wire = vec![first];
    wire.extend(length_bytes(payload.len() as u64));
    wire.extend_from_slice(&mask);
    wire.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    wire
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked header (key 1, 2, 3, 4) for a `len`-byte payload.
    fn masked(first: u8, len: u64) -> Vec<u8> {
        let mut wire = vec![first];
        wire.extend(length_bytes(len));
        wire.extend_from_slice(&[1, 2, 3, 4]);
        wire
    }

    #[test]
    fn parses_every_length_encoding() {
        for (len, header) in [(0, 6), (125, 6), (126, 8), (65535, 8), (65536, 14)] {
            let wire = masked(0x82, len);
            for cut in 1..wire.len() {
                assert_eq!(
                    parse_head(&wire[..cut], false),
                    HeadParse::Incomplete(if cut < 2 { 2 } else { header })
                );
            }
            let head = FrameHead {
                fin: true,
                compressed: false,
                opcode: OpCode::Binary,
                len,
                mask: [1, 2, 3, 4],
            };
            assert_eq!(parse_head(&wire, false), HeadParse::Complete(head, header));
        }
    }

    #[test]
    fn control_frames_of_our_own_are_encoded_frames() {
        assert_eq!(PING_FRAME.to_vec(), encode(OpCode::Ping, b""));
        assert_eq!(
            GOING_AWAY_FRAME.to_vec(),
            encode(OpCode::Close, &1001u16.to_be_bytes())
        );
        assert_eq!(
            close_frame(CloseCode::MESSAGE_TOO_BIG),
            encode(OpCode::Close, &1009u16.to_be_bytes())
        );
    }

    #[test]
    fn wire_heads_are_read_whatever_the_rules_say() {
        let mut wire = masked(0x82, 300);
        assert_eq!(head_len(wire[1]), wire.len());
        let head = read_wire_head(&wire);
        assert_eq!(
            (head.fin, head.rsv, head.opcode, head.masked),
            (true, 0, Some(OpCode::Binary), true)
        );
        assert_eq!((head.len, head.mask), (300, [1, 2, 3, 4]));
        wire[0] = 0x43; // RSV1, reserved opcode 3, not final
        wire[1] &= !MASKED;
        let head = read_wire_head(&wire);
        assert_eq!(head_len(wire[1]), 4, "no mask key");
        assert!(!head.fin && head.rsv == RSV1 && head.opcode.is_none() && !head.masked);
        assert_eq!((head.len, head.mask), (300, [0; 4]));
    }

    #[test]
    fn refuses_what_the_rfc_forbids() {
        let invalid = HeadParse::Invalid(CloseCode::PROTOCOL_ERROR);
        for compression in [false, true] {
            let parse = |bytes: &[u8]| parse_head(bytes, compression);
            assert_eq!(parse(&[0xA2, 0x80]), invalid, "RSV2");
            assert_eq!(parse(&[0x92, 0x80]), invalid, "RSV3");
            assert_eq!(parse(&[0xC9, 0x80]), invalid, "RSV1 on a ping");
            assert_eq!(parse(&[0xC8, 0x80]), invalid, "RSV1 on a close");
            assert_eq!(parse(&[0xC0, 0x80]), invalid, "RSV1 on a continuation");
            assert_eq!(parse(&[0x83, 0x80]), invalid, "reserved opcode");
            assert_eq!(parse(&[0x09, 0x80]), invalid, "fragmented ping");
            assert_eq!(parse(&[0x82, 0x05]), invalid, "unmasked");
            assert_eq!(parse(&masked(0x89, 126)), invalid, "ping over 125");
            let mut huge = masked(0x82, 1 << 40);
            huge[2] = 0x80;
            assert_eq!(parse(&huge), invalid, "top bit of a 64-bit length");
        }
        assert_eq!(
            parse_head(&[0xC2, 0x80], false),
            invalid,
            "RSV1 unnegotiated"
        );
    }

    #[test]
    fn rsv1_marks_the_first_frame_of_a_compressed_message() {
        for first in [0xC1, 0x42] {
            let wire = masked(first, 3);
            let HeadParse::Complete(head, 6) = parse_head(&wire, true) else {
                panic!("{first:x} is valid with compression");
            };
            assert!(head.compressed);
        }
        let mut frame = encode_message(OpCode::Text, true, b"abc");
        assert_eq!(frame[..2], [0xC1, 3]);
        frame = encode_message(OpCode::Binary, false, b"abc");
        assert_eq!(frame[..2], [0x82, 3]);
    }

    #[test]
    fn server_header_fits_over_any_client_header() {
        for len in [0u64, 5, 125, 126, 65535, 65536, 1 << 33] {
            let client = masked(0x81, len);
            let mut buf = client.clone();
            let start = write_header_before(&mut buf, client.len(), OpCode::Text, false, len);
            assert!(start >= 4, "{len}");
            let server = &buf[start..];
            let decoded = encode(OpCode::Text, &vec![0; len.min(70000) as usize]);
            if len <= 70000 {
                assert_eq!(server, &decoded[..server.len()]);
            }
        }
    }
}
