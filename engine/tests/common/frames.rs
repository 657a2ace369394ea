//! WebSocket frames built and parsed by hand (RFC 6455, section 5.2), so
//! tests can send exactly the bytes a protocol case needs, including invalid
//! ones, and see exactly what the server wrote back.

use std::fmt;

/// A frame opcode, including the reserved values a client must not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: a UTF-8 text message (or its first fragment).
    Text,
    /// 0x2: a binary message (or its first fragment).
    Binary,
    /// 0x8: close, with an optional status code and reason.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
    /// Any opcode RFC 6455 reserves (0x3-0x7, 0xB-0xF).
    Reserved(u8),
}

impl OpCode {
    /// The opcode for the low four bits of a frame's first byte.
    pub fn from_bits(bits: u8) -> OpCode {
        match bits & 0x0F {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => OpCode::Reserved(other),
        }
    }

    /// The four bits that encode this opcode.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
            OpCode::Reserved(bits) => bits & 0x0F,
        }
    }
}

/// One WebSocket frame, without its masking (the encoder adds the mask).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// The FIN bit: this frame ends its message.
    pub fin: bool,
    /// The three RSV bits, in the low bits (RSV1 = 0b100).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The unmasked payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// A final frame with no reserved bits set.
    pub fn new(opcode: OpCode, payload: impl Into<Vec<u8>>) -> Frame {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            payload: payload.into(),
        }
    }

    /// A final text frame. Takes bytes so tests can send invalid UTF-8.
    pub fn text(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(OpCode::Text, payload)
    }

    /// A final binary frame.
    pub fn binary(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(OpCode::Binary, payload)
    }

    /// A final continuation frame.
    pub fn continuation(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(OpCode::Continuation, payload)
    }

    /// A ping frame.
    pub fn ping(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(OpCode::Ping, payload)
    }

    /// A pong frame.
    pub fn pong(payload: impl Into<Vec<u8>>) -> Frame {
        Frame::new(OpCode::Pong, payload)
    }

    /// A close frame carrying `code` and `reason`.
    pub fn close(code: u16, reason: &str) -> Frame {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        Frame::new(OpCode::Close, payload)
    }

    /// One message of type `opcode` split into frames carrying `parts`: the
    /// first frame has `opcode`, the others are continuations, the last is final.
    pub fn fragments(opcode: OpCode, parts: &[&[u8]]) -> Vec<Frame> {
        let last = parts.len().saturating_sub(1);
        parts
            .iter()
            .enumerate()
            .map(|(index, part)| {
                let frame_opcode = if index == 0 {
                    opcode
                } else {
                    OpCode::Continuation
                };
                Frame {
                    fin: index == last,
                    ..Frame::new(frame_opcode, *part)
                }
            })
            .collect()
    }

    /// The same frame with FIN cleared: more fragments follow.
    pub fn not_final(mut self) -> Frame {
        self.fin = false;
        self
    }

    /// The same frame with the given RSV bits (0b000..=0b111) set.
    pub fn with_rsv(mut self, rsv: u8) -> Frame {
        self.rsv = rsv & 0b111;
        self
    }

    /// The status code of a close frame, if it is one and carries a code.
    pub fn close_code(&self) -> Option<u16> {
        match (self.opcode, self.payload.as_slice()) {
            (OpCode::Close, [high, low, ..]) => Some(u16::from_be_bytes([*high, *low])),
            _ => None,
        }
    }

    /// The frame as a client sends it: masked with `mask`.
    pub fn encode_masked(&self, mask: [u8; 4]) -> Vec<u8> {
        let mut wire = self.encode_header(MASK_BIT);
        wire.extend_from_slice(&mask);
        wire.extend(
            self.payload
                .iter()
                .zip(mask.iter().cycle())
                .map(|(byte, key)| byte ^ key),
        );
        wire
    }

    /// The frame without a mask, as only a server may send it: a client
    /// frame like this is a protocol error (RFC 6455 §5.1).
    pub fn encode_unmasked(&self) -> Vec<u8> {
        let mut wire = self.encode_header(0);
        wire.extend_from_slice(&self.payload);
        wire
    }

    /// The first byte and the minimal length encoding, with `mask_bit`
    /// (`MASK_BIT` or 0) in the second byte; no masking key.
    fn encode_header(&self, mask_bit: u8) -> Vec<u8> {
        let mut wire = Vec::with_capacity(self.payload.len() + 14);
        wire.push(u8::from(self.fin) << 7 | self.rsv << 4 | self.opcode.bits());
        match self.payload.len() {
            len @ 0..=125 => wire.push(mask_bit | len as u8),
            len @ 126..=0xFFFF => {
                wire.push(mask_bit | 126);
                wire.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                wire.push(mask_bit | 127);
                wire.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        wire
    }
}

/// The MASK bit in a frame header's second byte.
const MASK_BIT: u8 = 0x80;

impl fmt::Debug for Frame {
    /// Shows at most the first 32 payload bytes, so a failing assertion on a
    /// 1 MiB frame stays readable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 32;
        let shown = &self.payload[..self.payload.len().min(SHOWN)];
        f.debug_struct("Frame")
            .field("fin", &self.fin)
            .field("rsv", &self.rsv)
            .field("opcode", &self.opcode)
            .field("payload_len", &self.payload.len())
            .field("payload_start", &String::from_utf8_lossy(shown))
            .finish()
    }
}

/// A frame decoded from the wire, with what the wire said about masking.
#[derive(Debug)]
pub struct DecodedFrame {
    /// The frame, unmasked if it was masked.
    pub frame: Frame,
    /// Whether the MASK bit was set (a server must never set it).
    pub masked: bool,
    /// How many bytes of the input the frame took.
    pub wire_len: usize,
}

/// Decodes the frame at the start of `wire`, or returns `None` if `wire`
/// does not hold a whole frame yet.
pub fn decode(wire: &[u8]) -> Option<DecodedFrame> {
    let [first, second, ..] = *wire else {
        return None;
    };
    let masked = second & 0x80 != 0;
    let (payload_len, mut offset) = match second & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes(wire.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(wire.get(2..10)?.try_into().ok()?), 10),
        len => (u64::from(len), 2),
    };
    let mask = if masked {
        let key: [u8; 4] = wire.get(offset..offset + 4)?.try_into().ok()?;
        offset += 4;
        Some(key)
    } else {
        None
    };
    let payload_len = usize::try_from(payload_len).expect("frame length fits in memory");
    let mut payload = wire.get(offset..offset + payload_len)?.to_vec();
    if let Some(key) = mask {
        for (byte, key) in payload.iter_mut().zip(key.iter().cycle()) {
            *byte ^= key;
        }
    }
    Some(DecodedFrame {
        frame: Frame {
            fin: first & 0x80 != 0,
            rsv: (first >> 4) & 0b111,
            opcode: OpCode::from_bits(first),
            payload,
        },
        masked,
        wire_len: offset + payload_len,
    })
}
