//! The WebSocket echo path: a received chunk is decoded in place, and what
//! each event asks for ([`Action`]) is queued: ranges of the receive buffer,
//! bytes of our own, commits, our close frame; and the ping or close 1001
//! that waited for the end of a frame.

use super::Loop;
use crate::protocol::frame;
use crate::protocol::plan::{decide, Action, Compression};
use crate::runtime::keep_alive::Control;
use crate::uring::conn::Phase;
use crate::uring::outbox::{copy_into, Outbox, Piece};

/// Text frames up to this size are echoed from the receive buffers; larger
/// ones are copied out while they arrive, so that one frame cannot hold
/// more of the shared ring than this until its UTF-8 check completes.
pub const TEXT_IN_PLACE_LIMIT: usize = 64 * 1024;
/// A text frame still arriving in more pieces than this is copied out of
/// the ring too (a client that trickles a frame in tiny segments would
/// otherwise keep one buffer per segment from going back to the ring).
const TEXT_IN_PLACE_PIECES: usize = 8;

/// Where the chunk being decoded lives.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// Bytes `offset..` of receive buffer `id`.
    Ring { id: u16, offset: usize },
    /// Bytes hyper read past the upgrade request (copied when echoed).
    Heap(&'a [u8]),
}

impl Loop {
    /// Decodes `len` bytes of `source` for WebSocket `key` and applies what
    /// they ask for.
    pub(super) fn feed(&mut self, key: usize, source: Source<'_>, len: usize) {
        let max_message = self.limits.max_message;
        let mut actions = std::mem::take(&mut self.actions);
        let conn = &mut self.conns[key];
        let Phase::WebSocket(ws) = &mut conn.phase else {
            return;
        };
        let mut heap_copy;
        let chunk: &mut [u8] = match source {
            Source::Ring { id, offset } => self.buffers.chunk_mut(id, offset, len),
            Source::Heap(bytes) => {
                heap_copy = bytes.to_vec();
                &mut heap_copy
            }
        };
        let close_sent = ws.owed.close_sent();
        let assembled = &mut ws.assembled;
        let mut compression = match (ws.deflate.as_deref_mut(), self.deflate.as_deref_mut()) {
            (Some(conn), Some(worker)) => Some(Compression {
                conn,
                worker,
                max_message: max_message as u64,
            }),
            _ => None,
        };
        ws.decoder.feed(chunk, max_message, |event| {
            decide(
                event,
                close_sent,
                assembled,
                compression.as_mut(),
                &mut actions,
            )
        });
        let chunk: &[u8] = chunk;
        // The chunk's bytes are only read from here on.
        let heap = match source {
            Source::Heap(_) => Some(chunk.to_vec()),
            Source::Ring { .. } => None,
        };
        for action in actions.drain(..) {
            self.apply(key, source, heap.as_deref(), action);
        }
        self.actions = actions;
        self.check_backpressure(key);
    }

    pub(super) fn apply(
        &mut self,
        key: usize,
        source: Source<'_>,
        heap: Option<&[u8]>,
        action: Action,
    ) {
        let stats = self.stats.clone();
        match action {
            Action::Echo { start, end, text } => {
                let piece = match (source, heap) {
                    (Source::Ring { id, offset }, _) => {
                        self.buffers.hold(id);
                        Piece::Ring {
                            id,
                            start: (offset + start) as u32,
                            end: (offset + end) as u32,
                        }
                    }
                    (Source::Heap(_), Some(bytes)) => Piece::Owned {
                        bytes: bytes[start..end].to_vec(),
                        start: 0,
                    },
                    (Source::Heap(_), None) => {
                        unreachable!("heap chunks are kept for their echoes")
                    }
                };
                self.queue_echo_piece(key, piece, text);
            }
            Action::Owned(bytes) => self.queue(key, Piece::Owned { bytes, start: 0 }),
            Action::Commit => self.commit(key),
            Action::EndMessage { len } => {
                stats.message_received(len as usize);
                stats.message_sent(len as usize);
                if let Some(ws) = self.conns[key].websocket() {
                    ws.mid_frame = false;
                    ws.copying = false;
                    ws.frame_queued = 0;
                }
                self.commit(key);
                self.send_due_control(key);
            }
            Action::Discarded { len } => stats.message_received(len as usize),
            Action::Pong => {
                if let Some(ws) = self.conns[key].websocket() {
                    ws.keep_alive.pong_received();
                }
            }
            Action::Close { code, reply } => {
                stats.close_received(code);
                if let Some(reply) = reply {
                    self.queue(
                        key,
                        Piece::Owned {
                            bytes: reply,
                            start: 0,
                        },
                    );
                    self.commit(key);
                    stats.close_sent(code);
                }
                if let Some(ws) = self.conns[key].websocket() {
                    ws.owed.send_close();
                }
                self.begin_close(key);
            }
            Action::Fail(code) => {
                let conn = &mut self.conns[key];
                if let Some(queued) = conn.queued.as_mut() {
                    queued.truncate(conn.committed as usize, &mut self.buffers);
                }
                let first_close = conn.websocket().is_some_and(|ws| {
                    ws.mid_frame = false;
                    ws.copying = false;
                    ws.frame_queued = 0;
                    ws.assembled = None;
                    ws.owed.send_close()
                });
                if first_close {
                    self.queue(
                        key,
                        Piece::Owned {
                            bytes: frame::close_frame(code),
                            start: 0,
                        },
                    );
                    self.commit(key);
                    stats.close_sent(code);
                    self.begin_linger(key);
                } else {
                    self.begin_close(key);
                }
            }
        }
    }

    /// Queues a piece of an echo frame; a large text frame moves out of the
    /// ring into a copy of its own (see [`TEXT_IN_PLACE_LIMIT`]).
    pub(super) fn queue_echo_piece(&mut self, key: usize, piece: Piece, text: bool) {
        let conn = &mut self.conns[key];
        let queued = self.outboxes.queued(&mut conn.queued);
        let Phase::WebSocket(ws) = &mut conn.phase else {
            piece.release(&mut self.buffers);
            return;
        };
        ws.mid_frame = true;
        ws.frame_queued += piece.len() as u64;
        if text && ws.copying {
            let mut bytes = Vec::new();
            copy_into(&piece, &self.buffers, &mut bytes);
            queued.extend_last(&bytes);
            piece.release(&mut self.buffers);
            return;
        }
        queued.push(piece, &mut self.buffers);
        let uncommitted_bytes = queued.bytes() - conn.committed_bytes as usize;
        let uncommitted_pieces = queued.len() - conn.committed as usize;
        if text
            && (uncommitted_bytes > TEXT_IN_PLACE_LIMIT
                || uncommitted_pieces > TEXT_IN_PLACE_PIECES)
        {
            self.copy_out_uncommitted(key);
        }
    }

    /// Moves the text frame still arriving on `key` out of the ring: its
    /// queued pieces become one owned piece, and its buffers go back.
    pub(super) fn copy_out_uncommitted(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let committed = conn.committed as usize;
        let Phase::WebSocket(ws) = &mut conn.phase else {
            return;
        };
        let Some(queued) = conn.queued.as_mut() else {
            return;
        };
        if ws.copying || !ws.mid_frame || queued.len() == committed {
            return;
        }
        let mut rest = Outbox::default();
        queued.split_off_into(committed, &mut rest);
        let mut copy = Vec::with_capacity(rest.bytes() * 2);
        for piece in rest.take_pieces() {
            copy_into(&piece, &self.buffers, &mut copy);
            piece.release(&mut self.buffers);
        }
        queued.push(
            Piece::Owned {
                bytes: copy,
                start: 0,
            },
            &mut self.buffers,
        );
        ws.copying = true;
    }

    /// Queues bytes of our own after everything queued so far.
    pub(super) fn queue(&mut self, key: usize, piece: Piece) {
        let conn = &mut self.conns[key];
        self.outboxes
            .queued(&mut conn.queued)
            .push(piece, &mut self.buffers);
    }

    /// Makes everything queued sendable, and lists the connection for the
    /// end of the turn.
    pub(super) fn commit(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let Some(queued) = conn.queued.as_mut() else {
            return;
        };
        let mut committed = queued.len();
        // A send is stuck on a slow peer: keep what waits behind it out of
        // the receive ring.
        if conn.peer_slow && conn.inflight.is_some() && queued.spill(committed, &mut self.buffers) {
            committed = 1;
        }
        conn.committed = committed as u32;
        conn.committed_bytes = queued.bytes() as u32;
        if conn.committed > 0 && conn.inflight.is_none() {
            self.to_send.list(key, &mut conn.send_listed);
        }
    }

    /// Sends a ping or close 1001 that waited for the end of a frame
    /// ([`Owed::take`](crate::runtime::keep_alive::Owed::take)).
    pub(super) fn send_due_control(&mut self, key: usize) {
        let now = self.now_ms;
        let Some(ws) = self.conns[key].websocket() else {
            return;
        };
        if ws.mid_frame {
            return;
        }
        let Some(control) = ws.owed.take() else {
            return;
        };
        match control.close_code() {
            Some(code) => self.stats.close_sent(code),
            None => {
                ws.keep_alive.ping_sent(now);
                self.stats.ping_sent();
            }
        }
        self.queue(
            key,
            Piece::Owned {
                bytes: control.frame().to_vec(),
                start: 0,
            },
        );
        self.commit(key);
        if control == Control::GoingAway {
            self.begin_linger(key);
        }
    }
}
