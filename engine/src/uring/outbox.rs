//! What a connection has to send: a list of pieces, most of them ranges of
//! the receive buffers the echoed frames arrived in, and the one send that
//! carries them.
//!
//! # Ownership while a send is in flight
//!
//! A send SQE points at the pieces' bytes and, for `SendMsg`, at the
//! [`Outbox`]'s own `msghdr` and iovec array. The outbox is boxed, so those
//! addresses do not move when the connection slab grows, and the loop never
//! touches an in-flight outbox until the send's completion arrives: then it
//! drops what was sent ([`Outbox::advance`]) and either re-sends the rest
//! (a partial send) or recycles the box. Ring pieces keep a hold on their
//! buffer ([`super::buf_ring::ProvidedBuffers::hold`]) until they are sent.

use io_uring::{opcode, squeue, types};

use super::buf_ring::ProvidedBuffers;

/// Bytes to send: a range of a receive buffer, or bytes of our own (HTTP
/// responses, control frames, reassembled messages, a detached header).
#[derive(Debug)]
pub enum Piece {
    /// Bytes `start..end` of receive buffer `id` (held until sent).
    Ring {
        /// Buffer id.
        id: u16,
        /// First byte.
        start: u32,
        /// One past the last byte.
        end: u32,
    },
    /// `bytes[start..]`.
    Owned {
        /// The bytes.
        bytes: Vec<u8>,
        /// How much of them was sent already.
        start: usize,
    },
}

impl Piece {
    /// Bytes left to send.
    pub fn len(&self) -> usize {
        match self {
            Piece::Ring { start, end, .. } => (end - start) as usize,
            Piece::Owned { bytes, start } => bytes.len() - start,
        }
    }

    /// Whether nothing is left to send.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives back the piece's hold on its receive buffer, if it has one.
    pub fn release(self, buffers: &mut ProvidedBuffers) {
        if let Piece::Ring { id, .. } = self {
            buffers.release(id);
        }
    }
}

/// Pieces queued for one connection, and the send that carries them.
pub struct Outbox {
    pieces: Vec<Piece>,
    bytes: usize,
    iov: Vec<libc::iovec>,
    header: libc::msghdr,
}

impl Default for Outbox {
    fn default() -> Self {
        Self {
            pieces: Vec::new(),
            bytes: 0,
            iov: Vec::new(),
            // SAFETY: `msghdr` is plain data; all-zero is an empty header.
            header: unsafe { std::mem::zeroed() },
        }
    }
}

impl Outbox {
    /// Appends a piece; empty pieces are dropped (releasing their hold).
    pub fn push(&mut self, piece: Piece, buffers: &mut ProvidedBuffers) {
        if piece.is_empty() {
            piece.release(buffers);
            return;
        }
        self.bytes += piece.len();
        self.pieces.push(piece);
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of pieces queued.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Moves the pieces from `at` on into `rest` (which must be empty).
    pub fn split_off_into(&mut self, at: usize, rest: &mut Outbox) {
        debug_assert!(rest.is_empty());
        rest.pieces.extend(self.pieces.drain(at..));
        rest.bytes = rest.pieces.iter().map(Piece::len).sum();
        self.bytes -= rest.bytes;
    }

    /// Appends `bytes` to the last piece, which must be [`Piece::Owned`].
    pub fn extend_last(&mut self, bytes: &[u8]) {
        match self.pieces.last_mut() {
            Some(Piece::Owned { bytes: last, .. }) => {
                last.extend_from_slice(bytes);
                self.bytes += bytes.len();
            }
            _ => unreachable!("extend_last needs an owned last piece"),
        }
    }

    /// Copies the first `count` pieces into one owned piece and releases
    /// their buffers: what a connection whose peer reads slowly holds moves
    /// out of the shared receive ring. Returns whether anything was copied.
    pub fn spill(&mut self, count: usize, buffers: &mut ProvidedBuffers) -> bool {
        let count = count.min(self.pieces.len());
        let ring_pieces = self.pieces[..count]
            .iter()
            .filter(|piece| matches!(piece, Piece::Ring { .. }))
            .count();
        if ring_pieces == 0 {
            return false;
        }
        let bytes: usize = self.pieces[..count].iter().map(Piece::len).sum();
        let mut pieces = self.pieces.drain(..count);
        // Grow an owned first piece in place rather than copying it again.
        let mut copy = match pieces.next() {
            Some(Piece::Owned { mut bytes, start }) => {
                bytes.drain(..start);
                bytes
            }
            Some(piece) => {
                let mut copy = Vec::with_capacity(bytes);
                copy_into(&piece, buffers, &mut copy);
                piece.release(buffers);
                copy
            }
            None => Vec::new(),
        };
        for piece in pieces {
            copy_into(&piece, buffers, &mut copy);
            piece.release(buffers);
        }
        self.pieces.insert(
            0,
            Piece::Owned {
                bytes: copy,
                start: 0,
            },
        );
        true
    }

    /// Takes every piece out (the caller releases them).
    pub fn take_pieces(&mut self) -> Vec<Piece> {
        self.bytes = 0;
        std::mem::take(&mut self.pieces)
    }

    /// Drops the pieces from `at` on, releasing their holds.
    pub fn truncate(&mut self, at: usize, buffers: &mut ProvidedBuffers) {
        for piece in self.pieces.drain(at..) {
            self.bytes -= piece.len();
            piece.release(buffers);
        }
    }

    /// Drops every piece, releasing their holds.
    pub fn clear(&mut self, buffers: &mut ProvidedBuffers) {
        self.truncate(0, buffers);
    }

    /// Removes the first `sent` bytes (a send's result), releasing the
    /// holds of pieces sent whole.
    pub fn advance(&mut self, mut sent: usize, buffers: &mut ProvidedBuffers) {
        self.bytes -= sent;
        let mut whole = 0;
        for piece in &mut self.pieces {
            let len = piece.len();
            if sent < len {
                match piece {
                    Piece::Ring { start, .. } => *start += sent as u32,
                    Piece::Owned { start, .. } => *start += sent,
                }
                break;
            }
            sent -= len;
            whole += 1;
        }
        for piece in self.pieces.drain(..whole) {
            piece.release(buffers);
        }
    }

    /// The send SQE for everything queued: one `Send` for a single piece,
    /// else a `SendMsg` with one iovec per piece.
    ///
    /// The SQE points into this outbox (and the buffers its pieces hold);
    /// the caller must keep the outbox boxed, unmoved and unchanged until
    /// the send's completion, and must not submit it when empty.
    pub fn send_entry(&mut self, fd: types::Fd, buffers: &ProvidedBuffers) -> squeue::Entry {
        let address = |piece: &Piece| -> *const u8 {
            match piece {
                Piece::Ring { id, start, .. } => buffers.address(*id, *start as usize),
                Piece::Owned { bytes, start } => bytes[*start..].as_ptr(),
            }
        };
        if let [piece] = self.pieces.as_slice() {
            return opcode::Send::new(fd, address(piece), piece.len() as u32)
                .flags(libc::MSG_NOSIGNAL)
                .build();
        }
        self.iov.clear();
        self.iov.extend(self.pieces.iter().map(|piece| libc::iovec {
            iov_base: address(piece).cast_mut().cast(),
            iov_len: piece.len(),
        }));
        self.header.msg_iov = self.iov.as_mut_ptr();
        self.header.msg_iovlen = self.iov.len();
        opcode::SendMsg::new(fd, &self.header)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
    }
}

/// Recycled outboxes, so that a connection's queue costs no allocation per
/// send. Each is boxed because an in-flight send points into its outbox,
/// which must not move while the send is in flight.
#[derive(Default)]
pub struct OutboxPool {
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Outbox>>,
}

impl OutboxPool {
    /// An empty outbox, recycled if one is spare.
    pub fn take(&mut self) -> Box<Outbox> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps `outbox` for reuse; it must be empty (its pieces released).
    pub fn give(&mut self, outbox: Box<Outbox>) {
        debug_assert!(outbox.is_empty(), "a recycled outbox holds pieces");
        self.spare.push(outbox);
    }

    /// A connection's queued outbox, taken from the pool when it has none.
    pub fn queued<'a>(&mut self, queued: &'a mut Option<Box<Outbox>>) -> &'a mut Outbox {
        queued.get_or_insert_with(|| self.take())
    }

    /// Frees every spare outbox.
    pub fn clear(&mut self) {
        self.spare.clear();
    }
}

/// Appends a piece's bytes to `out`.
pub fn copy_into(piece: &Piece, buffers: &ProvidedBuffers, out: &mut Vec<u8>) {
    match piece {
        Piece::Ring { id, start, end } => {
            out.extend_from_slice(buffers.chunk(*id, *start as usize, *end as usize))
        }
        Piece::Owned { bytes, start } => out.extend_from_slice(&bytes[*start..]),
    }
}
