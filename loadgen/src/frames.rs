//! Reads server frames from received bytes wherever they land, without
//! gathering them first.
//!
//! A driver hands over bytes as the kernel delivered them: a recv into a
//! worker-wide buffer (epoll) or a slice of a provided receive buffer
//! (io_uring). A frame may be cut anywhere by those boundaries, so the
//! [`FrameReader`] keeps only what it must between two pieces of input: at
//! most a 10-byte frame header, the number of payload bytes left in the
//! current frame, and a control frame's payload (at most 125 bytes). Data
//! payloads are never copied: each piece goes to the [`FrameSink`] in
//! place, where the echo is checked against what was sent
//! ([`crate::payload::EchoCheck`]).
//!
//! The common case, a whole unfragmented data frame inside one piece of
//! input, takes a fast path: [`FrameSink::message`] gets the whole payload
//! at once. A data message that arrives in pieces (cut by a receive
//! boundary, or fragmented by the server) goes to
//! [`FrameSink::message_start`], [`FrameSink::message_bytes`] for each
//! piece, and [`FrameSink::message_end`].
//!
//! With permessage-deflate agreed ([`FrameReader::allow_compression`]), a
//! data message's first frame may carry RSV1; the sink is told that the
//! message is compressed and inflates it before its check.

use crate::codec::{self, FrameHead, ProtocolError, OP_BINARY, OP_CONT, OP_TEXT};

/// Whether the reader should go on with the bytes that follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// The connection is finished (a Close frame): ignore the rest.
    Stop,
}

/// What the reader hands its frames to.
pub trait FrameSink {
    /// A whole, unfragmented data frame: the message's entire payload
    /// (compressed when `compressed`).
    fn message(&mut self, opcode: u8, compressed: bool, payload: &[u8]) -> Flow;
    /// The first frame of a data message that arrives in pieces
    /// (compressed when `compressed`).
    fn message_start(&mut self, opcode: u8, compressed: bool);
    /// The next payload bytes of the message begun by
    /// [`message_start`](Self::message_start).
    fn message_bytes(&mut self, bytes: &[u8]);
    /// The message begun by [`message_start`](Self::message_start) is complete.
    fn message_end(&mut self) -> Flow;
    /// A whole control frame (Ping, Pong or Close).
    fn control(&mut self, opcode: u8, payload: &[u8]) -> Flow;
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    opcode: u8,
    fin: bool,
    /// Payload bytes still to come.
    left: usize,
}

/// A streaming decoder of server frames (see the module docs).
#[derive(Debug, Clone)]
pub struct FrameReader {
    /// The start of a frame header that a receive boundary cut.
    head: [u8; 10],
    head_len: usize,
    /// The frame whose payload is being read, if any.
    frame: Option<Frame>,
    /// A control frame's payload gathered so far.
    control: [u8; 125],
    control_len: usize,
    /// A data message has begun and its final frame has not ended yet.
    in_message: bool,
    /// permessage-deflate was agreed: RSV1 may start a data message.
    compression: bool,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            head: [0; 10],
            head_len: 0,
            frame: None,
            control: [0; 125],
            control_len: 0,
            in_message: false,
            compression: false,
        }
    }
}

fn is_data(opcode: u8) -> bool {
    opcode == OP_TEXT || opcode == OP_BINARY
}

impl FrameReader {
    /// Forgets any partial frame (a new connection on the same slot).
    pub fn reset(&mut self) {
        *self = FrameReader::default();
    }

    /// permessage-deflate was agreed: accept RSV1 on a data message's
    /// first frame.
    pub fn allow_compression(&mut self) {
        self.compression = true;
    }

    /// Reads every frame, or part of a frame, in `data` and hands it to
    /// `sink`. Returns [`Flow::Stop`] as soon as the sink does.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        sink: &mut impl FrameSink,
    ) -> Result<Flow, ProtocolError> {
        loop {
            if let Some(frame) = self.frame.as_mut() {
                let n = frame.left.min(data.len());
                let (piece, rest) = data.split_at(n);
                data = rest;
                frame.left -= n;
                let frame = *frame;
                if is_control(frame.opcode) {
                    self.control[self.control_len..self.control_len + n].copy_from_slice(piece);
                    self.control_len += n;
                } else if n > 0 {
                    sink.message_bytes(piece);
                }
                if frame.left > 0 {
                    return Ok(Flow::Continue);
                }
                self.frame = None;
                let flow = if is_control(frame.opcode) {
                    let len = self.control_len;
                    self.control_len = 0;
                    sink.control(frame.opcode, &self.control[..len])
                } else if frame.fin {
                    self.in_message = false;
                    sink.message_end()
                } else {
                    Flow::Continue
                };
                if flow == Flow::Stop {
                    return Ok(Flow::Stop);
                }
                continue;
            }
            if data.is_empty() {
                return Ok(Flow::Continue);
            }
            if self.head_len > 0 {
                // Complete a header a receive boundary cut.
                let old = self.head_len;
                let take = (self.head.len() - old).min(data.len());
                self.head[old..old + take].copy_from_slice(&data[..take]);
                self.head_len += take;
                match codec::parse_head(&self.head[..self.head_len], self.compression)? {
                    Some(h) => {
                        data = &data[h.header_len - old..];
                        self.head_len = 0;
                        self.begin_frame(h, sink)?;
                    }
                    None => return Ok(Flow::Continue),
                }
                continue;
            }
            match codec::parse_head(data, self.compression)? {
                Some(h) if h.fin && is_data(h.opcode) && !self.in_message => {
                    if h.total_len() <= data.len() {
                        let flow = sink.message(
                            h.opcode,
                            h.compressed,
                            &data[h.header_len..h.total_len()],
                        );
                        data = &data[h.total_len()..];
                        if flow == Flow::Stop {
                            return Ok(Flow::Stop);
                        }
                        continue;
                    }
                    data = &data[h.header_len..];
                    self.begin_frame(h, sink)?;
                }
                Some(h) => {
                    data = &data[h.header_len..];
                    self.begin_frame(h, sink)?;
                }
                None => {
                    // Fewer bytes than the header needs (at most 9).
                    self.head[..data.len()].copy_from_slice(data);
                    self.head_len = data.len();
                    return Ok(Flow::Continue);
                }
            }
        }
    }

    /// Starts reading the payload of the frame with header `h`.
    fn begin_frame(
        &mut self,
        h: FrameHead,
        sink: &mut impl FrameSink,
    ) -> Result<(), ProtocolError> {
        match h.opcode {
            OP_TEXT | OP_BINARY => {
                if self.in_message {
                    return Err(ProtocolError::Fragmentation);
                }
                self.in_message = true;
                sink.message_start(h.opcode, h.compressed);
            }
            OP_CONT => {
                if !self.in_message {
                    return Err(ProtocolError::Fragmentation);
                }
            }
            _ => self.control_len = 0,
        }
        self.frame = Some(Frame {
            opcode: h.opcode,
            fin: h.fin,
            left: h.payload_len,
        });
        Ok(())
    }
}

fn is_control(opcode: u8) -> bool {
    opcode & 0x8 != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{OP_CLOSE, OP_PING};

    /// Records what the reader reports, joining pieces of a message.
    #[derive(Default)]
    struct Log {
        items: Vec<(u8, Vec<u8>)>,
        open: Option<(u8, Vec<u8>)>,
        whole: usize,
    }

    impl FrameSink for Log {
        fn message(&mut self, opcode: u8, _compressed: bool, payload: &[u8]) -> Flow {
            self.whole += 1;
            self.items.push((opcode, payload.to_vec()));
            Flow::Continue
        }
        fn message_start(&mut self, opcode: u8, _compressed: bool) {
            assert!(self.open.is_none());
            self.open = Some((opcode, Vec::new()));
        }
        fn message_bytes(&mut self, bytes: &[u8]) {
            self.open.as_mut().unwrap().1.extend_from_slice(bytes);
        }
        fn message_end(&mut self) -> Flow {
            let m = self.open.take().unwrap();
            self.items.push(m);
            Flow::Continue
        }
        fn control(&mut self, opcode: u8, payload: &[u8]) -> Flow {
            self.items.push((opcode, payload.to_vec()));
            if opcode == OP_CLOSE {
                Flow::Stop
            } else {
                Flow::Continue
            }
        }
    }

    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(fin as u8) << 7 | opcode];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n <= 65535 => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    fn stream() -> (Vec<u8>, Vec<(u8, Vec<u8>)>) {
        let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        let mid: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut bytes = Vec::new();
        bytes.extend(frame(true, OP_BINARY, b"hello world, 20 byte"));
        bytes.extend(frame(true, OP_PING, b"pi"));
        bytes.extend(frame(true, OP_BINARY, &mid));
        bytes.extend(frame(false, OP_TEXT, b"frag"));
        bytes.extend(frame(true, OP_PING, b""));
        bytes.extend(frame(false, OP_CONT, b"ment"));
        bytes.extend(frame(true, OP_CONT, b"ed"));
        bytes.extend(frame(true, OP_BINARY, &big));
        bytes.extend(frame(true, OP_BINARY, b""));
        let expect = vec![
            (OP_BINARY, b"hello world, 20 byte".to_vec()),
            (OP_PING, b"pi".to_vec()),
            (OP_BINARY, mid),
            (OP_PING, Vec::new()),
            (OP_TEXT, b"fragmented".to_vec()),
            (OP_BINARY, big),
            (OP_BINARY, Vec::new()),
        ];
        (bytes, expect)
    }

    #[test]
    fn whole_input_takes_the_fast_path() {
        let (bytes, expect) = stream();
        let mut log = Log::default();
        let mut r = FrameReader::default();
        assert_eq!(r.feed(&bytes, &mut log), Ok(Flow::Continue));
        assert_eq!(log.items, expect);
        assert_eq!(log.whole, 4);
    }

    #[test]
    fn any_cut_gives_the_same_frames() {
        let (bytes, expect) = stream();
        // Every piece size from 1 to 40, and a pseudo-random mix.
        let mut seed = 12345u64;
        for step in (1..=40).chain([0]) {
            let mut log = Log::default();
            let mut r = FrameReader::default();
            let mut at = 0;
            while at < bytes.len() {
                let n = if step > 0 {
                    step
                } else {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    1 + (seed >> 33) as usize % 5000
                };
                let end = (at + n).min(bytes.len());
                assert_eq!(r.feed(&bytes[at..end], &mut log), Ok(Flow::Continue));
                at = end;
            }
            assert_eq!(log.items, expect, "pieces of {step}");
        }
    }

    #[test]
    fn close_stops_and_bad_fragmentation_fails() {
        let mut bytes = frame(true, OP_CLOSE, &1000u16.to_be_bytes());
        bytes.extend(frame(true, OP_BINARY, b"after"));
        let mut log = Log::default();
        assert_eq!(
            FrameReader::default().feed(&bytes, &mut log),
            Ok(Flow::Stop)
        );
        assert_eq!(log.items.len(), 1);
        let cont = frame(true, OP_CONT, b"x");
        assert_eq!(
            FrameReader::default().feed(&cont, &mut Log::default()),
            Err(ProtocolError::Fragmentation)
        );
        let mut two = frame(false, OP_BINARY, b"a");
        two.extend(frame(true, OP_BINARY, b"b"));
        assert_eq!(
            FrameReader::default().feed(&two, &mut Log::default()),
            Err(ProtocolError::Fragmentation)
        );
    }
}
