//! What a message carries and how an echo is checked.
//!
//! Every payload starts with a header holding the message's sequence number
//! and its send time (nanoseconds since the run started), followed by a
//! per-connection filler pattern:
//!
//! * binary: `seq` as u64 little-endian, then `sent_ns` as u64 little-endian
//!   (16 bytes), then filler bytes that cover all 256 values;
//! * text: `seq` and `sent_ns` as 16 lowercase hex digits each (32 bytes,
//!   valid UTF-8), then ASCII letters;
//! * JSON snapshots: text frames with the text header, then records shaped
//!   like a game's state snapshot (`{"id":17,"x":-412.5,...},`), with
//!   pseudo-random numbers: it compresses about as well as real state-sync
//!   JSON, where the letters of `text` compress to almost nothing.
//!
//! The filler is built once per worker and kind ([`Template`]); each
//! connection reads it from its own offset ([`Template::filler`]), so
//! neighbouring connections carry different bytes without a copy each.
//!
//! The echo check compares the whole payload against what was sent: the
//! header against the expected sequence number (order) and send time, the
//! length, and the filler against the template. A payload that arrives
//! whole is checked with [`verify`]; one that arrives in pieces is checked
//! piece by piece as it lands, with the same verdict, by [`EchoCheck`].

use std::cell::RefCell;

use serde::Serialize;

use crate::deflate::MessageDeflate;

/// Text or binary WebSocket messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// Binary frames (opcode 0x2).
    Binary,
    /// Text frames (opcode 0x1), valid UTF-8.
    Text,
    /// Text frames shaped like JSON game-state snapshots (compressible).
    Json,
}

impl PayloadKind {
    /// The WebSocket opcode of data frames of this kind.
    pub fn opcode(self) -> u8 {
        match self {
            PayloadKind::Binary => 0x2,
            PayloadKind::Text | PayloadKind::Json => 0x1,
        }
    }

    /// Header length, which is also the smallest payload allowed.
    pub fn min_size(self) -> usize {
        match self {
            PayloadKind::Binary => 16,
            PayloadKind::Text | PayloadKind::Json => 32,
        }
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            PayloadKind::Binary => "binary",
            PayloadKind::Text => "text",
            PayloadKind::Json => "json",
        }
    }

    /// Builds `len` bytes of this kind's filler; `salt` shifts the pattern.
    pub fn template(self, len: usize, salt: u64) -> Vec<u8> {
        if self == PayloadKind::Json {
            return json_snapshot(len, salt);
        }
        (0..len)
            .map(|i| match self {
                PayloadKind::Binary => (i as u64).wrapping_mul(131).wrapping_add(salt) as u8,
                _ => b'a' + ((i as u64 + salt) % 26) as u8,
            })
            .collect()
    }

    /// Writes the header for (`seq`, `sent_ns`) into the first
    /// [`min_size`](Self::min_size) bytes of `buf`.
    #[inline]
    pub fn write_header(self, buf: &mut [u8], seq: u64, sent_ns: u64) {
        match self {
            PayloadKind::Binary => {
                buf[..8].copy_from_slice(&seq.to_le_bytes());
                buf[8..16].copy_from_slice(&sent_ns.to_le_bytes());
            }
            PayloadKind::Text | PayloadKind::Json => {
                write_hex(&mut buf[..16], seq);
                write_hex(&mut buf[16..32], sent_ns);
            }
        }
    }

    /// Reads the sequence number from a payload header, if it parses.
    #[inline]
    pub fn read_seq(self, buf: &[u8]) -> Option<u64> {
        match self {
            PayloadKind::Binary => Some(u64::from_le_bytes(buf.get(..8)?.try_into().ok()?)),
            PayloadKind::Text | PayloadKind::Json => read_hex(buf.get(..16)?),
        }
    }
}

/// `len` bytes of JSON-like state-snapshot records (ASCII, so any cut is
/// valid UTF-8), with numbers from a generator seeded by `salt`.
fn json_snapshot(len: usize, salt: u64) -> Vec<u8> {
    const STATES: [&str; 4] = ["idle", "running", "jumping", "reloading"];
    let mut rng = salt
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    let mut out = String::with_capacity(len + 128);
    let mut id = 0;
    while out.len() < len {
        let (x, y, hp, state) = (next(20_000), next(20_000), next(101), next(4));
        out.push_str(&format!(
            "{{\"id\":{id},\"x\":{}.{},\"y\":{}.{},\"hp\":{hp},\"state\":\"{}\"}},",
            x as i64 - 10_000,
            x % 10,
            y as i64 - 10_000,
            y % 10,
            STATES[state as usize]
        ));
        id += 1;
    }
    out.truncate(len);
    out.into_bytes()
}

fn write_hex(out: &mut [u8], v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate() {
        *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
}

fn read_hex(s: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

/// How many different filler offsets connections use ([`Template::filler`]).
pub const FILLER_OFFSETS: usize = 256;

/// The filler of every message of one kind up to one size, built once per
/// worker: connection `id` uses the bytes from offset `id % 256` on. With
/// permessage-deflate it also holds the worker's compression state, which
/// its connections share (the worker is one thread, and a message is
/// compressed or an echo inflated whole, so a borrow never outlives one
/// call).
#[derive(Debug)]
pub struct Template {
    kind: PayloadKind,
    bytes: Vec<u8>,
    deflate: Option<RefCell<MessageDeflate>>,
}

impl Template {
    /// The filler of `kind` for payloads of up to `max_size` bytes.
    pub fn new(kind: PayloadKind, max_size: usize) -> Template {
        Template {
            kind,
            bytes: kind.template(max_size + FILLER_OFFSETS, 0),
            deflate: None,
        }
    }

    /// The same, for connections that offer permessage-deflate with `offer`.
    pub fn with_deflate(mut self, offer: &str) -> Template {
        self.deflate = Some(RefCell::new(MessageDeflate::new(offer)));
        self
    }

    /// The worker's compression state, when its connections offer
    /// permessage-deflate.
    pub fn deflate(&self) -> Option<&RefCell<MessageDeflate>> {
        self.deflate.as_ref()
    }

    /// The payload kind.
    pub fn kind(&self) -> PayloadKind {
        self.kind
    }

    /// The largest payload it covers.
    pub fn max_size(&self) -> usize {
        self.bytes.len() - FILLER_OFFSETS
    }

    /// Connection `id`'s filler: [`max_size`](Self::max_size) bytes, of
    /// which a payload of `len` bytes uses the first `len` (its first
    /// [`PayloadKind::min_size`] bytes are replaced by the header).
    #[inline]
    pub fn filler(&self, id: usize) -> &[u8] {
        let at = id % FILLER_OFFSETS;
        &self.bytes[at..at + self.max_size()]
    }
}

/// A message that was sent and whose echo is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Sequence number on this connection.
    pub seq: u64,
    /// Payload length in bytes.
    pub len: u32,
    /// When it was handed to the socket (ns since run start).
    pub sent_ns: u64,
    /// When the schedule wanted it sent (ns since run start); equals
    /// `sent_ns` in closed mode.
    pub intended_ns: u64,
}

/// Why an echo did not match what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The echo carries the message's sequence number but is not as long
    /// as the message (or is too short to carry a sequence number at all).
    Length,
    /// The echo carries another sequence number (lost, duplicated or
    /// reordered). Checked before the length: once an echo is missing,
    /// every later echo answers another message, which usually has
    /// another length too, and that is a wrong order, not a wrong length.
    Order,
    /// Same length and sequence number, but other bytes differ.
    Content,
}

/// Checks an echoed payload against the message it should answer.
///
/// `template` is the connection's payload template (at least
/// `pending.len` bytes); only its filler part is compared, because the
/// header part is rewritten for every send.
#[inline]
pub fn verify(
    kind: PayloadKind,
    echo: &[u8],
    pending: &Pending,
    template: &[u8],
) -> Result<(), Mismatch> {
    let hdr = kind.min_size();
    if echo.len() < hdr {
        return Err(Mismatch::Length);
    }
    if kind.read_seq(echo) != Some(pending.seq) {
        return Err(Mismatch::Order);
    }
    if echo.len() != pending.len as usize {
        return Err(Mismatch::Length);
    }
    let mut expect = [0u8; 32];
    kind.write_header(&mut expect, pending.seq, pending.sent_ns);
    if echo[..hdr] != expect[..hdr] || echo[hdr..] != template[hdr..echo.len()] {
        return Err(Mismatch::Content);
    }
    Ok(())
}

/// Checks one echoed message that arrives in pieces, as the pieces land,
/// with the verdict [`verify`] would give the whole payload. Only the
/// payload header (at most 32 bytes) is kept; the rest is compared in place.
#[derive(Debug, Clone)]
pub struct EchoCheck {
    /// The message the echo should answer (`None`: not checked).
    expect: Option<Pending>,
    /// Payload bytes received so far.
    received: usize,
    /// The payload header as received.
    header: [u8; 32],
    /// No filler byte so far differed.
    filler_ok: bool,
}

impl EchoCheck {
    /// Starts checking an echo of `expect` (`None`: count bytes only).
    pub fn new(expect: Option<Pending>) -> EchoCheck {
        EchoCheck {
            expect,
            received: 0,
            header: [0; 32],
            filler_ok: true,
        }
    }

    /// The message this echo is checked against.
    pub fn expected(&self) -> Option<Pending> {
        self.expect
    }

    /// Payload bytes received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// Takes the next `piece` of the payload; `filler` is the connection's
    /// ([`Template::filler`]).
    #[inline]
    pub fn piece(&mut self, kind: PayloadKind, piece: &[u8], filler: &[u8]) {
        let off = self.received;
        self.received += piece.len();
        let Some(p) = self.expect else {
            return;
        };
        let hdr = kind.min_size();
        if off < hdr {
            let n = (hdr - off).min(piece.len());
            self.header[off..off + n].copy_from_slice(&piece[..n]);
        }
        // Filler bytes: payload offsets hdr..len that this piece covers.
        let from = off.max(hdr);
        let to = (off + piece.len()).min(p.len as usize);
        if from < to && piece[from - off..to - off] != filler[from..to] {
            self.filler_ok = false;
        }
    }

    /// The verdict once the whole echo has arrived.
    pub fn finish(&self, kind: PayloadKind) -> Result<(), Mismatch> {
        let Some(p) = self.expect else {
            return Err(Mismatch::Order);
        };
        let hdr = kind.min_size();
        if self.received < hdr {
            return Err(Mismatch::Length);
        }
        if kind.read_seq(&self.header[..hdr]) != Some(p.seq) {
            return Err(Mismatch::Order);
        }
        if self.received != p.len as usize {
            return Err(Mismatch::Length);
        }
        let mut expect = [0u8; 32];
        kind.write_header(&mut expect, p.seq, p.sent_ns);
        if self.header[..hdr] != expect[..hdr] || !self.filler_ok {
            return Err(Mismatch::Content);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(kind: PayloadKind) {
        let mut t = kind.template(100, 7);
        let p = Pending {
            seq: 42,
            len: 60,
            sent_ns: 123_456_789,
            intended_ns: 123_000_000,
        };
        kind.write_header(&mut t, p.seq, p.sent_ns);
        let echo = t[..60].to_vec();
        assert_eq!(verify(kind, &echo, &p, &t), Ok(()));
        assert_eq!(verify(kind, &echo[..59], &p, &t), Err(Mismatch::Length));
        let mut bad = echo.clone();
        bad[40] ^= 1;
        assert_eq!(verify(kind, &bad, &p, &t), Err(Mismatch::Content));
        let mut bad = echo.clone();
        bad[kind.min_size() - 1] ^= 1;
        assert_eq!(verify(kind, &bad, &p, &t), Err(Mismatch::Content));
        let other = Pending { seq: 43, ..p };
        assert_eq!(verify(kind, &echo, &other, &t), Err(Mismatch::Order));
        assert_eq!(
            verify(kind, &echo[..kind.min_size() - 1], &p, &t),
            Err(Mismatch::Length),
            "too short to carry a sequence number"
        );
    }

    /// A server that skips one echo answers every later message in the
    /// place of an earlier one, mostly with another length: the verdict
    /// is the order, whatever the lengths (both ways of checking).
    #[test]
    fn the_echo_of_another_message_is_an_order_error_at_any_length() {
        for kind in [PayloadKind::Binary, PayloadKind::Text] {
            let tmpl = Template::new(kind, 100);
            let filler = tmpl.filler(3);
            let awaited = Pending {
                seq: 5,
                len: 40,
                sent_ns: 10,
                intended_ns: 10,
            };
            for len in [kind.min_size(), 39, 40, 41, 100] {
                let mut echo = filler[..len].to_vec();
                kind.write_header(&mut echo, 6, 20);
                assert_eq!(
                    verify(kind, &echo, &awaited, filler),
                    Err(Mismatch::Order),
                    "{kind:?} {len}"
                );
                let mut check = EchoCheck::new(Some(awaited));
                for piece in echo.chunks(7) {
                    check.piece(kind, piece, filler);
                }
                assert_eq!(check.finish(kind), Err(Mismatch::Order), "{kind:?} {len}");
            }
        }
    }

    #[test]
    fn piecewise_check_agrees_with_the_whole_check() {
        for kind in [PayloadKind::Binary, PayloadKind::Text] {
            let tmpl = Template::new(kind, 100);
            let filler = tmpl.filler(9);
            let p = Pending {
                seq: 7,
                len: 80,
                sent_ns: 55,
                intended_ns: 50,
            };
            let mut good = filler[..80].to_vec();
            kind.write_header(&mut good, p.seq, p.sent_ns);
            let mut cases = vec![good.clone(), good[..79].to_vec()];
            for at in [0, 3, kind.min_size() - 1, kind.min_size(), 79] {
                let mut bad = good.clone();
                bad[at] ^= 0x01;
                cases.push(bad);
            }
            let mut longer = good.clone();
            longer.push(b'x');
            cases.push(longer);
            for echo in &cases {
                let whole = verify(kind, echo, &p, filler);
                for step in 1..=echo.len().max(1) {
                    let mut check = EchoCheck::new(Some(p));
                    for piece in echo.chunks(step) {
                        check.piece(kind, piece, filler);
                    }
                    assert_eq!(check.finish(kind), whole, "{kind:?} step {step}");
                }
            }
        }
    }

    #[test]
    fn connections_get_different_fillers_from_one_template() {
        let t = Template::new(PayloadKind::Binary, 64);
        assert_eq!(t.max_size(), 64);
        assert_ne!(t.filler(0)[20..40], t.filler(1)[20..40]);
        assert_eq!(t.filler(3), t.filler(3 + FILLER_OFFSETS));
    }

    #[test]
    fn json_snapshots_are_text_that_compresses_like_json() {
        roundtrip(PayloadKind::Json);
        let t = PayloadKind::Json.template(1400, 0);
        assert!(std::str::from_utf8(&t).is_ok());
        assert!(t.starts_with(b"{\"id\":0,\"x\":"));
        // Neither incompressible nor a repeated pattern.
        let mut d = MessageDeflate::new(crate::deflate::DEFAULT_OFFER);
        d.plain_buffer().extend_from_slice(&t);
        let ratio = t.len() as f64 / d.compress_plain(15).len() as f64;
        assert!((1.8..5.0).contains(&ratio), "compresses {ratio:.2}x");
    }

    #[test]
    fn binary_roundtrip() {
        roundtrip(PayloadKind::Binary);
    }

    #[test]
    fn text_roundtrip_and_utf8() {
        roundtrip(PayloadKind::Text);
        let mut t = PayloadKind::Text.template(64, 3);
        PayloadKind::Text.write_header(&mut t, u64::MAX, 1);
        assert!(std::str::from_utf8(&t).is_ok());
        assert_eq!(PayloadKind::Text.read_seq(&t), Some(u64::MAX));
    }
}
