//! Raw DEFLATE streams as permessage-deflate uses them (RFC 7692 §7.2):
//! no zlib header, sync-flushed messages whose trailing empty stored block
//! (`00 00 ff ff`) is left off on the wire.
//!
//! Both sides run on flate2 with the zlib-rs backend: raw streams, sync
//! flush and window bits 9 to 15 (the choice is written down in
//! `docs/permessage-deflate.md`).
//!
//! - [`Inflater`] inflates with a size cap that it never passes by more
//!   than one byte: it is given at most `cap + 1` bytes of room, so a
//!   compression bomb is refused before it is inflated.
//! - [`Deflater`] compresses whole messages, for the echoes that cannot be
//!   the client's own compressed bytes.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::negotiation::{MAX_WINDOW_BITS, MIN_WINDOW_BITS};

/// The empty stored block a sync flush ends with, which permessage-deflate
/// leaves off each message and the receiver appends (RFC 7692 §7.2.1-2).
pub const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Why a compressed message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The bytes are not a DEFLATE stream (or refer back further than the
    /// message itself when the client keeps no context).
    Undecodable,
    /// The message inflates to more than the size cap.
    TooBig,
}

/// A raw inflater (a 2^15-byte window, enough for any window a client may
/// use), reset for each self-contained message.
pub struct Inflater {
    raw: Decompress,
    /// The stream met a final block: whatever follows is ignored.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    /// A raw inflater at the start of a stream.
    pub fn new() -> Self {
        Self {
            raw: Decompress::new_with_window_bits(false, MAX_WINDOW_BITS),
            ended: false,
        }
    }

    /// Forgets the stream and its window, for a message that starts afresh.
    pub fn reset(&mut self) {
        self.raw.reset(false);
        self.ended = false;
    }

    /// Inflates `input`, the next compressed bytes of a message, into
    /// `scratch` piece by piece and hands each piece to `out`. `left` is how
    /// many more bytes the message may inflate to; it is decreased by what
    /// was produced. `out` returns `false` to stop (its own refusal).
    pub fn inflate(
        &mut self,
        input: &[u8],
        scratch: &mut [u8],
        left: &mut u64,
        out: &mut impl FnMut(&[u8]) -> bool,
    ) -> Result<Progress, InflateError> {
        let mut input = input;
        while !self.ended {
            // Room for one byte more than allowed: filling it proves the
            // message is too big without inflating any further.
            let room = usize::try_from(*left)
                .unwrap_or(usize::MAX)
                .saturating_add(1)
                .min(scratch.len());
            let (in_before, out_before) = (self.raw.total_in(), self.raw.total_out());
            let status = self
                .raw
                .decompress(input, &mut scratch[..room], FlushDecompress::None);
            let consumed = (self.raw.total_in() - in_before) as usize;
            let produced = (self.raw.total_out() - out_before) as usize;
            input = &input[consumed..];
            // The verdict must not depend on how the input was cut: what was
            // inflated up to the cap is always handed over (and checked)
            // first, then the cap, then the stream's own error, in the order
            // the bytes come.
            let allowed = produced.min(usize::try_from(*left).unwrap_or(usize::MAX));
            if allowed > 0 && !out(&scratch[..allowed]) {
                return Ok(Progress::Stopped);
            }
            if produced as u64 > *left {
                return Err(InflateError::TooBig);
            }
            *left -= produced as u64;
            let status = status.map_err(|_| InflateError::Undecodable)?;
            match status {
                Status::StreamEnd => self.ended = true,
                // More output may be pending while the room was filled;
                // otherwise the inflater needs input.
                _ if produced == room => {}
                _ if input.is_empty() || consumed == 0 => break,
                _ => {}
            }
        }
        Ok(Progress::Done)
    }

    /// Whether a final block ended the stream (nothing more is inflated
    /// until [`Inflater::reset`]).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Ends a message: inflates the [`SYNC_TAIL`] the sender left off.
    pub fn finish(
        &mut self,
        scratch: &mut [u8],
        left: &mut u64,
        out: &mut impl FnMut(&[u8]) -> bool,
    ) -> Result<Progress, InflateError> {
        self.inflate(&SYNC_TAIL, scratch, left, out)
    }
}

/// How far [`Inflater::inflate`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Every input byte was taken (or ignored after a final block).
    Done,
    /// The output callback asked to stop.
    Stopped,
}

/// A raw deflater for one server window size; reset for each message when
/// the server keeps no context.
pub struct Deflater {
    raw: Compress,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater").finish_non_exhaustive()
    }
}

impl Deflater {
    /// A deflater whose back-references stay within 2^`window_bits` bytes.
    ///
    /// zlib (and zlib-rs) cannot make a raw stream with an 8-bit window, so
    /// for 8 bits this deflater writes stored blocks only: they hold no
    /// back-references at all, which any window accepts.
    pub fn new(window_bits: u8) -> Self {
        let bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        let (level, bits) = if bits == MIN_WINDOW_BITS {
            (Compression::none(), MIN_WINDOW_BITS + 1)
        } else {
            (Compression::fast(), bits)
        };
        Self {
            raw: Compress::new_with_window_bits(level, false, bits),
        }
    }

    /// Forgets the window, so that the next message refers to nothing before it.
    pub fn reset(&mut self) {
        self.raw.reset();
    }

    /// Appends `message`, compressed and sync-flushed without the
    /// [`SYNC_TAIL`], to `out`.
    pub fn compress(&mut self, message: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let mut input = message;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(64.max(input.len() / 2 + 64));
            }
            let before = self.raw.total_in();
            self.raw
                .compress_vec(input, out, FlushCompress::Sync)
                .expect("a raw deflate stream never reports an error on valid input");
            input = &input[(self.raw.total_in() - before) as usize..];
            // The flush is complete once all input is in and the output
            // still had room to spare.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out[start..].ends_with(&SYNC_TAIL) {
            out.truncate(out.len() - SYNC_TAIL.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::deflate::json_like as json;

    fn inflate_all(
        inflater: &mut Inflater,
        input: &[u8],
        cap: u64,
    ) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        let mut scratch = [0u8; 1000];
        let mut left = cap;
        let mut sink = |piece: &[u8]| {
            out.extend_from_slice(piece);
            true
        };
        inflater.inflate(input, &mut scratch, &mut left, &mut sink)?;
        inflater.finish(&mut scratch, &mut left, &mut sink)?;
        Ok(out)
    }

    #[test]
    fn messages_round_trip_at_every_window_size() {
        for bits in 8..=15 {
            let mut deflater = Deflater::new(bits);
            let mut inflater = Inflater::new();
            for len in [0, 1, 100, 1024, 70_000] {
                let message = json(len);
                let mut wire = Vec::new();
                deflater.reset();
                deflater.compress(&message, &mut wire);
                assert!(!wire.ends_with(&SYNC_TAIL) || wire.is_empty());
                inflater.reset();
                assert_eq!(
                    inflate_all(&mut inflater, &wire, 1 << 20).unwrap(),
                    message,
                    "{bits} bits, {len} bytes"
                );
                if len >= 1024 && bits > 8 {
                    assert!(wire.len() < message.len() / 2, "{bits} bits, {len} bytes");
                }
            }
        }
    }

    #[test]
    fn an_empty_message_compresses_to_almost_nothing() {
        let mut wire = Vec::new();
        Deflater::new(15).compress(b"", &mut wire);
        assert!(wire.len() <= 2, "{wire:x?}");
        assert_eq!(inflate_all(&mut Inflater::new(), &wire, 10).unwrap(), b"");
        assert_eq!(inflate_all(&mut Inflater::new(), &[], 10).unwrap(), b"");
    }

    #[test]
    fn the_8_bit_window_gets_stored_blocks_only() {
        let message = json(3000);
        let mut wire = Vec::new();
        Deflater::new(8).compress(&message, &mut wire);
        wire.extend_from_slice(&SYNC_TAIL);
        // Walk the blocks: each must be a stored block (BTYPE 00), byte aligned.
        let mut at = 0;
        let mut content = Vec::new();
        while at < wire.len() {
            assert_eq!(wire[at] & 0b110, 0, "block at {at} is not stored");
            let len = u16::from_le_bytes([wire[at + 1], wire[at + 2]]) as usize;
            let nlen = u16::from_le_bytes([wire[at + 3], wire[at + 4]]);
            assert_eq!(nlen, !(len as u16));
            content.extend_from_slice(&wire[at + 5..at + 5 + len]);
            at += 5 + len;
        }
        assert_eq!(content, message);
    }

    #[test]
    fn a_bomb_is_refused_after_at_most_one_byte_over_the_cap() {
        let message = vec![b'a'; 10 << 20];
        let mut wire = Vec::with_capacity(64 << 10);
        let mut best = Compress::new_with_window_bits(Compression::best(), false, 15);
        best.compress_vec(&message, &mut wire, FlushCompress::Sync)
            .unwrap();
        assert!(wire.len() < 20 << 10, "{}", wire.len());
        let mut inflater = Inflater::new();
        let mut scratch = vec![0u8; 16 << 10];
        let mut left = 1000;
        let mut seen = 0;
        let result = inflater.inflate(&wire, &mut scratch, &mut left, &mut |piece| {
            seen += piece.len();
            true
        });
        assert_eq!(result, Err(InflateError::TooBig));
        assert_eq!(seen, 1000, "nothing past the cap reaches the output");
        assert_eq!(
            inflater.raw.total_out(),
            1001,
            "inflated one byte past the cap"
        );
        let mut left = message.len() as u64;
        inflater.reset();
        assert_eq!(
            inflater.inflate(&wire, &mut scratch, &mut left, &mut |_| true),
            Ok(Progress::Done)
        );
        assert_eq!(left, 0, "exactly at the cap is allowed");
    }

    #[test]
    fn garbage_and_references_before_the_message_are_undecodable() {
        let mut inflater = Inflater::new();
        // BTYPE 11 is reserved.
        assert_eq!(
            inflate_all(&mut inflater, &[0xff, 0xff, 0xff], 100),
            Err(InflateError::Undecodable)
        );
        // A fixed-Huffman block whose first code is a match: distance 1 with
        // nothing before it.
        inflater.reset();
        assert_eq!(
            inflate_all(&mut inflater, &[0x03, 0x02, 0x00], 100),
            Err(InflateError::Undecodable)
        );
    }

    #[test]
    fn split_input_inflates_the_same() {
        let message = json(5000);
        let mut wire = Vec::new();
        Deflater::new(15).compress(&message, &mut wire);
        for cut in [1, 2, 7, wire.len() / 2, wire.len() - 1] {
            let mut inflater = Inflater::new();
            let mut scratch = [0u8; 333];
            let mut left = 1 << 20;
            let mut out = Vec::new();
            let mut sink = |piece: &[u8]| {
                out.extend_from_slice(piece);
                true
            };
            for part in [&wire[..cut], &wire[cut..]] {
                inflater
                    .inflate(part, &mut scratch, &mut left, &mut sink)
                    .unwrap();
            }
            inflater.finish(&mut scratch, &mut left, &mut sink).unwrap();
            assert_eq!(out, message, "cut at {cut}");
        }
    }

    #[test]
    fn a_final_block_ends_the_message_and_the_rest_is_ignored() {
        let mut compress = Compress::new(Compression::fast(), false);
        let mut wire = Vec::with_capacity(100);
        compress
            .compress_vec(b"hello", &mut wire, FlushCompress::Finish)
            .unwrap();
        let mut with_junk = wire.clone();
        with_junk.extend_from_slice(b"junk");
        for input in [&wire, &with_junk] {
            assert_eq!(
                inflate_all(&mut Inflater::new(), input, 100).unwrap(),
                b"hello"
            );
        }
    }

    #[test]
    fn the_output_callback_can_stop_inflation() {
        let message = json(4000);
        let mut wire = Vec::new();
        Deflater::new(15).compress(&message, &mut wire);
        let mut calls = 0;
        let progress = Inflater::new().inflate(&wire, &mut [0u8; 100], &mut 1_000_000, &mut |_| {
            calls += 1;
            calls < 3
        });
        assert_eq!((progress, calls), (Ok(Progress::Stopped), 3));
    }
}
