//! Negotiating permessage-deflate (RFC 7692 §5, §7.1) from the client's
//! `Sec-WebSocket-Extensions` offers.
//!
//! The client lists offers in its order of preference, possibly over several
//! header lines. [`negotiate`] takes the first permessage-deflate offer it
//! can honour and returns the [`Agreed`] parameters, whose
//! [`Agreed::response_header`] is the server's answer. An offer it must
//! decline (an unknown or repeated parameter, a value out of range: RFC 7692
//! §7.1) is skipped; when none is left the extension is simply not used.
//! Nothing here fails a handshake: an unparsable header line is ignored.
//!
//! What the server answers (RFC 7692 §7.1.1, §7.1.2):
//! - `client_no_context_takeover` always by default (§7.1.1.2 lets the
//!   server ask for it unasked): every client message is then a
//!   self-contained deflate stream, so one inflater per worker serves every
//!   connection and nothing is kept between messages;
//! - `server_no_context_takeover` always by default, so one deflater per
//!   worker serves every connection too;
//! - `server_max_window_bits` only when offered, with the offered value (the
//!   server never uses a larger window than the client asked for);
//! - `client_max_window_bits` only when offered (§7.1.2.2 forbids it
//!   otherwise), capped at the server's window: a client message then fits
//!   the window the server may use, so its compressed bytes are a valid
//!   echo as they are ([`Agreed::passthrough`]).
//!
//! With [`Policy::context_takeover`] the server asks for neither
//! no-context-takeover parameter and grants only what the client offers:
//! better compression across messages, for memory per connection.

use std::borrow::Cow;

/// The extension's registered name.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The largest LZ77 window (2^15 bytes), and the one implied when a window
/// parameter is absent.
pub const MAX_WINDOW_BITS: u8 = 15;
/// The smallest LZ77 window RFC 7692 allows (2^8 bytes).
pub const MIN_WINDOW_BITS: u8 = 8;

/// How the server negotiates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep LZ77 windows across messages where the client allows it,
    /// instead of asking for no context takeover in both directions.
    pub context_takeover: bool,
}

/// The parameters both sides agreed on: what the server's response says.
/// Six bytes, kept per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The server starts every message with an empty window.
    pub server_no_context_takeover: bool,
    /// The client starts every message with an empty window.
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits` as stated in the response, if stated.
    pub server_max_window_bits: Option<u8>,
    /// `client_max_window_bits` as stated in the response, if stated.
    pub client_max_window_bits: Option<u8>,
}

impl Agreed {
    /// The window the server's deflater may use, in bits.
    pub fn server_window_bits(&self) -> u8 {
        self.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS)
    }

    /// The window the client's deflater may use, in bits.
    pub fn client_window_bits(&self) -> u8 {
        self.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS)
    }

    /// Whether a client message, compressed as it came, is a valid message
    /// from the server: it refers to nothing before itself (the client
    /// keeps no context), its back-references fit the window the server may
    /// use, and the client's inflater starts every server message afresh
    /// (so a final deflate block in it cannot end a stream the client keeps).
    /// Then the echo is the client's own compressed payload.
    pub fn passthrough(&self) -> bool {
        self.client_no_context_takeover
            && self.server_no_context_takeover
            && self.client_window_bits() <= self.server_window_bits()
    }

    /// The value of the server's `Sec-WebSocket-Extensions` header.
    pub fn response_header(&self) -> String {
        let mut header = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            header.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            header.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            header.push_str(&format!("; server_max_window_bits={bits}"));
        }
        if let Some(bits) = self.client_max_window_bits {
            header.push_str(&format!("; client_max_window_bits={bits}"));
        }
        header
    }
}

/// Chooses the first permessage-deflate offer the server can honour among
/// the values of every `Sec-WebSocket-Extensions` header line, in order.
/// `None`: no such offer, and the extension is not used.
pub fn negotiate<'a>(
    header_values: impl IntoIterator<Item = &'a [u8]>,
    policy: Policy,
) -> Option<Agreed> {
    header_values
        .into_iter()
        .filter_map(|value| std::str::from_utf8(value).ok())
        .filter_map(parse_extension_list)
        .flatten()
        .filter(|offer| offer.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .find_map(|offer| accept(&offer, policy))
}

/// A permessage-deflate offer's parameters, once validated.
#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// The server's answer to one offer, or `None` to decline it.
fn accept(extension: &Extension<'_>, policy: Policy) -> Option<Agreed> {
    let offer = validate(extension)?;
    let server_bits = offer.server_max_window_bits;
    let server_window = server_bits.unwrap_or(MAX_WINDOW_BITS);
    let client_bits = offer
        .client_max_window_bits
        .map(|bits| bits.unwrap_or(MAX_WINDOW_BITS).min(server_window));
    let ask_both = !policy.context_takeover;
    Some(Agreed {
        server_no_context_takeover: ask_both || offer.server_no_context_takeover,
        client_no_context_takeover: ask_both || offer.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    })
}

/// Applies RFC 7692 §7.1's rules for declining: every parameter known,
/// none repeated, every value valid.
fn validate(extension: &Extension<'_>) -> Option<Offer> {
    let mut offer = Offer::default();
    let mut seen = [false; 4];
    for (name, value) in &extension.params {
        let slot = PARAMETERS
            .iter()
            .position(|known| name.eq_ignore_ascii_case(known))?;
        if std::mem::replace(&mut seen[slot], true) {
            return None;
        }
        let value = value.as_deref();
        match slot {
            0 if value.is_none() => offer.server_no_context_takeover = true,
            1 if value.is_none() => offer.client_no_context_takeover = true,
            2 => offer.server_max_window_bits = Some(window_bits(value?)?),
            3 => {
                offer.client_max_window_bits = Some(match value {
                    Some(value) => Some(window_bits(value)?),
                    None => None,
                })
            }
            _ => return None,
        }
    }
    Some(offer)
}

/// The parameters RFC 7692 defines for an offer, in [`validate`]'s order.
const PARAMETERS: [&str; 4] = [
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
];

/// A window-bits value: a decimal 8 to 15 without leading zeros (RFC 7692
/// §7.1.2.1: `%x38-39 / "1" %x30-35`).
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || value.len() > 2 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (MIN_WINDOW_BITS..=MAX_WINDOW_BITS)
        .contains(&bits)
        .then_some(bits)
}

/// One extension of a `Sec-WebSocket-Extensions` list: its name and
/// parameters, values unquoted.
#[derive(Debug, PartialEq, Eq)]
struct Extension<'a> {
    name: &'a str,
    params: Vec<(&'a str, Option<Cow<'a, str>>)>,
}

/// Parses one header line (RFC 6455 §9.1: `1#extension`, each
/// `token *( ";" token [ "=" ( token / quoted-string ) ] )`, RFC 7230 list
/// rules: empty elements and optional whitespace allowed). `None` when the
/// line does not follow the grammar.
fn parse_extension_list(line: &str) -> Option<Vec<Extension<'_>>> {
    let mut scan = Scanner { rest: line };
    let mut list = Vec::new();
    loop {
        scan.skip_whitespace();
        if scan.rest.is_empty() {
            return Some(list);
        }
        if scan.eat(',') {
            continue;
        }
        let name = scan.token()?;
        let mut params = Vec::new();
        loop {
            scan.skip_whitespace();
            if scan.rest.is_empty() || scan.eat(',') {
                break;
            }
            if !scan.eat(';') {
                return None;
            }
            scan.skip_whitespace();
            let param = scan.token()?;
            scan.skip_whitespace();
            let value = if scan.eat('=') {
                scan.skip_whitespace();
                Some(scan.value()?)
            } else {
                None
            };
            params.push((param, value));
        }
        list.push(Extension { name, params });
    }
}

/// A cursor over a header line.
struct Scanner<'a> {
    rest: &'a str,
}

impl<'a> Scanner<'a> {
    fn skip_whitespace(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// A token (RFC 7230 §3.2.6): one or more `tchar`.
    fn token(&mut self) -> Option<&'a str> {
        let end = self
            .rest
            .find(|c: char| !is_tchar(c))
            .unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        (!token.is_empty()).then_some(token)
    }

    /// A parameter value: a token or a quoted string, unquoted. RFC 6455
    /// §9.1 requires the unquoted value to be a token too.
    fn value(&mut self) -> Option<Cow<'a, str>> {
        if !self.eat('"') {
            return self.token().map(Cow::Borrowed);
        }
        let mut value = String::new();
        let mut chars = self.rest.char_indices();
        loop {
            match chars.next()? {
                (at, '"') => {
                    self.rest = &self.rest[at + 1..];
                    break;
                }
                (_, '\\') => value.push(chars.next()?.1),
                (_, c) => value.push(c),
            }
        }
        (!value.is_empty() && value.chars().all(is_tchar)).then_some(Cow::Owned(value))
    }
}

/// RFC 7230's `tchar`.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(lines: &[&str]) -> Option<Agreed> {
        negotiate(lines.iter().map(|l| l.as_bytes()), Policy::default())
    }

    fn agree_keeping(lines: &[&str]) -> Option<Agreed> {
        negotiate(
            lines.iter().map(|l| l.as_bytes()),
            Policy {
                context_takeover: true,
            },
        )
    }

    fn answer(lines: &[&str]) -> Option<String> {
        agree(lines).map(|agreed| agreed.response_header())
    }

    #[test]
    fn a_plain_offer_gets_no_context_takeover_both_ways() {
        assert_eq!(
            answer(&["permessage-deflate"]).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        let agreed = agree(&["permessage-deflate"]).unwrap();
        assert_eq!(
            (agreed.server_window_bits(), agreed.client_window_bits()),
            (15, 15)
        );
        assert!(agreed.passthrough());
    }

    #[test]
    fn browsers_offer_gets_the_client_window_stated() {
        // What Chromium and Firefox send.
        assert_eq!(
            answer(&["permessage-deflate; client_max_window_bits"]).as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 client_max_window_bits=15"
            )
        );
    }

    #[test]
    fn server_window_is_granted_and_the_client_window_capped_to_it() {
        let agreed = agree(&[
            "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
             server_max_window_bits=9",
        ])
        .unwrap();
        assert_eq!(agreed.server_max_window_bits, Some(9));
        assert_eq!(agreed.client_max_window_bits, Some(9));
        assert!(agreed.passthrough());
        let agreed = agree(&["permessage-deflate; client_max_window_bits=12"]).unwrap();
        assert_eq!(
            (agreed.server_max_window_bits, agreed.client_max_window_bits),
            (None, Some(12))
        );
    }

    #[test]
    fn a_small_server_window_without_a_client_window_rules_out_passthrough() {
        // The client's window stays 15 bits: its messages may reach further
        // back than the server may, so the echo must be recompressed.
        let agreed = agree(&["permessage-deflate; server_max_window_bits=10"]).unwrap();
        assert_eq!(agreed.client_max_window_bits, None);
        assert!(!agreed.passthrough());
        assert_eq!(
            agreed.response_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10"
        );
    }

    #[test]
    fn offers_that_must_be_declined_fall_through_to_the_next() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; unknown_parameter",
        ] {
            assert_eq!(agree(&[bad]), None, "{bad}");
            let agreed = agree(&[&format!(
                "{bad}, permessage-deflate; server_max_window_bits=11"
            )])
            .unwrap_or_else(|| panic!("the second offer after {bad}"));
            assert_eq!(agreed.server_max_window_bits, Some(11), "{bad}");
        }
    }

    #[test]
    fn other_extensions_and_header_lines_are_skipped() {
        let agreed = agree(&[
            "x-webkit-deflate-frame; no_context_takeover",
            "foo, PerMessage-Deflate; Server_Max_Window_Bits=\"12\"",
        ])
        .unwrap();
        assert_eq!(agreed.server_max_window_bits, Some(12));
        assert_eq!(agree(&["x-webkit-deflate-frame", "foo; bar=baz"]), None);
        assert_eq!(agree(&[]), None);
    }

    #[test]
    fn malformed_lines_are_ignored_never_fatal() {
        for line in [
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate;",
            "permessage-deflate; =10",
            "permessage-deflate x",
            "permessage-deflate; a=b=c",
            "\u{e9}",
            "permessage-deflate; server_max_window_bits=\"1 0\"",
            "permessage-deflate; server_max_window_bits=\"\"",
        ] {
            assert_eq!(agree(&[line]), None, "{line:?}");
            assert!(agree(&[line, "permessage-deflate"]).is_some(), "{line:?}");
        }
        assert_eq!(negotiate([&b"\xff\xfe"[..]], Policy::default()), None);
    }

    #[test]
    fn lists_tolerate_empty_elements_and_whitespace() {
        let agreed = agree(&[" , ,permessage-deflate ;\tclient_max_window_bits = 10 , "]).unwrap();
        assert_eq!(agreed.client_max_window_bits, Some(10));
        assert_eq!(
            agree(&["permessage-deflate; server_max_window_bits=\"1\\5\""])
                .unwrap()
                .server_max_window_bits,
            Some(15),
            "a quoted pair unescapes"
        );
    }

    #[test]
    fn context_takeover_policy_grants_only_what_the_client_offers() {
        let agreed = agree_keeping(&["permessage-deflate; client_max_window_bits"]).unwrap();
        assert!(!agreed.server_no_context_takeover && !agreed.client_no_context_takeover);
        assert!(!agreed.passthrough());
        assert_eq!(
            agreed.response_header(),
            "permessage-deflate; client_max_window_bits=15"
        );
        let agreed = agree_keeping(&[
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ])
        .unwrap();
        assert!(agreed.server_no_context_takeover && agreed.client_no_context_takeover);
        assert!(agreed.passthrough());
    }

    #[test]
    fn agreed_parameters_fit_in_six_bytes() {
        assert!(std::mem::size_of::<Agreed>() <= 6);
    }
}
