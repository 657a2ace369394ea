//! What each decoder event asks of a WebSocket connection on the io_uring
//! path, with no I/O in it: [`decide`] turns one [`Event`] into
//! [`Action`]s, which the loop (`event_loop::Loop::feed`) applies once the
//! decoder has let go of the receive buffer.
//!
//! The echo of a whole-message frame is planned as ranges of the buffer it
//! arrived in (its header written in place by the decoder, or an owned one
//! when the client's header was cut across buffers); fragmented messages are
//! reassembled and echoed as one frame of our own; pings are answered; a
//! close is echoed; a failure becomes our close frame with its code.
//!
//! A compressed message (permessage-deflate) is inflated as it arrives, to
//! check it ([`crate::protocol::deflate`]). With passthrough its echo is
//! planned exactly like an uncompressed one, from the receive buffers with
//! RSV1 kept in the header, but held until the whole frame has been checked;
//! otherwise the echo is the server's own compressed frame.
//!
//! Public so that the fuzz targets in `engine/fuzz` drive the decoder
//! exactly as the loop does.

use super::close;
use super::close_code::CloseCode;
use super::deflate::{ConnDeflate, Echo, Piece, WorkerDeflate};
use super::frame::{self, OpCode};
use super::{DataFrame, Event};

/// What decoding one chunk asks of the connection, applied once the
/// decoder has let go of the chunk (the buffer is borrowed while decoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bytes `start..end` of the chunk go out as they are.
    Echo {
        /// First byte (the in-place echo header on a frame's first piece).
        start: usize,
        /// One past the last byte.
        end: usize,
        /// The frame is text or compressed: its echo may be sent only once
        /// the frame is complete and checked (UTF-8, inflation).
        text: bool,
    },
    /// Bytes of our own go out.
    Owned(Vec<u8>),
    /// Everything queued so far may be sent (a binary frame streams).
    Commit,
    /// An echoed message of `len` bytes is complete: everything queued may
    /// be sent.
    EndMessage {
        /// The message's payload length.
        len: u64,
    },
    /// A message of `len` bytes arrived after our close: not echoed.
    Discarded {
        /// The message's payload length.
        len: u64,
    },
    /// A pong arrived.
    Pong,
    /// A valid close frame with this code; `reply` echoes it.
    Close {
        /// The peer's close code ([`CloseCode::NO_STATUS_RECEIVED`] if none).
        code: CloseCode,
        /// Our answer, unless our close frame went out already.
        reply: Option<Vec<u8>>,
    },
    /// The stream broke a rule: drop what is not yet committed and close
    /// with this code.
    Fail(CloseCode),
}

/// A connection's permessage-deflate state and its worker's, for
/// [`decide`].
#[derive(Debug)]
pub struct Compression<'a> {
    /// The connection's state (the agreed parameters, a message in flight).
    pub conn: &'a mut ConnDeflate,
    /// The worker's inflater and deflaters.
    pub worker: &'a mut WorkerDeflate,
    /// `--max-message-size`: the most a message may inflate to.
    pub max_message: u64,
}

/// Turns one decoder event into actions (the chunk is still borrowed).
/// `close_sent`: our close frame went out, so nothing but a close is
/// answered; `assembled` holds the fragmented message under way;
/// `compression` is there once permessage-deflate was agreed.
#[allow(clippy::box_collection)] // see `WebSocketState::assembled`
pub fn decide(
    event: Event<'_>,
    close_sent: bool,
    assembled: &mut Option<Box<Vec<u8>>>,
    compression: Option<&mut Compression<'_>>,
    actions: &mut Vec<Action>,
) {
    if let Some(Action::Fail(_)) = actions.last() {
        // A compressed message failed its checks here; the decoder, which
        // did not see it, goes on reporting the rest of the chunk.
        return;
    }
    match event {
        Event::Echo(piece) => {
            if close_sent {
                if piece.last {
                    actions.push(Action::Discarded { len: piece.len });
                }
                return;
            }
            echo_in_place(&piece, piece.opcode == OpCode::Text, actions);
        }
        Event::Compressed { frame, bytes } => {
            let Some(compression) = compression else {
                // The decoder reports compressed frames only once compression
                // was enabled, which comes with this state.
                actions.push(Action::Fail(CloseCode::PROTOCOL_ERROR));
                return;
            };
            if close_sent {
                if frame.last {
                    actions.push(Action::Discarded { len: frame.len });
                }
                return;
            }
            let piece = Piece {
                bytes,
                start: frame.first,
                end: frame.last,
                text: frame.opcode == OpCode::Text,
            };
            let passthrough = compression.conn.agreed().passthrough();
            match compression.inflate(piece) {
                Err(code) => actions.push(Action::Fail(code)),
                Ok(_) if passthrough => echo_in_place(&frame, true, actions),
                Ok(None) => {}
                Ok(Some(echo)) => {
                    let payload = match echo {
                        Echo::Recompressed(payload) => payload,
                        Echo::Passthrough => unreachable!("passthrough was ruled out"),
                    };
                    actions.push(Action::Owned(frame::encode_message(
                        frame.opcode,
                        true,
                        &payload,
                    )));
                    actions.push(Action::EndMessage { len: frame.len });
                }
            }
        }
        Event::Fragment {
            opcode,
            compressed: true,
            bytes,
            message_end,
        } => {
            let Some(compression) = compression else {
                actions.push(Action::Fail(CloseCode::PROTOCOL_ERROR));
                return;
            };
            if close_sent {
                if message_end {
                    actions.push(Action::Discarded { len: 0 });
                }
                return;
            }
            let piece = Piece {
                bytes,
                start: !compression.conn.in_flight(),
                end: message_end,
                text: opcode == OpCode::Text,
            };
            let passthrough = compression.conn.agreed().passthrough();
            if passthrough {
                assembled
                    .get_or_insert_with(Box::default)
                    .extend_from_slice(bytes);
            }
            match compression.inflate(piece) {
                Err(code) => actions.push(Action::Fail(code)),
                Ok(None) => {}
                Ok(Some(echo)) => {
                    let payload = match echo {
                        Echo::Passthrough => *assembled.take().unwrap_or_default(),
                        Echo::Recompressed(payload) => payload,
                    };
                    actions.push(Action::Owned(frame::encode_message(opcode, true, &payload)));
                    actions.push(Action::EndMessage {
                        len: payload.len() as u64,
                    });
                }
            }
        }
        Event::Fragment {
            opcode,
            compressed: false,
            bytes,
            message_end,
        } => {
            let message = assembled.get_or_insert_with(Box::default);
            message.extend_from_slice(bytes);
            if message_end {
                let message = assembled.take().expect("assembled above");
                let len = message.len() as u64;
                if close_sent {
                    actions.push(Action::Discarded { len });
                } else {
                    actions.push(Action::Owned(frame::encode(opcode, &message)));
                    actions.push(Action::EndMessage { len });
                }
            }
        }
        Event::Ping(payload) => {
            if !close_sent {
                actions.push(Action::Owned(frame::encode(OpCode::Pong, payload)));
                actions.push(Action::Commit);
            }
        }
        Event::Pong(_) => actions.push(Action::Pong),
        Event::Close(payload) => actions.push(Action::Close {
            code: close::code_of(payload),
            reply: (!close_sent).then(|| frame::encode(OpCode::Close, payload)),
        }),
        Event::Fail(code) => actions.push(Action::Fail(code)),
    }
}

/// Plans the echo of a piece of a whole-message frame from the chunk it
/// lies in. `held`: the echo waits for the end of the frame (text, or
/// compressed, still to be checked); otherwise each piece may go at once.
fn echo_in_place(piece: &DataFrame, held: bool, actions: &mut Vec<Action>) {
    if piece.first && piece.header_at.is_none() {
        let header = frame::server_header_len(piece.len);
        let mut bytes = vec![0; header];
        frame::write_header_before(
            &mut bytes,
            header,
            piece.opcode,
            piece.compressed,
            piece.len,
        );
        actions.push(Action::Owned(bytes));
    }
    let start = if piece.first {
        piece.header_at.unwrap_or(piece.range.start)
    } else {
        piece.range.start
    };
    actions.push(Action::Echo {
        start,
        end: piece.range.end,
        text: held,
    });
    if piece.last {
        actions.push(Action::EndMessage { len: piece.len });
    } else if !held {
        actions.push(Action::Commit);
    }
}

impl Compression<'_> {
    /// Feeds the next compressed bytes of a message to the inflater.
    fn inflate(&mut self, piece: Piece<'_>) -> Result<Option<Echo>, CloseCode> {
        self.conn.feed(self.worker, piece, self.max_message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::deflate::raw_stream::{Deflater, Inflater};
    use crate::protocol::deflate::{negotiate, Policy};
    use crate::protocol::frame::client_frame;
    use crate::protocol::Decoder;

    /// What the connection sends for `wire`, fed in chunks of `chunk`
    /// bytes, with permessage-deflate agreed by `offer`: the bytes of every
    /// committed echo in order, and the close code of a failure.
    fn serve(offer: &str, wire: &[u8], chunk: usize, max: u64) -> (Vec<u8>, Option<CloseCode>) {
        let agreed = negotiate([offer.as_bytes()], Policy::default()).expect("agreed");
        let mut conn = ConnDeflate::new(agreed);
        let mut worker = WorkerDeflate::new();
        let mut decoder = Decoder::new();
        decoder.enable_compression();
        let mut assembled = None;
        let (mut out, mut pending) = (Vec::new(), Vec::new());
        let mut failed = None;
        for part in wire.chunks(chunk) {
            if failed.is_some() {
                // The loop closes the connection: nothing more is decoded.
                break;
            }
            let mut part = part.to_vec();
            let mut actions = Vec::new();
            decoder.feed(&mut part, max as usize, |event| {
                let mut compression = Compression {
                    conn: &mut conn,
                    worker: &mut worker,
                    max_message: max,
                };
                decide(
                    event,
                    false,
                    &mut assembled,
                    Some(&mut compression),
                    &mut actions,
                );
            });
            for action in actions {
                match action {
                    Action::Echo { start, end, .. } => pending.extend_from_slice(&part[start..end]),
                    Action::Owned(bytes) => pending.extend(bytes),
                    Action::Commit | Action::EndMessage { .. } => out.append(&mut pending),
                    Action::Fail(code) => {
                        // What was not committed is dropped, as the loop does.
                        pending.clear();
                        failed = Some(code);
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        (out, failed)
    }

    fn compress(message: &[u8]) -> Vec<u8> {
        let mut payload = Vec::new();
        Deflater::new(15).compress(message, &mut payload);
        payload
    }

    /// Splits a server frame sequence into (first byte, payload) pairs.
    fn frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            let (len, at) = match wire[1] {
                126 => (u16::from_be_bytes([wire[2], wire[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            out.push((wire[0], wire[at..at + len].to_vec()));
            wire = &wire[at + len..];
        }
        out
    }

    fn inflate(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut inflater, mut left, mut scratch) = (Inflater::new(), 1 << 30, [0u8; 4096]);
        let mut sink = |piece: &[u8]| {
            out.extend_from_slice(piece);
            true
        };
        inflater
            .inflate(payload, &mut scratch, &mut left, &mut sink)
            .unwrap();
        inflater.finish(&mut scratch, &mut left, &mut sink).unwrap();
        out
    }

    #[test]
    fn passthrough_echoes_the_clients_compressed_bytes_at_every_split() {
        let message = crate::protocol::deflate::json_like(3000);
        let payload = compress(&message);
        let mut wire = client_frame(0xC1, &payload, [1, 2, 3, 4]);
        wire.extend(client_frame(0x82, b"plain", [5, 6, 7, 8]));
        for chunk in [1, 2, 7, 100, wire.len()] {
            let (out, failed) = serve("permessage-deflate", &wire, chunk, 1 << 20);
            assert_eq!(failed, None);
            let frames = frames(&out);
            assert_eq!(frames[0], (0xC1, payload.clone()), "chunk {chunk}");
            assert_eq!(frames[1], (0x82, b"plain".to_vec()), "chunk {chunk}");
        }
    }

    #[test]
    fn fragmented_compressed_messages_are_echoed_as_one_frame() {
        let message = crate::protocol::deflate::json_like(2000);
        let payload = compress(&message);
        let (a, b) = payload.split_at(payload.len() / 3);
        let mut wire = client_frame(0x41, a, [1, 2, 3, 4]);
        wire.extend(client_frame(0x89, b"ping", [1, 1, 1, 1]));
        wire.extend(client_frame(0x80, b, [4, 3, 2, 1]));
        for chunk in [3, 50, wire.len()] {
            let (out, failed) = serve("permessage-deflate", &wire, chunk, 1 << 20);
            assert_eq!(failed, None);
            let expected = [(0x8A, b"ping".to_vec()), (0xC1, payload.clone())];
            assert_eq!(frames(&out), expected, "chunk {chunk}");
        }
    }

    #[test]
    fn a_smaller_server_window_gets_a_recompressed_echo() {
        let message = crate::protocol::deflate::json_like(5000);
        let wire = client_frame(0xC1, &compress(&message), [1, 2, 3, 4]);
        for chunk in [10, wire.len()] {
            let (out, failed) = serve(
                "permessage-deflate; server_max_window_bits=9",
                &wire,
                chunk,
                1 << 20,
            );
            assert_eq!(failed, None);
            let frames = frames(&out);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].0, 0xC1);
            assert_eq!(inflate(&frames[0].1), message);
        }
    }

    #[test]
    fn bad_compressed_input_fails_with_its_code_and_nothing_of_it_is_sent() {
        let mut bad_text = crate::protocol::deflate::json_like(3000);
        bad_text[2500] = 0xff;
        let bomb = compress(&vec![0u8; 1 << 20]);
        let cases: [(Vec<u8>, u16); 4] = [
            (client_frame(0xC1, &compress(&bad_text), [1, 2, 3, 4]), 1007),
            (client_frame(0xC2, &[0xff, 0xff, 0xff], [1, 2, 3, 4]), 1007),
            (client_frame(0xC2, &bomb, [1, 2, 3, 4]), 1009),
            (
                [
                    client_frame(0x42, &compress(b"hello"), [1, 2, 3, 4]),
                    client_frame(0xC0, b"y", [0; 4]),
                ]
                .concat(),
                1002,
            ),
        ];
        for (wire, code) in cases {
            for chunk in [5, wire.len()] {
                let (out, failed) = serve("permessage-deflate", &wire, chunk, 64 << 10);
                assert_eq!(failed, Some(CloseCode::new(code)), "chunk {chunk}, {code}");
                assert!(out.is_empty(), "chunk {chunk}, {code}: {out:x?}");
            }
        }
    }
}
