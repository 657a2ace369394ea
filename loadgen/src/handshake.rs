//! The client's HTTP/1.1 Upgrade handshake (RFC 6455 §4.1), done by hand.
//!
//! The handshake runs inside the worker's event loop like any other I/O,
//! so thousands of connections can be in their handshake at once without a
//! thread or task each, and the time from `connect()` to the `101` is the
//! connect latency we report. The response is parsed with `httparse` and
//! `Sec-WebSocket-Accept` is checked against SHA-1 of our key.

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::target::Target;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest response header we wait for before calling the handshake broken.
pub const MAX_RESPONSE: usize = 16 * 1024;

/// A fresh `Sec-WebSocket-Key` from 16 random bytes.
pub fn new_key(random: [u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(random)
}

/// The `Sec-WebSocket-Accept` value a server must answer to `key`.
pub fn expected_accept(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The upgrade request for `target` with `key`, offering `extensions`
/// (a `Sec-WebSocket-Extensions` value) if any.
pub fn request(target: &Target, key: &str, extensions: Option<&str>) -> Vec<u8> {
    let extensions = extensions
        .map(|offer| format!("Sec-WebSocket-Extensions: {offer}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n{extensions}\
         User-Agent: loadgen/{}\r\n\r\n",
        target.path,
        target.host_header(),
        key,
        env!("CARGO_PKG_VERSION"),
    )
    .into_bytes()
}

/// What the bytes received so far say about the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The header is not complete yet.
    Incomplete,
    /// `101 Switching Protocols` with a correct accept key; frames start at
    /// `header_len`.
    Accepted {
        /// Length of the response header; anything after it is frame data.
        header_len: usize,
        /// The `Sec-WebSocket-Extensions` answer, if the server sent one.
        extensions: Option<String>,
    },
    /// Any other status: the server refused the upgrade.
    Rejected {
        /// HTTP status code.
        status: u16,
        /// Reason phrase as sent.
        reason: String,
    },
    /// A `101` that is not a valid WebSocket handshake, or garbage.
    Invalid(String),
}

/// Parses the server's response to a request sent with `key`.
pub fn parse_response(buf: &[u8], key: &str) -> Response {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let header_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_RESPONSE {
                Response::Invalid("response header too large".into())
            } else {
                Response::Incomplete
            };
        }
        Err(e) => return Response::Invalid(format!("bad HTTP response: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    if status != 101 {
        return Response::Rejected {
            status,
            reason: resp.reason.unwrap_or("").to_string(),
        };
    }
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Response::Invalid("101 without 'Upgrade: websocket'".into());
    }
    if !header("connection").is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    }) {
        return Response::Invalid("101 without 'Connection: Upgrade'".into());
    }
    match header("sec-websocket-accept") {
        Some(v) if v == expected_accept(key) => Response::Accepted {
            header_len,
            extensions: header("sec-websocket-extensions"),
        },
        Some(_) => Response::Invalid("wrong Sec-WebSocket-Accept".into()),
        None => Response::Invalid("101 without Sec-WebSocket-Accept".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_accept() {
        // RFC 6455 §1.3.
        assert_eq!(
            expected_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parses_outcomes() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x82\x00";
        assert_eq!(
            parse_response(ok, key),
            Response::Accepted {
                header_len: ok.len() - 2,
                extensions: None,
            }
        );
        assert_eq!(parse_response(&ok[..20], key), Response::Incomplete);
        let rej = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            parse_response(rej, key),
            Response::Rejected {
                status: 403,
                reason: "Forbidden".into()
            }
        );
        let wrong = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
                      Sec-WebSocket-Accept: nope\r\n\r\n";
        assert!(matches!(parse_response(wrong, key), Response::Invalid(_)));
        assert!(matches!(
            parse_response(b"SSH-2.0\r\n\r\n", key),
            Response::Invalid(_)
        ));
    }

    #[test]
    fn request_has_required_headers() {
        let t = Target::parse("ws://127.0.0.1:5000/ws").unwrap();
        let r = String::from_utf8(request(&t, "k", None)).unwrap();
        assert!(r.starts_with("GET /ws HTTP/1.1\r\n"));
        assert!(!r.contains("Extensions"));
        let offer = "permessage-deflate; client_no_context_takeover";
        let r = String::from_utf8(request(&t, "k", Some(offer))).unwrap();
        assert!(r.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"
        ));
        assert!(r.contains("Host: 127.0.0.1:5000\r\n"));
        assert!(r.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
