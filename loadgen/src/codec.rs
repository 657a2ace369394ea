//! The client side of the RFC 6455 framing: masked frames out, unmasked
//! frames in, parsed in place.
//!
//! # Masking
//!
//! RFC 6455 §5.3 says a client MUST mask every frame with a fresh,
//! unpredictable 32-bit key. Some load tools use one fixed key per
//! connection (or a zero key) so they can pre-mask a payload once and only
//! patch a few bytes per send; that makes the client cheaper than any real
//! client and the server's unmasking trivially predictable. We don't do
//! that: every frame gets a new key from a ChaCha12 CSPRNG
//! (`rand::rngs::StdRng`, seeded from the OS), and the payload is masked
//! whole, 16 bytes or more per step (fastwebsockets' `unmask`). For 20 B
//! messages the cost is lost in the noise; for 16 KiB messages it is one
//! extra pass over 16 KiB, far below the cost of the copies through the
//! loopback TCP stack (`examples/mask_cost.rs` measures it).

/// Continuation frame.
pub const OP_CONT: u8 = 0x0;
/// Text data frame.
pub const OP_TEXT: u8 = 0x1;
/// Binary data frame.
pub const OP_BINARY: u8 = 0x2;
/// Close control frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping control frame.
pub const OP_PING: u8 = 0x9;
/// Pong control frame.
pub const OP_PONG: u8 = 0xA;

/// Largest frame payload we accept from a server (guards the buffers).
pub const MAX_FRAME: usize = 64 * 1024 * 1024 + 64;

/// A server frame that breaks the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Servers must not mask frames (RFC 6455 §5.1).
    #[error("server sent a masked frame")]
    Masked,
    /// An RSV bit is set although no extension was negotiated, or RSV1
    /// (permessage-deflate) on a frame other than a data message's first.
    #[error("RSV bits set without an extension that allows them")]
    Rsv,
    /// Opcode 3-7 or 0xB-0xF.
    #[error("reserved opcode {0:#x}")]
    Opcode(u8),
    /// A control frame is fragmented or longer than 125 bytes.
    #[error("bad control frame")]
    Control,
    /// A frame longer than [`MAX_FRAME`].
    #[error("frame too large")]
    TooLarge,
    /// A continuation frame without a message to continue, or a new data
    /// frame in the middle of a fragmented message.
    #[error("bad fragmentation")]
    Fragmentation,
}

/// The parsed header of one server frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// FIN bit: last frame of its message.
    pub fin: bool,
    /// Opcode (low 4 bits of byte 0).
    pub opcode: u8,
    /// Bytes taken by the header (2, 4 or 10: servers don't mask).
    pub header_len: usize,
    /// Payload length.
    pub payload_len: usize,
    /// RSV1: the message is compressed (permessage-deflate).
    pub compressed: bool,
}

impl FrameHead {
    /// Header plus payload.
    #[inline]
    pub fn total_len(&self) -> usize {
        self.header_len + self.payload_len
    }
}

/// Parses the header of the frame at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` does not hold the whole header yet; the
/// payload may still be incomplete even when a header is returned. RSV1 is
/// allowed on a text or binary frame when `compression` says that
/// permessage-deflate was agreed (the reader checks that it starts a
/// message); any other RSV bit is an error.
#[inline]
pub fn parse_head(buf: &[u8], compression: bool) -> Result<Option<FrameHead>, ProtocolError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    if b1 & 0x80 != 0 {
        return Err(ProtocolError::Masked);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    let compressed = b0 & 0x40 != 0;
    if b0 & 0x30 != 0
        || (compressed && !(compression && (opcode == OP_TEXT || opcode == OP_BINARY)))
    {
        return Err(ProtocolError::Rsv);
    }
    let len7 = (b1 & 0x7F) as usize;
    let (header_len, payload_len) = match len7 {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (4, u16::from_be_bytes([buf[2], buf[3]]) as usize)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut l = [0u8; 8];
            l.copy_from_slice(&buf[2..10]);
            let l = u64::from_be_bytes(l);
            if l > MAX_FRAME as u64 {
                return Err(ProtocolError::TooLarge);
            }
            (10, l as usize)
        }
        n => (2, n),
    };
    match opcode {
        OP_CONT | OP_TEXT | OP_BINARY => {}
        OP_CLOSE | OP_PING | OP_PONG => {
            if !fin || payload_len > 125 {
                return Err(ProtocolError::Control);
            }
        }
        other => return Err(ProtocolError::Opcode(other)),
    }
    Ok(Some(FrameHead {
        fin,
        opcode,
        header_len,
        payload_len,
        compressed,
    }))
}

/// XORs `buf` with the 4-byte mask `key`, starting at key offset 0, 16
/// bytes or more at a time (fastwebsockets' `unmask`, which masks and
/// unmasks alike).
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    fastwebsockets::unmask(buf, key);
}

/// Appends the header of one final (FIN) frame with `opcode`, a masked
/// payload of `len` bytes and mask `key`; the masked payload must follow.
#[inline]
pub fn encode_masked_head(out: &mut Vec<u8>, opcode: u8, len: usize, key: [u8; 4]) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
}

/// Appends one final (FIN) frame with `opcode`, masked with `key`, to `out`.
#[inline]
pub fn encode_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8], key: [u8; 4]) {
    encode_masked_head(out, opcode, payload.len(), key);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unmask_client_frame(f: &[u8]) -> (u8, Vec<u8>) {
        let op = f[0] & 0xF;
        assert!(f[1] & 0x80 != 0, "client frames must be masked");
        let (len, mut at) = match f[1] & 0x7F {
            126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let key: [u8; 4] = f[at..at + 4].try_into().unwrap();
        at += 4;
        let mut p = f[at..at + len].to_vec();
        for (i, b) in p.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
        (op, p)
    }

    #[test]
    fn masked_roundtrip_all_length_forms() {
        for len in [0usize, 1, 7, 8, 9, 20, 125, 126, 1000, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            let mut out = Vec::new();
            encode_masked(&mut out, OP_BINARY, &payload, [0xde, 0xad, 0xbe, 0xef]);
            let (op, back) = unmask_client_frame(&out);
            assert_eq!(op, OP_BINARY);
            assert_eq!(back, payload, "len {len}");
        }
    }

    #[test]
    fn parses_server_heads() {
        assert_eq!(parse_head(&[0x82], false).unwrap(), None);
        let h = parse_head(&[0x82, 20], false).unwrap().unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.header_len, h.payload_len),
            (true, 2, 2, 20)
        );
        let h = parse_head(&[0x01, 126, 0x40, 0x00], false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.header_len, h.payload_len),
            (false, 1, 4, 16384)
        );
        assert_eq!(parse_head(&[0x82, 127, 0, 0], false).unwrap(), None);
        assert_eq!(parse_head(&[0x82, 0x85], false), Err(ProtocolError::Masked));
        assert_eq!(parse_head(&[0xC2, 1], false), Err(ProtocolError::Rsv));
        assert!(parse_head(&[0xC2, 1], true).unwrap().unwrap().compressed);
        assert_eq!(parse_head(&[0xA2, 1], true), Err(ProtocolError::Rsv));
        assert_eq!(parse_head(&[0xC0, 1], true), Err(ProtocolError::Rsv));
        assert_eq!(parse_head(&[0xC9, 1], true), Err(ProtocolError::Rsv));
        assert_eq!(parse_head(&[0x83, 1], false), Err(ProtocolError::Opcode(3)));
        assert_eq!(parse_head(&[0x09, 0], false), Err(ProtocolError::Control));
        assert_eq!(
            parse_head(&[0x89, 126, 0, 200], false),
            Err(ProtocolError::Control)
        );
    }
}
