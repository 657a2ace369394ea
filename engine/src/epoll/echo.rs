//! The echo loop: every text and binary message goes back as it came.
//!
//! Frames are read with fastwebsockets and echoed with
//! `Frame::new(fin, opcode, None, payload)`: the mask is dropped because a
//! server must never send masked frames (RFC 6455, section 5.1). Close
//! frames are handled here rather than by fastwebsockets' auto-close, which
//! echoes oversized close frames and leaves no room for our own checks.
//!
//! With permessage-deflate the text watch has cleared RSV1 below the codec
//! (which refuses it) and made compressed text binary; the session says
//! which messages were compressed ([`Session::take_message_start`]). A
//! compressed message is fed to the inflater frame by frame as the codec
//! returns it ([`crate::protocol::deflate`]), and its echo, the client's
//! own compressed payload or the server's, goes out with RSV1 set by the
//! session stream.

use std::cell::RefCell;
use std::rc::Rc;

use fastwebsockets::{Frame, OpCode, Payload, WebSocket, WebSocketError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::epoll::message::{MessageAssembler, MessageError};
use crate::epoll::session::Session;
use crate::metrics::WorkerStats;
use crate::protocol::deflate::{Agreed, ConnDeflate, Echo, Piece, WorkerDeflate};
use crate::protocol::frame::MAX_CONTROL_PAYLOAD;
use crate::protocol::{close, CloseCode};

/// permessage-deflate on one connection: its state and its worker's.
pub struct Compression<'a> {
    conn: ConnDeflate,
    worker: &'a RefCell<Option<Box<WorkerDeflate>>>,
}

impl<'a> Compression<'a> {
    /// A connection that agreed on `agreed`, on the worker whose state is
    /// `worker` (made here if this is the worker's first).
    pub fn new(agreed: Agreed, worker: &'a RefCell<Option<Box<WorkerDeflate>>>) -> Self {
        worker.borrow_mut().get_or_insert_with(Box::default);
        Self {
            conn: ConnDeflate::new(agreed),
            worker,
        }
    }

    /// Feeds the next compressed bytes of a message to the inflater.
    fn feed(&mut self, piece: Piece<'_>, max_message: usize) -> Result<Option<Echo>, CloseCode> {
        let mut worker = self.worker.borrow_mut();
        let worker = worker.as_mut().expect("made with the connection");
        self.conn.feed(worker, piece, max_message as u64)
    }
}

/// Why the loop stops after a frame.
enum Stop {
    /// The transport failed; nothing more can be sent.
    Transport,
    /// Close the connection with this code.
    Fail(CloseCode),
}

impl From<MessageError> for Stop {
    fn from(error: MessageError) -> Self {
        Stop::Fail(error.close_code())
    }
}

/// How the connection ended, for logs.
#[derive(Debug, PartialEq, Eq)]
pub enum EchoEnd {
    /// The close handshake completed (either side started it).
    Closed,
    /// We closed with this code after a protocol, UTF-8 or size error.
    Failed(CloseCode),
    /// The transport went away (EOF, reset, keep-alive timeout).
    Dropped,
    /// The peer did not read its echoes: a write stayed blocked for
    /// `--backpressure-timeout`. The connection is dropped without the 1008
    /// close frame, which could not get through the full send buffer; the
    /// sweep that detected it counted the close
    /// ([`WorkerStats::backpressure_closed`]).
    BackpressureTimeout,
}

/// Runs the echo loop until the connection closes, counting messages, bytes
/// and close codes in `stats` (the worker's own block).
pub async fn run<S>(
    ws: &mut WebSocket<S>,
    session: Rc<Session>,
    stats: &WorkerStats,
    max_message_size: usize,
    compression: Option<Compression<'_>>,
) -> EchoEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let end = echo_loop(ws, &session, stats, max_message_size, compression).await;
    // After a backpressure timeout every read and write fails, whichever
    // step of the loop saw it first.
    if session.backpressure_timed_out() {
        return EchoEnd::BackpressureTimeout;
    }
    end
}

/// The loop behind [`run`].
async fn echo_loop<S>(
    ws: &mut WebSocket<S>,
    session: &Session,
    stats: &WorkerStats,
    max_message_size: usize,
    mut compression: Option<Compression<'_>>,
) -> EchoEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    ws.set_auto_close(false);
    ws.set_auto_pong(true);
    // fastwebsockets refuses frames with `len >= limit`; ours is inclusive.
    ws.set_max_message_size(max_message_size.saturating_add(1));
    let mut message = MessageAssembler::new(max_message_size);
    // The opcode of the compressed fragmented message under way.
    let mut compressed_message: Option<OpCode> = None;
    loop {
        let frame = match ws.read_frame().await {
            Ok(frame) => frame,
            Err(e) => {
                // The transport refused the stream below the codec: invalid
                // UTF-8 mid-frame or an unmasked frame (see text_watch).
                let code = session.refused_with().or_else(|| close_code_for(&e));
                return fail_on(ws, session, stats, code).await;
            }
        };
        let step = match frame.opcode {
            OpCode::Text | OpCode::Binary if message.in_progress() => {
                Err(MessageError::OutOfOrder.into())
            }
            OpCode::Text | OpCode::Binary => match session.take_message_start(frame.opcode) {
                (true, opcode) => {
                    let piece = Piece {
                        bytes: &frame.payload,
                        start: true,
                        end: frame.fin,
                        text: opcode == OpCode::Text,
                    };
                    match inflate(&mut compression, piece, max_message_size) {
                        Err(code) => Err(Stop::Fail(code)),
                        Ok(Some(checked)) => {
                            let payload = compressed_payload(checked, frame.payload);
                            echo(ws, session, stats, opcode, true, payload).await
                        }
                        Ok(None) => {
                            compressed_message = Some(opcode);
                            message
                                .start(frame.opcode, &frame.payload)
                                .map_err(Stop::from)
                        }
                    }
                }
                (false, opcode) if frame.fin => {
                    echo(ws, session, stats, opcode, false, frame.payload).await
                }
                (false, opcode) => message.start(opcode, &frame.payload).map_err(Stop::from),
            },
            OpCode::Continuation => {
                match (message.push(&frame.payload, frame.fin), compressed_message) {
                    (Err(e), _) => Err(e.into()),
                    (Ok(whole), Some(opcode)) => {
                        let piece = Piece {
                            bytes: &frame.payload,
                            start: false,
                            end: frame.fin,
                            text: opcode == OpCode::Text,
                        };
                        match (inflate(&mut compression, piece, max_message_size), whole) {
                            (Err(code), _) => Err(Stop::Fail(code)),
                            (Ok(Some(checked)), Some((_, data))) => {
                                compressed_message = None;
                                let payload = compressed_payload(checked, Payload::Owned(data));
                                echo(ws, session, stats, opcode, true, payload).await
                            }
                            (Ok(_), _) => Ok(()),
                        }
                    }
                    (Ok(Some((opcode, data))), None) => {
                        echo(ws, session, stats, opcode, false, Payload::Owned(data)).await
                    }
                    (Ok(None), None) => Ok(()),
                }
            }
            OpCode::Close => return answer_close(ws, session, stats, frame.payload).await,
            OpCode::Pong if frame.payload.len() > MAX_CONTROL_PAYLOAD => {
                Err(Stop::Fail(CloseCode::PROTOCOL_ERROR))
            }
            OpCode::Pong => {
                session.pong_received();
                Ok(())
            }
            // auto_pong answers pings inside read_frame and never returns them.
            OpCode::Ping => Ok(()),
        };
        match step {
            Ok(()) => {}
            Err(Stop::Transport) => return EchoEnd::Dropped,
            Err(Stop::Fail(code)) => return fail_on(ws, session, stats, Some(code)).await,
        }
    }
}

/// Feeds compressed bytes to the connection's inflater; a compressed
/// message without the extension agreed cannot reach here (the text watch
/// rewrites nothing then), but would be a protocol error.
fn inflate(
    compression: &mut Option<Compression<'_>>,
    piece: Piece<'_>,
    max_message: usize,
) -> Result<Option<Echo>, CloseCode> {
    match compression {
        Some(compression) => compression.feed(piece, max_message),
        None => Err(CloseCode::PROTOCOL_ERROR),
    }
}

/// The payload of a compressed message's echo: the client's own compressed
/// bytes (passthrough) or the server's.
fn compressed_payload(echo: Echo, received: Payload<'_>) -> Payload<'_> {
    match echo {
        Echo::Passthrough => received,
        Echo::Recompressed(payload) => Payload::Owned(payload),
    }
}

/// Sends one whole message back unmasked; `compressed`: with RSV1 set.
async fn echo<S>(
    ws: &mut WebSocket<S>,
    session: &Session,
    stats: &WorkerStats,
    opcode: OpCode,
    compressed: bool,
    payload: Payload<'_>,
) -> Result<(), Stop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let len = payload.len();
    stats.message_received(len);
    if session.close_sent() {
        // We are closing (shutdown): no data frames after our close frame.
        return Ok(());
    }
    if compressed {
        session.compress_next_frame();
    }
    ws.write_frame(Frame::new(true, opcode, None, payload))
        .await
        .map_err(|_| Stop::Transport)?;
    stats.message_sent(len);
    Ok(())
}

/// Answers a peer's close frame with the same code and reason, after checking
/// it; the caller then drops the connection, which closes TCP.
async fn answer_close<S>(
    ws: &mut WebSocket<S>,
    session: &Session,
    stats: &WorkerStats,
    payload: Payload<'_>,
) -> EchoEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let code = close::code_of(&payload);
    stats.close_received(code);
    if let Err(code) = close::check_payload(&payload) {
        return fail_on(ws, session, stats, Some(code)).await;
    }
    if !session.close_sent()
        && ws
            .write_frame(Frame::new(true, OpCode::Close, None, payload))
            .await
            .is_ok()
    {
        stats.close_sent(code);
    }
    EchoEnd::Closed
}

/// The close code for a codec error; `None` when the transport is gone.
fn close_code_for(error: &WebSocketError) -> Option<CloseCode> {
    match error {
        WebSocketError::InvalidUTF8 => Some(CloseCode::INVALID_PAYLOAD),
        WebSocketError::FrameTooLarge => Some(CloseCode::MESSAGE_TOO_BIG),
        WebSocketError::IoError(_)
        | WebSocketError::UnexpectedEOF
        | WebSocketError::ConnectionClosed => None,
        _ => Some(CloseCode::PROTOCOL_ERROR),
    }
}

/// Sends close `code` (unless a close went out already) and ends the loop.
async fn fail_on<S>(
    ws: &mut WebSocket<S>,
    session: &Session,
    stats: &WorkerStats,
    code: Option<CloseCode>,
) -> EchoEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(code) = code else {
        return EchoEnd::Dropped;
    };
    if !session.close_sent() && ws.write_frame(Frame::close(code.get(), b"")).await.is_ok() {
        stats.close_sent(code);
    }
    EchoEnd::Failed(code)
}
