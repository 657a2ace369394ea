//! Frame header layout (RFC 6455 §5.2) and the server's own headers.
//!
//! A client header is 2 bytes, plus 2 or 8 for an extended length, plus the
//! 4-byte mask key. The server's header for the same payload has no key and
//! uses the shortest length encoding, so it is always at least 4 bytes
//! shorter: the echo header fits over the end of the client's header, right
//! in front of the payload ([`write_header_before`]).

pub use fastwebsockets::OpCode;

/// Largest payload of a control frame (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;
/// Longest client (masked) header.
pub const MAX_CLIENT_HEADER: usize = 14;
/// An unmasked server ping with an empty payload (keep-alive).
pub const PING_FRAME: [u8; 2] = [0x89, 0x00];

const FIN: u8 = 0x80;
/// RSV1: the message is compressed (permessage-deflate, RFC 7692 §6).
const RSV1: u8 = 0x40;
/// RSV2 and RSV3: no extension this server speaks uses them.
const RSV2_RSV3: u8 = 0x30;
const MASKED: u8 = 0x80;

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
    Invalid(u16),
}

/// Parses a client header from the start of `bytes` (at least one byte).
/// Rejects reserved bits (RSV1 is allowed only when `compression` was
/// negotiated, and only on the first frame of a data message: RFC 7692
/// §6.1), reserved opcodes, unmasked frames (§5.1: the server MUST close),
/// fragmented or oversized control frames and 64-bit lengths with the top
/// bit set.
pub fn parse_head(bytes: &[u8], compression: bool) -> HeadParse {
    use super::close::PROTOCOL_ERROR;
    let first = bytes[0];
    let Ok(opcode) = OpCode::try_from(first & 0x0f) else {
        return HeadParse::Invalid(PROTOCOL_ERROR);
    };
    let compressed = first & RSV1 != 0;
    let rsv1_allowed = compression && matches!(opcode, OpCode::Text | OpCode::Binary);
    if first & RSV2_RSV3 != 0 || (compressed && !rsv1_allowed) {
        return HeadParse::Invalid(PROTOCOL_ERROR);
    }
    let fin = first & FIN != 0;
    if is_control(opcode) && !fin {
        return HeadParse::Invalid(PROTOCOL_ERROR);
    }
    let Some(&second) = bytes.get(1) else {
        return HeadParse::Incomplete(2);
    };
    if second & MASKED == 0 {
        return HeadParse::Invalid(PROTOCOL_ERROR);
    }
    let (extended, header_len) = match second & 0x7f {
        126 => (2, 8),
        127 => (8, 14),
        _ => (0, 6),
    };
    if bytes.len() < header_len {
        return HeadParse::Incomplete(header_len);
    }
    let len = match extended {
        2 => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
        8 => u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes")),
        _ => u64::from(second & 0x7f),
    };
    if len >> 63 != 0 || (is_control(opcode) && len > MAX_CONTROL_PAYLOAD as u64) {
        return HeadParse::Invalid(PROTOCOL_ERROR);
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
pub fn close_frame(code: u16) -> Vec<u8> {
    encode(OpCode::Close, &code.to_be_bytes())
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
    fn refuses_what_the_rfc_forbids() {
        let invalid = HeadParse::Invalid(1002);
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
