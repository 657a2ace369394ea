//! Differential test: the epoll backend is the reference, and the io_uring
//! backend must answer the same client byte streams with the same bytes.
//!
//! Seeded pseudo-random client streams (valid traffic of every shape, then
//! often one invalid input) go to an epoll server and a uring server at the
//! same time, each written in chunks of pseudo-random sizes with a pause
//! between them, so the servers' reads split frames at every kind of offset.
//! What each server sends back, read as raw bytes until it closes TCP (or
//! until it stays quiet after the last expected echo), must be identical,
//! close codes included.
//!
//! Coverage: every stream carries a 5-byte message with a 16-bit length and
//! one with a 64-bit length, an empty one and 125/126/127-byte ones; the
//! big-chunk streams add 65535 and 65536 bytes. Messages are text (1- to
//! 4-byte characters, fragments cut anywhere, even inside a character) or
//! binary, fragmented or not, with pings and pongs between fragments and
//! fresh mask keys per frame. A few short streams go byte by byte, so every
//! offset of every header form is a read boundary; the others use chunks of
//! 1..=N bytes for N from 2 to 70000. Each of the [`Ending`]s closes two
//! streams. The client waits for the answers to the valid part before it
//! sends the ending (see [`write_chunks`]), which keeps a failing server's
//! answer independent of timing.
//!
//! The generator also knows what a correct echo server answers (every
//! message once, as one minimal unmasked frame; a pong per ping; the close
//! echoed, or a close with the expected error code), so the reference itself
//! is checked against that model too.
//!
//! Compressed streams: some streams offer permessage-deflate (both servers
//! accept it) and carry compressed messages (RSV1, raw DEFLATE from flate2
//! at a random level, fragments cut anywhere in the compressed bytes) mixed
//! with plain ones, ending in the compression failures too (a stream that
//! does not inflate, compressed invalid UTF-8, a bomb past the limit, RSV1
//! on a continuation). The model's echo of a compressed message is the
//! client's own compressed bytes in one frame with RSV1 (passthrough: the
//! offer leaves both windows at 15 bits and the server asks for no context
//! takeover).
//!
//! Today both backends run the same echo loop, so they agree by
//! construction; the test is there to hold a rewritten io_uring path to the
//! epoll reference. A failure prints the seed, the stream index, the first
//! differing offset and a hex window of both sides; set
//! `RINGECHO_DIFFERENTIAL_SEED` to re-run with another base seed.

mod common;

use std::fmt::Write as _;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

use common::frames::decode;
use common::http::{read_response, Request};
use common::server::Server;
use common::{within, Backend};

/// Both servers run with these: a 64 KiB message limit and no server pings,
/// so the only frames a server sends are answers to the client;
/// permessage-deflate is accepted, but only compressed streams offer it.
const SERVER_ARGS: &[&str] = &[
    "--max-message-size",
    "64KiB",
    "--keep-alive-interval",
    "0",
    "--permessage-deflate",
];
/// What compressed streams offer.
const DEFLATE_OFFER: &str = "permessage-deflate";
/// RSV1: a compressed message's first frame.
const RSV1: u8 = 0x40;
/// `--max-message-size` in bytes (inclusive).
const MESSAGE_LIMIT: usize = 64 * 1024;

/// The base seed; every stream's seed is derived from it and its index.
const BASE_SEED: u64 = 0x7269_6e67_6563_686f;
/// Overrides [`BASE_SEED`] (decimal or `0x` hex), to reproduce or explore.
const SEED_ENV: &str = "RINGECHO_DIFFERENTIAL_SEED";

/// The pause after every chunk, so the server reads it on its own.
const CHUNK_PAUSE: Duration = Duration::from_millis(1);
/// How long a server that keeps the connection open must stay silent after
/// the last expected echo before its answer is taken as complete.
const QUIET: Duration = Duration::from_millis(300);
/// How long a server that should close the connection may take to do so
/// after its last expected frame.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// The longest one stream's exchange with one server may take.
const STREAM_DEADLINE: Duration = Duration::from_secs(25);

/// The largest chunk sizes cycled through by the randomly split streams
/// (each chunk is 1..=N bytes).
const CHUNK_LIMITS: &[usize] = &[
    2, 3, 5, 8, 13, 31, 64, 127, 600, 1500, 4096, 9000, 20000, 70000,
];
/// The smallest chunk limit for streams that must carry a 64 KiB message.
const BIG_CHUNK_LIMIT: usize = 1500;

/// splitmix64: a tiny deterministic generator, plenty for drawing cases.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A value in `low..=high`.
    fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Valid UTF-8 of a random length below `max`.
    fn text_below(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max);
        self.text(len)
    }

    /// Random bytes, `low..=high` of them.
    fn bytes_between(&mut self, low: usize, high: usize) -> Vec<u8> {
        let len = self.between(low, high);
        self.bytes(len)
    }

    /// Valid UTF-8 of exactly `len` bytes, mixing 1- to 4-byte characters.
    fn text(&mut self, len: usize) -> Vec<u8> {
        const PIECES: &[&str] = &["a", "Z", " ", "~", "é", "ß", "κ", "€", "中", "😀"];
        let mut text = Vec::with_capacity(len);
        while text.len() + 4 <= len {
            text.extend_from_slice(self.pick(PIECES).as_bytes());
        }
        while text.len() < len {
            text.push(b'a' + self.below(26) as u8);
        }
        text
    }
}

/// The seed of stream `index`.
fn stream_seed(base: u64, index: usize) -> u64 {
    Rng(base ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407)).next_u64()
}

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const FIN: u8 = 0x80;

/// How a frame's payload length is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LenForm {
    /// The shortest form, as RFC 6455 asks.
    Minimal,
    /// Always the 16-bit form (126), even for short payloads.
    Bits16,
    /// Always the 64-bit form (127).
    Bits64,
}

/// One frame on the wire: `first` is the FIN/RSV/opcode byte, `mask` the
/// masking key (`None` for an unmasked frame).
fn encode(first: u8, payload: &[u8], mask: Option<[u8; 4]>, form: LenForm) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    let form = match form {
        LenForm::Minimal if len < 126 => None,
        LenForm::Minimal if len <= 0xFFFF => Some(LenForm::Bits16),
        LenForm::Bits16 if len <= 0xFFFF => Some(LenForm::Bits16),
        _ => Some(LenForm::Bits64),
    };
    let mut wire = vec![first];
    match form {
        None => wire.push(mask_bit | len as u8),
        Some(LenForm::Bits16) => {
            wire.push(mask_bit | 126);
            wire.extend_from_slice(&(len as u16).to_be_bytes());
        }
        Some(_) => {
            wire.push(mask_bit | 127);
            wire.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            wire.extend_from_slice(&key);
            wire.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        }
        None => wire.extend_from_slice(payload),
    }
    wire
}

/// A final, unmasked, minimally encoded frame: what a server sends.
fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    encode(FIN | opcode, payload, None, LenForm::Minimal)
}

/// The close frame a server fails a connection with.
fn server_close(code: u16) -> Vec<u8> {
    server_frame(CLOSE, &code.to_be_bytes())
}

/// How a stream ends, after its valid part.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// Nothing more: the connection stays open.
    Open,
    /// A close frame without payload, echoed.
    CloseEmpty,
    /// A close frame with a valid code and reason, echoed.
    CloseValid,
    /// A close code no peer may send (1005, 5000...): 1002.
    CloseBadCode,
    /// A close payload of one byte: 1002.
    CloseOneByte,
    /// A close reason that is not UTF-8: 1007.
    CloseBadReason,
    /// A 126-byte close payload: 1002.
    CloseTooLong,
    /// A text frame with an invalid sequence in the middle: 1007.
    InvalidUtf8Text,
    /// A fragmented text message whose continuation is invalid: 1007.
    InvalidUtf8Fragment,
    /// A text message that ends in the middle of a character: 1007.
    TruncatedUtf8,
    /// A data frame with RSV bits set: 1002.
    ReservedBits,
    /// A frame with a reserved opcode: 1002.
    ReservedOpcode,
    /// A frame without a mask: 1002.
    Unmasked,
    /// A ping with 126 bytes or more: 1002.
    OversizedPing,
    /// A ping without FIN: 1002.
    FragmentedPing,
    /// A continuation frame with no message under way: 1002.
    OrphanContinuation,
    /// A new data frame inside a fragmented message: 1002.
    NewMessageInsideFragments,
    /// One frame over the message limit: 1009.
    OverLimitFrame,
    /// Fragments that add up to more than the message limit: 1009.
    OverLimitFragments,
    /// A compressed message that is not a DEFLATE stream: 1007.
    CompressedUndecodable,
    /// Compressed text that inflates to invalid UTF-8: 1007.
    CompressedInvalidUtf8,
    /// A compressed message that inflates past the limit: 1009.
    CompressedBomb,
    /// RSV1 on a continuation of a compressed message: 1002.
    Rsv1Continuation,
}

/// The endings of compressed streams (reserved bits are left out: RSV1
/// alone is valid there).
const COMPRESSED_ENDINGS: &[Ending] = &[
    Ending::Open,
    Ending::CloseValid,
    Ending::InvalidUtf8Text,
    Ending::OverLimitFrame,
    Ending::CompressedUndecodable,
    Ending::CompressedInvalidUtf8,
    Ending::CompressedBomb,
    Ending::Rsv1Continuation,
];

/// Every ending, cycled over the randomly split streams.
const ENDINGS: &[Ending] = &[
    Ending::Open,
    Ending::CloseEmpty,
    Ending::CloseValid,
    Ending::CloseBadCode,
    Ending::CloseOneByte,
    Ending::CloseBadReason,
    Ending::CloseTooLong,
    Ending::InvalidUtf8Text,
    Ending::InvalidUtf8Fragment,
    Ending::TruncatedUtf8,
    Ending::ReservedBits,
    Ending::ReservedOpcode,
    Ending::Unmasked,
    Ending::OversizedPing,
    Ending::FragmentedPing,
    Ending::OrphanContinuation,
    Ending::NewMessageInsideFragments,
    Ending::OverLimitFrame,
    Ending::OverLimitFragments,
];

impl Ending {
    /// Whether the ending sends more than the message limit, which only
    /// streams in big chunks can do in time.
    fn is_big(self) -> bool {
        matches!(self, Ending::OverLimitFrame | Ending::OverLimitFragments)
    }
}

/// How the client splits a stream into writes.
#[derive(Debug, Clone, Copy)]
enum Split {
    /// One byte per write.
    Bytewise,
    /// Writes of 1..=N bytes.
    UpTo(usize),
}

/// What one stream is made of.
#[derive(Debug, Clone, Copy)]
struct Plan {
    split: Split,
    ending: Ending,
    /// Roughly how many bytes the valid part may take.
    budget: usize,
    /// Carry messages of exactly 65535 and 65536 bytes.
    with_limit_sizes: bool,
    /// Offer permessage-deflate and send compressed messages too.
    compressed: bool,
}

/// The test set: a few short streams sent byte by byte, then every ending
/// twice, with different chunk limits.
fn plans() -> Vec<Plan> {
    let bytewise = |ending| Plan {
        split: Split::Bytewise,
        ending,
        budget: 500,
        with_limit_sizes: false,
        compressed: false,
    };
    let mut plans = vec![
        bytewise(Ending::CloseValid),
        bytewise(Ending::InvalidUtf8Fragment),
        bytewise(Ending::Unmasked),
        bytewise(Ending::Open),
    ];
    for round in 0..2 {
        for (i, &ending) in ENDINGS.iter().enumerate() {
            let mut limit = CHUNK_LIMITS[(i * 5 + round * 3) % CHUNK_LIMITS.len()];
            if ending.is_big() {
                limit = limit.max(BIG_CHUNK_LIMIT);
            }
            let big = limit >= BIG_CHUNK_LIMIT;
            plans.push(Plan {
                split: Split::UpTo(limit),
                ending,
                // Few enough writes (about 1000) to finish in time.
                budget: (limit * 1000).clamp(1000, 300_000),
                with_limit_sizes: big && round == 0,
                compressed: false,
            });
        }
    }
    plans.push(Plan {
        compressed: true,
        ..bytewise(Ending::CompressedInvalidUtf8)
    });
    for round in 0..2 {
        for (i, &ending) in COMPRESSED_ENDINGS.iter().enumerate() {
            let mut limit = CHUNK_LIMITS[(i * 3 + round * 5) % CHUNK_LIMITS.len()];
            if ending.is_big() {
                limit = limit.max(BIG_CHUNK_LIMIT);
            }
            plans.push(Plan {
                split: Split::UpTo(limit),
                ending,
                budget: (limit * 1000).clamp(1000, 300_000),
                with_limit_sizes: false,
                compressed: true,
            });
        }
    }
    plans
}

/// One generated client stream and what a correct server answers.
struct Stream {
    index: usize,
    seed: u64,
    plan: Plan,
    /// The client's bytes after the handshake.
    wire: Vec<u8>,
    /// The lengths of the client's writes, summing to `wire.len()`.
    chunks: Vec<usize>,
    /// The server's expected answer, byte for byte.
    expected: Vec<u8>,
    /// Whether the server is expected to close the connection at the end.
    server_closes: bool,
    /// Where the ending starts in `wire` (a chunk boundary).
    ending_at: usize,
    /// How much of `expected` answers the part before the ending.
    echoes_before_ending: usize,
}

/// Builds a stream: its valid part, then its ending.
struct Generator {
    rng: Rng,
    wire: Vec<u8>,
    expected: Vec<u8>,
    /// Some messages are compressed.
    compressed: bool,
}

/// `message` compressed as a client without context takeover does it:
/// raw DEFLATE at `level`, sync-flushed, the `00 00 ff ff` tail left off.
fn deflate(message: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(message).expect("deflate");
    // A flush of the encoder is a sync flush.
    encoder.flush().expect("sync flush");
    let mut out = std::mem::take(encoder.get_mut());
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

impl Generator {
    fn mask(&mut self) -> Option<[u8; 4]> {
        if self.rng.chance(5) {
            return Some([0; 4]);
        }
        let key = self.rng.next_u64().to_le_bytes();
        Some([key[0], key[1], key[2], key[3]])
    }

    /// A masked client frame; data frames sometimes use a longer length
    /// form than needed.
    fn frame(&mut self, first: u8, payload: &[u8]) {
        let form = if first & 0x08 == 0 {
            match self.rng.below(10) {
                0 => LenForm::Bits16,
                1 => LenForm::Bits64,
                _ => LenForm::Minimal,
            }
        } else {
            LenForm::Minimal
        };
        self.frame_as(first, payload, form);
    }

    fn frame_as(&mut self, first: u8, payload: &[u8], form: LenForm) {
        let mask = self.mask();
        self.wire.extend(encode(first, payload, mask, form));
    }

    /// A ping (answered with a pong) or a pong (ignored).
    fn control(&mut self) {
        let len = if self.rng.chance(20) {
            125
        } else {
            self.rng.below(126)
        };
        let payload = self.rng.bytes(len);
        if self.rng.chance(70) {
            self.frame(FIN | PING, &payload);
            self.expected.extend(server_frame(PONG, &payload));
        } else {
            self.frame(FIN | PONG, &payload);
        }
    }

    /// A payload of `len` bytes for `opcode`.
    fn payload(&mut self, opcode: u8, len: usize) -> Vec<u8> {
        if opcode == TEXT {
            self.rng.text(len)
        } else {
            self.rng.bytes(len)
        }
    }

    /// One whole message of `len` bytes, maybe fragmented with control
    /// frames in between, and its echo.
    fn message(&mut self, len: usize, form: Option<LenForm>) {
        let opcode = self.rng.pick(&[TEXT, BINARY]);
        let (first_bits, payload) = if self.compressed && self.rng.chance(70) {
            // Inflated and compressed sizes both stay within the limit.
            let inflated = self.payload(opcode, len.min(MESSAGE_LIMIT - 1024));
            let level = self.rng.pick(&[0, 1, 6, 9]);
            (RSV1 | opcode, deflate(&inflated, level))
        } else {
            (opcode, self.payload(opcode, len))
        };
        let len = payload.len();
        let parts = if form.is_some() || self.rng.chance(50) {
            1
        } else {
            self.rng.between(2, 5)
        };
        let mut cuts: Vec<usize> = (1..parts).map(|_| self.rng.below(len + 1)).collect();
        cuts.sort_unstable();
        cuts.push(len);
        let mut start = 0;
        for (i, &end) in cuts.iter().enumerate() {
            let first = if i == 0 { first_bits } else { CONTINUATION };
            let fin = if i == cuts.len() - 1 { FIN } else { 0 };
            match form {
                Some(form) => self.frame_as(fin | first, &payload[start..end], form),
                None => self.frame(fin | first, &payload[start..end]),
            }
            start = end;
            if fin == 0 {
                while self.rng.chance(40) {
                    self.control();
                }
            }
        }
        self.expected.extend(server_frame(first_bits, &payload));
    }

    /// A message size, from boundaries and ranges, at most `room`.
    fn size(&mut self, room: usize) -> usize {
        const BOUNDARIES: &[usize] = &[0, 1, 5, 124, 125, 126, 127, 128, 1023, 4096, 65535, 65536];
        let size = match self.rng.below(4) {
            0 => self.rng.pick(BOUNDARIES),
            1 => self.rng.below(130),
            2 => self.rng.below(2000),
            _ => self.rng.below(MESSAGE_LIMIT + 1),
        };
        size.min(room)
    }

    /// Valid traffic of about `plan.budget` bytes.
    fn valid_part(&mut self, plan: &Plan) {
        // Header boundaries and non-minimal length forms, in every stream.
        self.message(5, Some(LenForm::Bits16));
        self.message(5, Some(LenForm::Bits64));
        self.message(0, None);
        for len in [125, 126, 127] {
            self.message(len, None);
        }
        if plan.with_limit_sizes {
            self.message(65535, None);
            self.message(MESSAGE_LIMIT, None);
        }
        while self.wire.len() < plan.budget {
            if self.rng.chance(20) {
                self.control();
            } else {
                let room = (plan.budget - self.wire.len()).min(MESSAGE_LIMIT);
                let len = self.size(room);
                self.message(len, None);
            }
        }
    }

    /// Sends the ending; returns whether the server closes the connection.
    fn ending(&mut self, ending: Ending) -> bool {
        let rng = &mut self.rng;
        let fail_with = match ending {
            Ending::Open => return false,
            Ending::CloseEmpty => {
                self.frame(FIN | CLOSE, &[]);
                self.expected.extend(server_frame(CLOSE, &[]));
                return true;
            }
            Ending::CloseValid => {
                let code: u16 = rng.pick(&[1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999]);
                let reason_len = rng.below(40);
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend(rng.text(reason_len));
                self.frame(FIN | CLOSE, &payload);
                self.expected.extend(server_frame(CLOSE, &payload));
                return true;
            }
            Ending::CloseBadCode => {
                let code: u16 = rng.pick(&[0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]);
                self.frame(FIN | CLOSE, &code.to_be_bytes());
                1002
            }
            Ending::CloseOneByte => {
                self.frame(FIN | CLOSE, &[0x03]);
                1002
            }
            Ending::CloseBadReason => {
                self.frame(FIN | CLOSE, &[0x03, 0xE8, b'o', b'k', 0xFF]);
                1007
            }
            Ending::CloseTooLong => {
                let mut payload = 1000u16.to_be_bytes().to_vec();
                payload.extend(rng.text(124));
                self.frame(FIN | CLOSE, &payload);
                1002
            }
            Ending::InvalidUtf8Text => {
                let mut payload = rng.text_below(300);
                payload.extend_from_slice(rng.pick(&[&b"\xFF"[..], b"\xED\xA0\x80", b"\xC0\xAF"]));
                payload.extend(rng.text_below(300));
                self.frame(FIN | TEXT, &payload);
                1007
            }
            Ending::InvalidUtf8Fragment => {
                let start = rng.text_below(50);
                let mut rest = rng.text_below(50);
                rest.extend_from_slice(b"\xF4\x90\x80\x80");
                self.frame(TEXT, &start);
                self.frame(CONTINUATION, &rest);
                1007
            }
            Ending::TruncatedUtf8 => {
                let mut payload = rng.text_below(100);
                payload.extend_from_slice(&"€".as_bytes()[..2]);
                self.frame(FIN | TEXT, &payload);
                1007
            }
            Ending::ReservedBits => {
                let rsv = rng.between(1, 7) as u8;
                let opcode = rng.pick(&[TEXT, BINARY]);
                let payload = self.payload(opcode, 20);
                self.frame(FIN | (rsv << 4) | opcode, &payload);
                1002
            }
            Ending::ReservedOpcode => {
                let opcode = rng.pick(&[3, 4, 5, 6, 7, 11, 12, 13, 14, 15]);
                self.frame(FIN | opcode, b"reserved");
                1002
            }
            Ending::Unmasked => {
                let opcode = rng.pick(&[TEXT, BINARY, PING]);
                let len = rng.below(100);
                let payload = self.payload(opcode, len);
                self.wire
                    .extend(encode(FIN | opcode, &payload, None, LenForm::Minimal));
                1002
            }
            Ending::OversizedPing => {
                let payload = rng.bytes_between(126, 200);
                self.frame(FIN | PING, &payload);
                1002
            }
            Ending::FragmentedPing => {
                self.frame(PING, b"half");
                1002
            }
            Ending::OrphanContinuation => {
                let fin = rng.pick(&[0, FIN]);
                self.frame(fin | CONTINUATION, b"orphan");
                1002
            }
            Ending::NewMessageInsideFragments => {
                self.frame(TEXT, b"first");
                self.frame(FIN | BINARY, b"second");
                1002
            }
            Ending::OverLimitFrame => {
                let payload = rng.bytes(MESSAGE_LIMIT + 1);
                self.frame(FIN | BINARY, &payload);
                1009
            }
            Ending::CompressedUndecodable => {
                let opcode = rng.pick(&[TEXT, BINARY]);
                let junk = rng.pick(&[&[0xFF, 0xFF, 0xFF][..], &[0x03, 0x02, 0x00], &[0x07, 0x00]]);
                self.frame(FIN | RSV1 | opcode, junk);
                1007
            }
            Ending::CompressedInvalidUtf8 => {
                let mut text = rng.text_below(300);
                text.extend_from_slice(rng.pick(&[&b"\xFF"[..], b"\xED\xA0\x80", b"\xC0\xAF"]));
                text.extend(rng.text_below(300));
                let level = rng.pick(&[1, 6]);
                self.frame(FIN | RSV1 | TEXT, &deflate(&text, level));
                1007
            }
            Ending::CompressedBomb => {
                let len = rng.between(MESSAGE_LIMIT + 1, 4 * MESSAGE_LIMIT);
                self.frame(FIN | RSV1 | BINARY, &deflate(&vec![0; len], 9));
                1009
            }
            Ending::Rsv1Continuation => {
                self.frame(RSV1 | BINARY, &deflate(b"first half", 6));
                self.frame(FIN | RSV1 | CONTINUATION, b"second half");
                1002
            }
            Ending::OverLimitFragments => {
                let total = rng.between(MESSAGE_LIMIT + 1, MESSAGE_LIMIT + 4000);
                let payload = rng.bytes(total);
                let cut = rng.between(1, MESSAGE_LIMIT);
                self.frame(BINARY, &payload[..cut]);
                self.frame(FIN | CONTINUATION, &payload[cut..]);
                1009
            }
        };
        self.expected.extend(server_close(fail_with));
        true
    }
}

impl Stream {
    fn generate(index: usize, seed: u64, plan: Plan) -> Stream {
        let mut generator = Generator {
            rng: Rng(seed),
            wire: Vec::new(),
            expected: Vec::new(),
            compressed: plan.compressed,
        };
        generator.valid_part(&plan);
        let ending_at = generator.wire.len();
        let echoes_before_ending = generator.expected.len();
        let server_closes = generator.ending(plan.ending);
        let Generator {
            mut rng,
            wire,
            expected,
            ..
        } = generator;
        let mut chunks = Vec::new();
        for part in [ending_at, wire.len() - ending_at] {
            let mut left = part;
            while left > 0 {
                let chunk = match plan.split {
                    Split::Bytewise => 1,
                    Split::UpTo(limit) => rng.between(1, limit).min(left),
                };
                chunks.push(chunk);
                left -= chunk;
            }
        }
        Stream {
            index,
            seed,
            plan,
            wire,
            chunks,
            expected,
            server_closes,
            ending_at,
            echoes_before_ending,
        }
    }
}

/// Opens a WebSocket to `addr` by hand and returns the socket, with
/// `TCP_NODELAY` so that every write goes out as it is; `compressed`:
/// permessage-deflate is offered and must be accepted.
async fn connect(addr: SocketAddr, compressed: bool) -> TcpStream {
    let mut socket = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect to the server");
    socket.set_nodelay(true).expect("set TCP_NODELAY");
    let mut request = Request::upgrade("/ws");
    if compressed {
        request = request.header("Sec-WebSocket-Extensions", DEFLATE_OFFER);
    }
    let request = request.to_bytes(addr);
    within("sending the upgrade request", socket.write_all(&request))
        .await
        .expect("send the upgrade request");
    let mut rest = Vec::new();
    let response = read_response(&mut socket, &mut rest).await;
    assert_eq!(response.status, 101, "upgrade refused: {response:?}");
    assert!(rest.is_empty(), "the server spoke first: {rest:?}");
    assert_eq!(
        response.header("Sec-WebSocket-Extensions").is_some(),
        compressed,
        "{response:?}"
    );
    socket
}

/// Writes the stream chunk by chunk, pausing after each; stops at the first
/// write error (the server may close before it has read everything).
///
/// Before the ending, it waits until the answers to everything before it
/// are in (`received` counts the bytes read). A server that fails the
/// connection closes it with the client's bytes unread, so the kernel
/// resets it and drops whatever the server had not sent yet; with nothing
/// but the close frame left to send, the answer does not depend on timing.
async fn write_chunks(
    writer: &mut OwnedWriteHalf,
    stream: &Stream,
    mut received: watch::Receiver<usize>,
) {
    let mut at = 0;
    for &chunk in &stream.chunks {
        if at == stream.ending_at
            && received
                .wait_for(|&n| n >= stream.echoes_before_ending)
                .await
                .is_err()
        {
            return;
        }
        if writer
            .write_all(&stream.wire[at..at + chunk])
            .await
            .is_err()
        {
            return;
        }
        at += chunk;
        tokio::time::sleep(CHUNK_PAUSE).await;
    }
}

/// Reads into `received` until the server closes the connection (true) or
/// at least `enough` bytes are in (false), publishing the count in
/// `progress`.
async fn read_until(
    reader: &mut OwnedReadHalf,
    received: &mut Vec<u8>,
    enough: usize,
    progress: watch::Sender<usize>,
) -> bool {
    while received.len() < enough {
        if read_some(reader, received).await {
            return true;
        }
        progress.send_replace(received.len());
    }
    false
}

/// One read into `received`; true once the server has closed the
/// connection (EOF or reset).
async fn read_some(reader: &mut OwnedReadHalf, received: &mut Vec<u8>) -> bool {
    match reader.read_buf(received).await {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(e) => panic!("reading from the server: {e}"),
    }
}

/// What a server sent back on one connection.
#[derive(Debug, Default)]
struct Answer {
    /// Every byte, in order.
    bytes: Vec<u8>,
    /// Whether the server closed the connection (EOF or reset).
    closed: bool,
    /// Whether the exchange was cut at [`STREAM_DEADLINE`].
    timed_out: bool,
}

/// Sends `stream` to the server at `addr` and collects its answer: every
/// byte until it closes the connection, or until it has sent at least the
/// expected bytes and then stays quiet.
async fn exchange(addr: SocketAddr, stream: Arc<Stream>) -> Answer {
    let (mut reader, mut writer) = connect(addr, stream.plan.compressed).await.into_split();
    let mut answer = Answer::default();
    let quiet = if stream.server_closes {
        CLOSE_GRACE
    } else {
        QUIET
    };
    let (progress, received) = watch::channel(0);
    let both = async {
        let (_, closed) = tokio::join!(
            write_chunks(&mut writer, &stream, received),
            read_until(
                &mut reader,
                &mut answer.bytes,
                stream.expected.len(),
                progress
            )
        );
        answer.closed = closed;
        // Everything expected is in and written: anything more comes soon.
        while !answer.closed {
            match timeout(quiet, read_some(&mut reader, &mut answer.bytes)).await {
                Ok(closed) => answer.closed = closed,
                Err(_) => break,
            }
        }
    };
    let finished = tokio::time::timeout_at(Instant::now() + STREAM_DEADLINE, both).await;
    answer.timed_out = finished.is_err();
    drop(writer);
    answer
}

/// The close code of the last frame in `bytes`, for failure messages.
fn last_close(bytes: &[u8]) -> String {
    let mut rest = bytes;
    let mut last = None;
    while let Some(decoded) = decode(rest) {
        rest = &rest[decoded.wire_len..];
        last = Some(decoded.frame);
    }
    match last {
        Some(frame) if frame.close_code().is_some() => format!("close {:?}", frame.close_code()),
        Some(frame) => format!("last frame {:?}", frame.opcode),
        None => "no frame".to_owned(),
    }
}

/// Describes where `actual` first differs from `reference`, with a hex
/// window of both; `None` when they are equal.
fn difference(
    reference_name: &str,
    reference: &[u8],
    actual_name: &str,
    actual: &[u8],
) -> Option<String> {
    if reference == actual {
        return None;
    }
    let at = reference
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(reference.len().min(actual.len()));
    let mut report = format!(
        "first difference at offset {at}: {reference_name} {} bytes ({}), {actual_name} {} bytes ({})\n",
        reference.len(),
        last_close(reference),
        actual.len(),
        last_close(actual)
    );
    for (name, bytes) in [(reference_name, reference), (actual_name, actual)] {
        let start = at.saturating_sub(16);
        let end = (at + 32).min(bytes.len());
        let _ = write!(report, "  {name:>9} @{start}:");
        for (offset, byte) in bytes.iter().enumerate().take(end).skip(start) {
            let marker = if offset == at { '>' } else { ' ' };
            let _ = write!(report, "{marker}{byte:02x}");
        }
        report.push('\n');
    }
    Some(report)
}

/// Everything wrong with one stream's answers: uring against the epoll
/// reference (bytes and who closed), then the reference against the model.
fn compare(stream: &Stream, epoll: &Answer, uring: &Answer) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, answer) in [("epoll", epoll), ("uring", uring)] {
        if answer.timed_out {
            problems.push(format!(
                "  {name} was still busy after {STREAM_DEADLINE:?} ({} bytes received)",
                answer.bytes.len()
            ));
        }
    }
    if let Some(diff) = difference("epoll", &epoll.bytes, "uring", &uring.bytes) {
        problems.push(format!("  uring differs from epoll: {diff}"));
    }
    if epoll.closed != uring.closed {
        problems.push(format!(
            "  epoll {} the connection, uring {}",
            closed_or_not(epoll.closed),
            closed_or_not(uring.closed)
        ));
    }
    if let Some(diff) = difference("expected", &stream.expected, "epoll", &epoll.bytes) {
        problems.push(format!("  epoll differs from the model: {diff}"));
    }
    if epoll.closed != stream.server_closes {
        problems.push(format!(
            "  epoll {} the connection, expected it {}",
            closed_or_not(epoll.closed),
            closed_or_not(stream.server_closes)
        ));
    }
    problems
}

fn closed_or_not(closed: bool) -> &'static str {
    if closed {
        "closed"
    } else {
        "kept open"
    }
}

/// The base seed: [`BASE_SEED`] unless [`SEED_ENV`] says otherwise.
fn base_seed() -> u64 {
    let text = std::env::var(SEED_ENV).unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return BASE_SEED;
    }
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("{SEED_ENV}={text:?} is not a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uring_answers_every_stream_like_epoll() {
    let base = base_seed();
    let streams: Vec<Arc<Stream>> = plans()
        .into_iter()
        .enumerate()
        .map(|(index, plan)| Arc::new(Stream::generate(index, stream_seed(base, index), plan)))
        .collect();
    let total: usize = streams.iter().map(|s| s.wire.len()).sum();
    println!(
        "base seed {base:#x} ({SEED_ENV}): {} streams, {total} client bytes",
        streams.len()
    );
    let epoll = Server::start(Backend::Epoll, SERVER_ARGS).await;
    let uring = Server::start(Backend::Uring, SERVER_ARGS).await;

    let mut runs = JoinSet::new();
    for stream in &streams {
        for (backend, addr) in [
            (Backend::Epoll, epoll.addr()),
            (Backend::Uring, uring.addr()),
        ] {
            let stream = Arc::clone(stream);
            runs.spawn(async move { (stream.index, backend, exchange(addr, stream).await) });
        }
    }
    let mut answers: Vec<[Option<Answer>; 2]> = streams.iter().map(|_| [None, None]).collect();
    while let Some(run) = runs.join_next().await {
        let (index, backend, answer) = run.expect("an exchange panicked");
        answers[index][usize::from(backend == Backend::Uring)] = Some(answer);
    }

    let mut failures = Vec::new();
    for (stream, [epoll_answer, uring_answer]) in streams.iter().zip(answers) {
        let (Some(epoll_answer), Some(uring_answer)) = (epoll_answer, uring_answer) else {
            unreachable!("every exchange reports back");
        };
        let problems = compare(stream, &epoll_answer, &uring_answer);
        if !problems.is_empty() {
            failures.push(format!(
                "stream {} (seed {:#018x}, {:?}, {} client bytes in {} writes):\n{}",
                stream.index,
                stream.seed,
                stream.plan,
                stream.wire.len(),
                stream.chunks.len(),
                problems.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} streams failed (base seed {base:#x}, {SEED_ENV} to re-run):\n{}",
        failures.len(),
        streams.len(),
        failures.join("\n")
    );
}
