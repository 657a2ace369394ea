//! The `upgrade` target: the HTTP upgrade checks on arbitrary request heads.
//!
//! A fuzz input is a settings byte (the `--allowed-origin` list, whether a
//! connection slot is free), a read size, and the bytes a client sends.
//!
//! 1. The io_uring path hands hyper the received bytes in reads that stop
//!    at the end of each request head ([`HeadEnd`], which walks the
//!    receive buffers in turn; empty lines before a request are no head). The bytes are cut into buffers of the
//!    chosen size; the ends found must be exactly where a plain search for
//!    `\r\n\r\n` finds them, whatever the cuts.
//! 2. hyper's parser (httparse, as hyper configures it) reads the first
//!    head from those reads. When the head ends in `\r\n\r\n`, the reads
//!    must have stopped exactly at its end: the bytes after it (the
//!    client's first frames) stay in the receive buffers, and none of
//!    them reaches hyper.
//! 3. The head becomes a `hyper::Request` as hyper builds it, and goes to
//!    [`route`], the router both backends use. Its decision (status, route
//!    kind, reject reason, whether it asked for a connection slot, the
//!    101's headers and accept key) must be what [`expected_status`], a
//!    reading of RFC 6455 §4.2.1-4.2.2 written apart from the engine, says.

use std::cell::Cell;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use base64::Engine as _;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri, Version};
use ringecho::internals::http::request_head::HeadEnd;
use ringecho::internals::http::{self, route, Observe, Route};
use ringecho::internals::metrics::RejectReason;
use ringecho::Config;
use sha1::{Digest, Sha1};

/// hyper's default limit on request headers (`h1_max_headers`).
const MAX_HEADERS: usize = 100;

/// The allowed origins each input may configure.
const ORIGIN_LISTS: [&[&str]; 4] = [
    &[],
    &["https://game.example"],
    &["https://game.example", "http://localhost:8080"],
    &["null"],
];

/// Runs one input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(settings) = u.arbitrary::<u8>() else {
        return;
    };
    let Ok(read_size) = u.arbitrary::<u8>() else {
        return;
    };
    let config = &configs()[usize::from(settings & 3)];
    let slot_free = settings & 4 == 0;
    let wire = u.take_rest();
    let reads = reads_as_the_loop_hands_them(wire, usize::from(read_size) + 1);
    let Some((head, read_to)) = first_head(wire, &reads) else {
        return;
    };
    if head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            read_to,
            head.len(),
            "bytes after a request head reached hyper"
        );
    }
    let Some(request) = request_as_hyper_builds_it(head) else {
        return;
    };
    check_route(&request, config, slot_free);
}

/// hyper's first read buffer (`INIT_BUFFER_SIZE`): a read hands it at most
/// this much, and more once the buffer has grown.
const HYPER_READ: usize = 8192;

/// Where hyper's reads end when `wire` has arrived in receive buffers of
/// `size` bytes: [`HeadEnd`] walks the buffers in turn, and a read
/// stops at the end of a request head, at the end of hyper's read buffer,
/// or where the received bytes end. Checks that the head ends found are
/// those of a plain search, whatever the buffer cuts.
fn reads_as_the_loop_hands_them(wire: &[u8], size: usize) -> Vec<usize> {
    let mut head_ends = Vec::new();
    let mut scan = HeadEnd::default();
    let mut at = 0;
    while at < wire.len() {
        let buffer_end = (at - at % size + size).min(wire.len());
        let (taken, head_done) = scan.scan(&wire[at..buffer_end]);
        assert!(taken > 0, "a scan took nothing");
        at += taken;
        if head_done {
            head_ends.push(at);
        } else {
            assert_eq!(at, buffer_end, "a scan stopped inside a head");
        }
    }
    // Each `\r\n\r\n` (searched for again after the last one) ends a
    // head, unless nothing but empty lines came since the last head.
    let mut plain = Vec::new();
    let mut from = 0;
    let mut head_start = 0;
    while let Some(i) = wire[from..].windows(4).position(|w| w == b"\r\n\r\n") {
        from += i + 4;
        if wire[head_start..from]
            .iter()
            .any(|&b| b != b'\r' && b != b'\n')
        {
            plain.push(from);
            head_start = from;
        }
    }
    assert_eq!(head_ends, plain, "head ends found across buffers of {size}");
    let mut reads = head_ends;
    reads.extend((HYPER_READ..wire.len()).step_by(HYPER_READ));
    reads.push(wire.len());
    reads.sort_unstable();
    reads.dedup();
    reads
}

/// The first request head as hyper parses it from the reads, and how far
/// the reads had gone when it was complete.
fn first_head<'a>(wire: &'a [u8], reads: &[usize]) -> Option<(&'a [u8], usize)> {
    for &read_to in reads {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match httparse::ParserConfig::default().parse_request(&mut request, &wire[..read_to]) {
            Ok(httparse::Status::Complete(len)) => return Some((&wire[..len], read_to)),
            Ok(httparse::Status::Partial) => {}
            Err(_) => return None,
        }
    }
    None
}

/// The request hyper hands its service for `head`, or `None` where hyper
/// answers 400 itself (its conversions of method, target and headers).
fn request_as_hyper_builds_it(head: &[u8]) -> Option<Request<()>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let status = httparse::ParserConfig::default()
        .parse_request(&mut parsed, head)
        .ok()?;
    assert!(status.is_complete(), "a head that parsed whole once");
    let mut request = Request::new(());
    *request.method_mut() = Method::from_bytes(parsed.method?.as_bytes()).ok()?;
    *request.uri_mut() = parsed.path?.parse::<Uri>().ok()?;
    *request.version_mut() = match parsed.version? {
        1 => Version::HTTP_11,
        _ => Version::HTTP_10,
    };
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_bytes(h.value).ok()?;
        request.headers_mut().append(name, value);
    }
    Some(request)
}

/// Read-only views with fixed contents.
struct NoViews;

impl Observe for NoViews {
    fn health(&self) -> String {
        "{}".into()
    }

    fn metrics(&self) -> String {
        String::new()
    }

    fn stats(&self) -> http::Body {
        Box::pin(http_body_util::Empty::new())
    }
}

/// The engine's default configuration with each of [`ORIGIN_LISTS`], built
/// once (parsing the options on every input would be most of its cost).
fn configs() -> &'static [Config] {
    static CONFIGS: OnceLock<Vec<Config>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        ORIGIN_LISTS
            .iter()
            .map(|origins| Config {
                allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
                ..Config::default()
            })
            .collect()
    })
}

/// Routes `request` and compares the decision with the RFC's.
fn check_route(request: &Request<()>, config: &Config, slot_free: bool) {
    let asked = Cell::new(false);
    let routed = route(
        request,
        config,
        || {
            assert!(!asked.replace(true), "asked twice for a slot");
            slot_free
        },
        &NoViews,
    );
    let expected = expected_status(request, &config.allowed_origins, slot_free);
    let (status, headers) = match &routed {
        Route::Respond(r) | Route::Upgrade(r, _) | Route::Reject(_, r) => (r.status(), r.headers()),
    };
    assert_eq!(status, expected, "{request:?}");
    let on_ws = request.uri().path() == "/ws";
    // The slot is asked for only when everything else is right.
    let checks_passed = matches!(
        expected,
        StatusCode::SWITCHING_PROTOCOLS | StatusCode::SERVICE_UNAVAILABLE
    ) && on_ws;
    assert_eq!(asked.get(), checks_passed, "{request:?}");
    match (&routed, status) {
        (Route::Upgrade(..), StatusCode::SWITCHING_PROTOCOLS) => {
            let key = request.headers()[header::SEC_WEBSOCKET_KEY].as_bytes();
            assert_eq!(
                headers[header::SEC_WEBSOCKET_ACCEPT].as_bytes(),
                accept_for(key).as_bytes()
            );
            assert!(headers[header::UPGRADE]
                .as_bytes()
                .eq_ignore_ascii_case(b"websocket"));
            assert!(headers[header::CONNECTION]
                .as_bytes()
                .eq_ignore_ascii_case(b"upgrade"));
        }
        (Route::Reject(reason, _), _) => {
            assert!(on_ws, "a rejected upgrade off /ws");
            let wanted = match status {
                StatusCode::FORBIDDEN => RejectReason::Origin,
                StatusCode::SERVICE_UNAVAILABLE => RejectReason::Limit,
                _ => RejectReason::BadRequest,
            };
            assert_eq!(*reason, wanted);
        }
        (Route::Respond(_), _) => assert!(!on_ws, "/ws answered without a decision"),
        (Route::Upgrade(..), _) => panic!("an upgrade answered {status}"),
    }
}

/// The status RFC 6455 §4.2.1-4.2.2 (and the routes of the engine) call
/// for, checked apart from the engine's own code.
pub fn expected_status(request: &Request<()>, allowed: &[String], slot_free: bool) -> StatusCode {
    let headers = request.headers();
    let first = |name: HeaderName| headers.get(name).map(HeaderValue::as_bytes);
    let upgrade = has_token(request, header::CONNECTION, "upgrade")
        && has_token(request, header::UPGRADE, "websocket");
    let path = request.uri().path();
    let method = request.method();
    if path != "/ws" {
        let page = matches!(path, "/" | "/healthz" | "/metrics");
        let readable = method == Method::GET || (method == Method::HEAD && page);
        return if !upgrade && readable && (page || path == "/stats") {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
    }
    if !upgrade {
        StatusCode::UPGRADE_REQUIRED
    } else if method != Method::GET
        || first(header::SEC_WEBSOCKET_VERSION) != Some(b"13")
        || !first(header::SEC_WEBSOCKET_KEY).is_some_and(is_key)
    {
        StatusCode::BAD_REQUEST
    } else if !origin_ok(first(header::ORIGIN), allowed) {
        StatusCode::FORBIDDEN
    } else if !slot_free {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::SWITCHING_PROTOCOLS
    }
}

/// Whether any `name` header, read as a comma-separated list of tokens
/// (with optional spaces and tabs around them), holds `token` in any case.
/// Values that are not visible ASCII are not read.
fn has_token(request: &Request<()>, name: HeaderName, token: &str) -> bool {
    request.headers().get_all(name).iter().any(|value| {
        let bytes = value.as_bytes();
        bytes
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
            && bytes.split(|&b| b == b',').any(|item| {
                let item = trim_ows(item);
                item.eq_ignore_ascii_case(token.as_bytes())
            })
    })
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// A key is 16 bytes in base64: 22 characters of the alphabet, the last of
/// them with its 4 low bits zero (A, Q, g or w), and `==`.
fn is_key(key: &[u8]) -> bool {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let index = |b: u8| ALPHABET.iter().position(|&a| a == b);
    key.len() == 24
        && key[..22].iter().all(|&b| index(b).is_some())
        && index(key[21]).is_some_and(|i| i % 16 == 0)
        && &key[22..] == b"=="
}

/// With an allow-list, an `Origin` must be on it (case aside, trailing
/// slashes and surrounding spaces aside); requests without one pass.
fn origin_ok(origin: Option<&[u8]>, allowed: &[String]) -> bool {
    let Some(origin) = origin.filter(|_| !allowed.is_empty()) else {
        return true;
    };
    if !origin
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return false;
    }
    let mut origin = trim_ows(origin);
    while let [rest @ .., b'/'] = origin {
        origin = rest;
    }
    allowed
        .iter()
        .any(|a| a.as_bytes().eq_ignore_ascii_case(origin))
}

/// `Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2).
fn accept_for(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(settings: u8, read_size: u8, wire: &[u8]) -> Vec<u8> {
        [&[settings, read_size][..], wire].concat()
    }

    const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\
        Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://game.example/\r\n\r\n\
        \x81\x85frames";

    #[test]
    fn rfc_example_accept_key() {
        assert_eq!(
            accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn model_reads_keys_as_base64_of_16_bytes() {
        assert!(is_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(
            !is_key(b"dGhlIHNhbXBsZSBub25jZR=="),
            "non-zero padding bits"
        );
        assert!(!is_key(b"dGhlIHNhbXBsZSBub25jZQ="));
    }

    #[test]
    fn an_upgrade_passes_at_every_read_size_and_setting() {
        for settings in 0..8 {
            for read_size in 0..=255 {
                check(&input(settings, read_size, UPGRADE));
            }
        }
    }

    #[test]
    fn empty_lines_before_a_request_are_no_head() {
        let mut wire = b"\r\n".repeat(5000);
        wire.extend_from_slice(UPGRADE);
        let reads = reads_as_the_loop_hands_them(&wire, 7);
        let end = wire.len() - b"\x81\x85frames".len();
        assert_eq!(reads, [8192, end, wire.len()]);
        check(&input(1, 6, &wire));
    }

    #[test]
    fn model_refuses_what_the_rfc_refuses() {
        let head = |wire: &[u8]| {
            let (head, _) = first_head(wire, &[wire.len()]).expect("a head");
            request_as_hyper_builds_it(head).expect("a request")
        };
        let allowed = vec!["https://game.example".to_string()];
        let ok = head(UPGRADE);
        assert_eq!(
            expected_status(&ok, &allowed, true),
            StatusCode::SWITCHING_PROTOCOLS
        );
        assert_eq!(
            expected_status(&ok, &allowed, false),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let evil = String::from_utf8_lossy(UPGRADE).replace("game", "evil");
        assert_eq!(
            expected_status(&head(evil.as_bytes()), &allowed, true),
            StatusCode::FORBIDDEN
        );
        let v8 = String::from_utf8_lossy(UPGRADE).replace("n: 13", "n: 8");
        assert_eq!(
            expected_status(&head(v8.as_bytes()), &allowed, true),
            StatusCode::BAD_REQUEST
        );
        let plain = head(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            expected_status(&plain, &allowed, true),
            StatusCode::UPGRADE_REQUIRED
        );
    }
}
