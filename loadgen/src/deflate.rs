//! permessage-deflate (RFC 7692) on the client side: the offer, the check
//! of the server's answer, and one compressor and one inflater per worker.
//!
//! loadgen offers the extension with no context takeover in either
//! direction ([`DEFAULT_OFFER`]), so every message, ours and the server's,
//! is a self-contained raw DEFLATE stream: a worker compresses each message
//! on its own and inflates each echo on its own, and a connection keeps no
//! compression state (only the agreed client window). A server that
//! accepts the offer must answer `server_no_context_takeover` (RFC 7692
//! §7.1.1.1); an answer that would make the server keep context, or that
//! is not valid for the offer, fails the connection like a bad handshake.
//!
//! Messages are compressed at zlib's default level (6), as browsers do, and
//! sent in one frame with RSV1 set and the `00 00 ff ff` tail of the sync
//! flush left off (§7.2.1). An echo may come back compressed (RSV1) or not;
//! a compressed one is inflated and then checked like any other.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The offer loadgen sends by default (`--permessage-deflate`).
pub const DEFAULT_OFFER: &str =
    "permessage-deflate; client_no_context_takeover; server_no_context_takeover";

/// The tail a sync flush ends with, left off on the wire.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What the server agreed to, from its `Sec-WebSocket-Extensions` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    /// The window our messages may use (`client_max_window_bits`, 15 when
    /// the server set none).
    pub client_window: u8,
    /// The answer as the server sent it, for the report.
    pub answer: String,
}

/// Checks the server's `Sec-WebSocket-Extensions` answer to `offer`
/// (`None`: the server sent no such header). Returns the agreed parameters,
/// or why the answer cannot be used.
pub fn check_answer(offer: &str, answer: Option<&str>) -> Result<Agreed, String> {
    let Some(answer) = answer else {
        return Err("the server declined permessage-deflate".into());
    };
    let mut parts = answer.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|name| name.eq_ignore_ascii_case("permessage-deflate"))
        || answer.contains(',')
    {
        return Err(format!(
            "an extension answer other than one permessage-deflate: {answer:?}"
        ));
    }
    let offered = |name: &str| {
        offer.split(';').skip(1).any(|p| {
            p.split('=')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(name)
        })
    };
    let mut server_no_context = false;
    let mut client_window = 15u8;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        let bits = || {
            value
                .and_then(|v| v.parse::<u8>().ok())
                .filter(|b| (8..=15).contains(b))
                .ok_or_else(|| format!("a bad window size in {answer:?}"))
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => server_no_context = true,
            "client_no_context_takeover" if value.is_none() => {}
            "server_max_window_bits" => {
                bits()?;
            }
            "client_max_window_bits" if offered("client_max_window_bits") => {
                client_window = bits()?;
            }
            _ => return Err(format!("a parameter loadgen did not offer in {answer:?}")),
        }
    }
    if !server_no_context {
        return Err(format!(
            "the server keeps its compression context ({answer:?}); loadgen inflates every \
             echo on its own and needs server_no_context_takeover"
        ));
    }
    Ok(Agreed {
        // zlib cannot write a raw stream with an 8-bit window; a 9-bit one
        // never reaches further back than 256 bytes either way.
        client_window: client_window.max(9),
        answer: answer.to_string(),
    })
}

/// A compressed echo that does not inflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadStream;

/// One worker's compressor and inflater, shared by all its connections,
/// and the offer its connections make.
pub struct MessageDeflate {
    /// The `Sec-WebSocket-Extensions` value offered.
    offer: String,
    /// Compressors by window bits (one per window a server asked for).
    compressors: Vec<(u8, Compress)>,
    inflater: Decompress,
    /// The last inflated echo.
    inflated: Vec<u8>,
    /// A message before it is compressed.
    plain: Vec<u8>,
    /// The last compressed message, without the tail.
    wire: Vec<u8>,
}

impl std::fmt::Debug for MessageDeflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageDeflate")
            .field("offer", &self.offer)
            .finish_non_exhaustive()
    }
}

impl MessageDeflate {
    /// A worker's state for connections that offer `offer`.
    pub fn new(offer: &str) -> MessageDeflate {
        MessageDeflate {
            offer: offer.to_string(),
            compressors: Vec::new(),
            inflater: Decompress::new_with_window_bits(false, 15),
            inflated: Vec::new(),
            plain: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// The `Sec-WebSocket-Extensions` value to offer.
    pub fn offer(&self) -> &str {
        &self.offer
    }

    /// A scratch buffer for the next message's plain bytes, emptied.
    pub fn plain_buffer(&mut self) -> &mut Vec<u8> {
        self.plain.clear();
        &mut self.plain
    }

    /// Compresses the message in [`plain_buffer`](Self::plain_buffer) as one
    /// self-contained stream with a window of `window` bits, and returns it
    /// without the sync-flush tail.
    pub fn compress_plain(&mut self, window: u8) -> &[u8] {
        let at = match self.compressors.iter().position(|(w, _)| *w == window) {
            Some(at) => at,
            None => {
                self.compressors.push((
                    window,
                    Compress::new_with_window_bits(Compression::default(), false, window),
                ));
                self.compressors.len() - 1
            }
        };
        let compressor = &mut self.compressors[at].1;
        compressor.reset();
        let out = &mut self.wire;
        out.clear();
        let mut input: &[u8] = &self.plain;
        loop {
            out.reserve(input.len() / 2 + 64);
            let before = compressor.total_in();
            compressor
                .compress_vec(input, out, FlushCompress::Sync)
                .expect("deflate into a reserved buffer");
            input = &input[(compressor.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        debug_assert!(out.ends_with(&TAIL));
        out.truncate(out.len() - TAIL.len());
        out
    }

    /// Inflates one self-contained compressed message (`payload`, without
    /// the tail) and returns its bytes; at most `max_len + 1` bytes are
    /// inflated (more is a wrong echo anyway).
    pub fn inflate(&mut self, payload: &[u8], max_len: usize) -> Result<&[u8], BadStream> {
        self.inflater.reset(false);
        self.inflated.clear();
        self.inflated.reserve(max_len + 1);
        for input in [payload, &TAIL[..]] {
            let mut input = input;
            while !input.is_empty() && self.inflated.len() <= max_len {
                let room = max_len + 1 - self.inflated.len();
                let spare = self.inflated.capacity() - self.inflated.len();
                if spare < room {
                    self.inflated.reserve(room);
                }
                let before = self.inflater.total_in();
                let inflated_before = self.inflated.len();
                let status = self
                    .inflater
                    .decompress_vec(input, &mut self.inflated, FlushDecompress::Sync)
                    .map_err(|_| BadStream)?;
                let used = (self.inflater.total_in() - before) as usize;
                let produced = self.inflated.len() != inflated_before;
                input = &input[used..];
                match status {
                    Status::StreamEnd => break,
                    _ if used == 0 && !produced => return Err(BadStream),
                    _ => {}
                }
            }
        }
        self.inflated.truncate(max_len + 1);
        Ok(&self.inflated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_against_the_offer() {
        let ok = check_answer(
            DEFAULT_OFFER,
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        )
        .unwrap();
        assert_eq!(ok.client_window, 15);
        assert!(check_answer(DEFAULT_OFFER, None).is_err());
        assert!(check_answer(DEFAULT_OFFER, Some("permessage-deflate")).is_err());
        assert!(check_answer(
            DEFAULT_OFFER,
            Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=10")
        )
        .is_err());
        let offer = "permessage-deflate; server_no_context_takeover; client_max_window_bits";
        let narrow = check_answer(
            offer,
            Some("permessage-deflate; server_no_context_takeover; client_max_window_bits=10"),
        )
        .unwrap();
        assert_eq!(narrow.client_window, 10);
        assert!(check_answer(
            DEFAULT_OFFER,
            Some("x-webkit-deflate-frame; server_no_context_takeover")
        )
        .is_err());
    }

    #[test]
    fn messages_round_trip_through_the_shared_state() {
        let mut d = MessageDeflate::new(DEFAULT_OFFER);
        for (len, window) in [(0usize, 15u8), (1, 15), (1400, 15), (70_000, 15), (5000, 9)] {
            let message: Vec<u8> = (0..len).map(|i| b"{\"x\":1,\"y\":22}"[i % 14]).collect();
            d.plain_buffer().extend_from_slice(&message);
            let wire = d.compress_plain(window).to_vec();
            let back = d.inflate(&wire, len).unwrap();
            assert_eq!(back, &message[..], "{len} B, window {window}");
            // The cap: one byte more than asked, never the whole message.
            if len > 10 {
                assert_eq!(d.inflate(&wire, 10).unwrap().len(), 11);
            }
        }
        assert!(d.inflate(&[0xff, 0xff, 0xff], 100).is_err());
    }
}
