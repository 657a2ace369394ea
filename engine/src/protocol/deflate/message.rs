//! The compressed echo of one message, with no memory per idle connection.
//!
//! [`WorkerDeflate`] is a worker's: one inflater and one deflater per server
//! window size, shared by every connection of the worker, and the scratch
//! buffer inflated output is checked in. [`ConnDeflate`] is a connection's:
//! the [`Agreed`] parameters and nothing else while no compressed message is
//! under way. A message that arrives across several reads (a frame cut
//! across receive buffers, or a fragmented message) holds an inflater of
//! its own from its first bytes to its end, taken from the worker's spares
//! and given back then.
//!
//! Every compressed message is inflated as it arrives: text is checked as
//! UTF-8 (failing at the first bad byte, like uncompressed text), and the
//! inflated size is held to the message cap before it is passed. Then:
//! - **passthrough** ([`Agreed::passthrough`]): the echo is the client's own
//!   compressed payload, and the inflated bytes are dropped as they are
//!   checked;
//! - otherwise the inflated message is kept and compressed again with the
//!   server's parameters ([`Echo::Recompressed`]).
//!
//! With context takeover (only when the server's policy allows it and the
//! client does not opt out), the connection keeps its own inflater or
//! deflater for good: the memory cost the README states.

use super::negotiation::{Agreed, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use super::raw_stream::{Deflater, InflateError, Inflater, Progress};
use crate::protocol::close_code::CloseCode;
use crate::protocol::utf8::Utf8Stream;

/// Bytes of inflated output checked at a time.
const SCRATCH_LEN: usize = 16 << 10;
/// Inflaters kept for the next message in flight once their message ends;
/// more are freed.
const SPARE_INFLATERS: usize = 2;

/// A worker's compression state, shared by all of its connections.
pub struct WorkerDeflate {
    /// Inflates every message that arrives whole in one read.
    inflater: Inflater,
    /// Inflaters given back by messages that were in flight.
    spare: Vec<Inflater>,
    /// One deflater per server window size (8 to 15 bits), made when first used.
    deflaters: [Option<Deflater>; (MAX_WINDOW_BITS - MIN_WINDOW_BITS + 1) as usize],
    scratch: Box<[u8]>,
}

impl std::fmt::Debug for WorkerDeflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerDeflate")
            .field("spare", &self.spare.len())
            .finish_non_exhaustive()
    }
}

impl Default for WorkerDeflate {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerDeflate {
    /// A worker's state; deflaters are made when first needed.
    pub fn new() -> Self {
        Self {
            inflater: Inflater::new(),
            spare: Vec::new(),
            deflaters: Default::default(),
            scratch: vec![0; SCRATCH_LEN].into_boxed_slice(),
        }
    }

    fn take_inflater(&mut self) -> Inflater {
        match self.spare.pop() {
            Some(mut inflater) => {
                inflater.reset();
                inflater
            }
            None => Inflater::new(),
        }
    }

    fn give_back(&mut self, inflater: Inflater) {
        if self.spare.len() < SPARE_INFLATERS {
            self.spare.push(inflater);
        }
    }

    /// The shared deflater for a server window of `bits`, reset.
    fn deflater(&mut self, bits: u8) -> &mut Deflater {
        let slot = &mut self.deflaters[usize::from(bits - MIN_WINDOW_BITS)];
        let deflater = slot.get_or_insert_with(|| Deflater::new(bits));
        deflater.reset();
        deflater
    }
}

/// What to send back for a compressed message, once all of it was checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Echo {
    /// The client's compressed payload, unchanged (with RSV1 set).
    Passthrough,
    /// This payload, compressed by the server (with RSV1 set).
    Recompressed(Vec<u8>),
}

/// The next compressed bytes of a message.
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    /// The bytes, unmasked.
    pub bytes: &'a [u8],
    /// The message starts with these bytes.
    pub start: bool,
    /// The message ends with these bytes.
    pub end: bool,
    /// The message is text (its inflated bytes must be UTF-8).
    pub text: bool,
}

/// A connection's compression state: the agreed parameters, plus a message
/// under way or the windows kept by context takeover, if any.
#[derive(Debug)]
pub struct ConnDeflate {
    agreed: Agreed,
    /// A message that arrived in part so far.
    message: Option<Box<InFlight>>,
    /// Windows kept across messages (context takeover only).
    kept: Option<Box<Kept>>,
}

/// A compressed message under way across reads.
#[derive(Debug)]
struct InFlight {
    /// Its own inflater; `None` when the connection keeps one.
    inflater: Option<Inflater>,
    check: Check,
}

/// The state of a connection that keeps context.
#[derive(Debug, Default)]
struct Kept {
    /// The client compresses across messages.
    inflater: Option<Inflater>,
    /// The server compresses across messages.
    deflater: Option<Deflater>,
}

/// What is checked in a message's inflated bytes.
#[derive(Debug)]
struct Check {
    /// How many more bytes it may inflate to.
    left: u64,
    /// Text: the inflated bytes must be UTF-8.
    utf8: Option<Utf8Stream>,
    /// The inflated bytes, kept when the echo is recompressed.
    inflated: Option<Vec<u8>>,
}

impl ConnDeflate {
    /// A connection that agreed on `agreed`.
    pub fn new(agreed: Agreed) -> Self {
        let keeps_client = !agreed.client_no_context_takeover;
        let keeps_server = !agreed.server_no_context_takeover;
        let kept = (keeps_client || keeps_server).then(|| {
            Box::new(Kept {
                inflater: keeps_client.then(Inflater::new),
                deflater: keeps_server.then(|| Deflater::new(agreed.server_window_bits())),
            })
        });
        Self {
            agreed,
            message: None,
            kept,
        }
    }

    /// The parameters the connection agreed on.
    pub fn agreed(&self) -> Agreed {
        self.agreed
    }

    /// Whether a compressed message is under way (and holds an inflater).
    pub fn in_flight(&self) -> bool {
        self.message.is_some()
    }

    /// Feeds the next compressed bytes of a message, in order. At the
    /// message's end it says what to echo; before that `None`. `Err` holds
    /// the close code to fail the connection with: 1007 for a stream that
    /// does not inflate or text that is not UTF-8, 1009 for a message that
    /// inflates to more than `max_message` bytes.
    pub fn feed(
        &mut self,
        worker: &mut WorkerDeflate,
        piece: Piece<'_>,
        max_message: u64,
    ) -> Result<Option<Echo>, CloseCode> {
        let passthrough = self.agreed.passthrough();
        let check = || Check {
            left: max_message,
            utf8: piece.text.then(Utf8Stream::default),
            inflated: (!passthrough).then(Vec::new),
        };
        let kept_inflater = self.kept.as_mut().and_then(|kept| kept.inflater.as_mut());
        if piece.start && piece.end && kept_inflater.is_none() {
            // The usual case: a whole message in one read, through the
            // worker's inflater; the connection keeps nothing.
            let mut check = check();
            worker.inflater.reset();
            check.inflate(&mut worker.inflater, &mut worker.scratch, piece.bytes, true)?;
            return Ok(Some(self.echo(worker, check)));
        }
        if piece.start {
            self.message = Some(Box::new(InFlight {
                inflater: kept_inflater.is_none().then(|| worker.take_inflater()),
                check: check(),
            }));
        }
        let Some(message) = self.message.as_mut() else {
            debug_assert!(false, "compressed bytes without a message under way");
            return Err(CloseCode::PROTOCOL_ERROR);
        };
        let inflater = match message.inflater.as_mut() {
            Some(own) => own,
            None => self
                .kept
                .as_mut()
                .and_then(|kept| kept.inflater.as_mut())
                .expect("a message without its own inflater uses the kept one"),
        };
        let result = message
            .check
            .inflate(inflater, &mut worker.scratch, piece.bytes, piece.end);
        if result.is_err() || piece.end {
            let message = self.message.take().expect("under way");
            if let Some(inflater) = message.inflater {
                worker.give_back(inflater);
            }
            result?;
            return Ok(Some(self.echo(worker, message.check)));
        }
        Ok(None)
    }

    /// The echo of a message whose every byte passed its checks.
    fn echo(&mut self, worker: &mut WorkerDeflate, check: Check) -> Echo {
        let Some(inflated) = check.inflated else {
            return Echo::Passthrough;
        };
        let deflater = match self.kept.as_mut().and_then(|kept| kept.deflater.as_mut()) {
            Some(kept) => kept,
            None => worker.deflater(self.agreed.server_window_bits()),
        };
        let mut payload = Vec::with_capacity(inflated.len() / 2 + 16);
        deflater.compress(&inflated, &mut payload);
        Echo::Recompressed(payload)
    }
}

impl Check {
    /// Inflates `bytes` and checks the output; `end` also inflates the
    /// sync tail and checks that text ends on a character boundary.
    fn inflate(
        &mut self,
        inflater: &mut Inflater,
        scratch: &mut [u8],
        bytes: &[u8],
        end: bool,
    ) -> Result<(), CloseCode> {
        let (utf8, inflated) = (&mut self.utf8, &mut self.inflated);
        // The sink stops inflation only for bytes that cannot be UTF-8.
        let mut sink = |out: &[u8]| {
            if let Some(utf8) = utf8.as_mut() {
                if !utf8.feed(out) {
                    return false;
                }
            }
            if let Some(inflated) = inflated.as_mut() {
                inflated.extend_from_slice(out);
            }
            true
        };
        let mut result = inflater.inflate(bytes, scratch, &mut self.left, &mut sink);
        if end && result == Ok(Progress::Done) {
            result = inflater.finish(scratch, &mut self.left, &mut sink);
        }
        match result {
            Err(InflateError::TooBig) => return Err(CloseCode::MESSAGE_TOO_BIG),
            Err(InflateError::Undecodable) | Ok(Progress::Stopped) => {
                return Err(CloseCode::INVALID_PAYLOAD)
            }
            Ok(Progress::Done) => {}
        }
        if end {
            if self.utf8.is_some_and(|utf8| !utf8.is_complete()) {
                return Err(CloseCode::INVALID_PAYLOAD);
            }
            if inflater.ended() {
                // A final block ended the stream: a kept window cannot go on.
                inflater.reset();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::deflate::json_like as json;
    use crate::protocol::deflate::negotiation::{negotiate, Policy};

    fn agreed(offer: &str, context_takeover: bool) -> Agreed {
        negotiate([offer.as_bytes()], Policy { context_takeover }).expect("accepted")
    }

    /// `message` compressed by a client with a fresh window each time.
    fn compressed(message: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        Deflater::new(15).compress(message, &mut wire);
        wire
    }

    fn inflate(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut inflater = Inflater::new();
        let mut left = u64::MAX - 1;
        let mut scratch = [0u8; 4096];
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

    fn whole(text: bool, bytes: &[u8]) -> Piece<'_> {
        Piece {
            bytes,
            start: true,
            end: true,
            text,
        }
    }

    #[test]
    fn a_whole_message_is_passed_through_and_keeps_nothing() {
        let mut worker = WorkerDeflate::new();
        let mut conn = ConnDeflate::new(agreed("permessage-deflate", false));
        assert!(conn.kept.is_none());
        let wire = compressed(&json(1024));
        for _ in 0..3 {
            assert_eq!(
                conn.feed(&mut worker, whole(true, &wire), 1 << 20),
                Ok(Some(Echo::Passthrough))
            );
            assert!(!conn.in_flight());
        }
        assert!(worker.spare.is_empty(), "no inflater was taken");
        assert!(std::mem::size_of::<ConnDeflate>() <= 24);
    }

    #[test]
    fn a_message_in_pieces_holds_an_inflater_only_until_its_end() {
        let mut worker = WorkerDeflate::new();
        let mut conn = ConnDeflate::new(agreed("permessage-deflate", false));
        let wire = compressed("é".repeat(3000).as_bytes());
        let parts: Vec<&[u8]> = wire.chunks(wire.len() / 4 + 1).collect();
        for (i, part) in parts.iter().enumerate() {
            let piece = Piece {
                bytes: part,
                start: i == 0,
                end: i == parts.len() - 1,
                text: true,
            };
            let echo = conn.feed(&mut worker, piece, 1 << 20).unwrap();
            assert_eq!(conn.in_flight(), !piece.end);
            assert_eq!(echo.is_some(), piece.end);
        }
        assert_eq!(worker.spare.len(), 1, "the inflater was given back");
    }

    #[test]
    fn text_is_checked_as_it_inflates() {
        let mut worker = WorkerDeflate::new();
        let mut conn = ConnDeflate::new(agreed("permessage-deflate", false));
        let mut bad = json(2000);
        bad[100] = 0xff;
        let wire = compressed(&bad);
        assert_eq!(
            conn.feed(&mut worker, whole(true, &wire), 1 << 20),
            Err(CloseCode::INVALID_PAYLOAD)
        );
        assert_eq!(
            conn.feed(&mut worker, whole(false, &wire), 1 << 20),
            Ok(Some(Echo::Passthrough)),
            "binary is not UTF-8 checked"
        );
        // Fail fast: the first piece already holds the bad byte.
        let first = Piece {
            bytes: &wire[..wire.len() / 2],
            start: true,
            end: false,
            text: true,
        };
        assert_eq!(
            conn.feed(&mut worker, first, 1 << 20),
            Err(CloseCode::INVALID_PAYLOAD)
        );
        assert!(!conn.in_flight());
        // A character cut at the message's end.
        let cut = compressed(&"€".as_bytes()[..2]);
        assert_eq!(
            conn.feed(&mut worker, whole(true, &cut), 1 << 20),
            Err(CloseCode::INVALID_PAYLOAD)
        );
    }

    #[test]
    fn the_cap_counts_inflated_bytes() {
        let mut worker = WorkerDeflate::new();
        let mut conn = ConnDeflate::new(agreed("permessage-deflate", false));
        let wire = compressed(&vec![b'x'; 4096]);
        assert!(wire.len() < 100);
        assert_eq!(
            conn.feed(&mut worker, whole(false, &wire), 4096),
            Ok(Some(Echo::Passthrough))
        );
        assert_eq!(
            conn.feed(&mut worker, whole(false, &wire), 4095),
            Err(CloseCode::MESSAGE_TOO_BIG)
        );
        assert_eq!(
            conn.feed(&mut worker, whole(false, b"\xff\xff"), 4095),
            Err(CloseCode::INVALID_PAYLOAD)
        );
    }

    #[test]
    fn the_verdict_does_not_depend_on_how_the_message_is_cut() {
        // Invalid UTF-8 early in a message far over the cap: 1007 always;
        // valid text over the cap: 1009 always.
        let mut bad = vec![b'a'; 100_000];
        bad[10] = 0xff;
        for (message, code) in [
            (bad, CloseCode::INVALID_PAYLOAD),
            (vec![b'a'; 100_000], CloseCode::MESSAGE_TOO_BIG),
        ] {
            let wire = compressed(&message);
            for cut in [1, 3, wire.len() / 2, wire.len()] {
                let mut worker = WorkerDeflate::new();
                let mut conn = ConnDeflate::new(agreed("permessage-deflate", false));
                let mut verdict = Ok(None);
                let parts: Vec<&[u8]> = wire.chunks(cut).collect();
                for (i, part) in parts.iter().enumerate() {
                    let piece = Piece {
                        bytes: part,
                        start: i == 0,
                        end: i == parts.len() - 1,
                        text: true,
                    };
                    verdict = conn.feed(&mut worker, piece, 1000);
                    if verdict.is_err() {
                        break;
                    }
                }
                assert_eq!(verdict, Err(code), "cut every {cut} bytes");
            }
        }
    }

    #[test]
    fn a_smaller_server_window_gets_a_recompressed_echo() {
        let mut worker = WorkerDeflate::new();
        let mut conn = ConnDeflate::new(agreed(
            "permessage-deflate; server_max_window_bits=9",
            false,
        ));
        let message = json(5000);
        let echo = conn
            .feed(&mut worker, whole(true, &compressed(&message)), 1 << 20)
            .unwrap();
        let Some(Echo::Recompressed(payload)) = echo else {
            panic!("expected a recompressed echo, got {echo:?}");
        };
        assert_eq!(inflate(&payload), message);
    }

    #[test]
    fn context_takeover_keeps_windows_across_messages() {
        let mut worker = WorkerDeflate::new();
        let mut conn = ConnDeflate::new(agreed("permessage-deflate", true));
        assert!(conn.kept.is_some());
        // The client compresses two messages in one stream: the second
        // refers back into the first.
        let mut client = Deflater::new(15);
        let message = json(800);
        let (mut first, mut second) = (Vec::new(), Vec::new());
        client.compress(&message, &mut first);
        client.compress(&message, &mut second);
        assert!(second.len() < first.len() / 4);
        // The server's echoes form one stream too.
        let mut server_side = Inflater::new();
        let mut scratch = [0u8; 4096];
        for wire in [&first, &second] {
            let echo = conn.feed(&mut worker, whole(true, wire), 1 << 20).unwrap();
            let Some(Echo::Recompressed(payload)) = echo else {
                panic!("context takeover recompresses: {echo:?}");
            };
            let mut out = Vec::new();
            let mut left = 1 << 20;
            let mut sink = |piece: &[u8]| {
                out.extend_from_slice(piece);
                true
            };
            server_side
                .inflate(&payload, &mut scratch, &mut left, &mut sink)
                .unwrap();
            server_side
                .finish(&mut scratch, &mut left, &mut sink)
                .unwrap();
            assert_eq!(out, message);
        }
        // Without context takeover the second message cannot be inflated.
        let mut fresh = ConnDeflate::new(agreed("permessage-deflate", false));
        assert_eq!(
            fresh.feed(&mut worker, whole(true, &second), 1 << 20),
            Err(CloseCode::INVALID_PAYLOAD)
        );
    }
}
