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
//! Public so that the fuzz targets in `engine/fuzz` drive the decoder
//! exactly as the loop does.

use super::frame::{self, OpCode};
use super::{close, Event};

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
        /// The frame is text: its echo may be sent only once the frame is
        /// complete and its UTF-8 checked.
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
        /// The peer's close code ([`close::NO_STATUS_RECEIVED`] if none).
        code: u16,
        /// Our answer, unless our close frame went out already.
        reply: Option<Vec<u8>>,
    },
    /// The stream broke a rule: drop what is not yet committed and close
    /// with this code.
    Fail(u16),
}

/// Turns one decoder event into actions (the chunk is still borrowed).
/// `close_sent`: our close frame went out, so nothing but a close is
/// answered; `assembled` holds the fragmented message under way.
#[allow(clippy::box_collection)] // see `WebSocketState::assembled`
pub fn decide(
    event: Event<'_>,
    close_sent: bool,
    assembled: &mut Option<Box<Vec<u8>>>,
    actions: &mut Vec<Action>,
) {
    match event {
        Event::Echo(piece) => {
            if close_sent {
                if piece.last {
                    actions.push(Action::Discarded { len: piece.len });
                }
                return;
            }
            if piece.first && piece.header_at.is_none() {
                let header = frame::server_header_len(piece.len);
                let mut bytes = vec![0; header];
                frame::write_header_before(&mut bytes, header, piece.opcode, false, piece.len);
                actions.push(Action::Owned(bytes));
            }
            let start = if piece.first {
                piece.header_at.unwrap_or(piece.range.start)
            } else {
                piece.range.start
            };
            let text = piece.opcode == OpCode::Text;
            actions.push(Action::Echo {
                start,
                end: piece.range.end,
                text,
            });
            if piece.last {
                actions.push(Action::EndMessage { len: piece.len });
            } else if !text {
                actions.push(Action::Commit);
            }
        }
        Event::Fragment {
            opcode,
            compressed: _,
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
