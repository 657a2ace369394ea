//! HTTP routing and the WebSocket handshake, served by hyper.
//!
//! - `GET /`: the sample page from the ASP.NET "WebSockets support" article,
//!   with a live statistics panel;
//! - `GET /ws`: the WebSocket upgrade (then each backend's echo loop);
//! - `GET /healthz`: a JSON health report;
//! - `GET /metrics`: the counters in the Prometheus/OpenMetrics text format;
//! - `GET /stats`: the counters as server-sent events, once a second
//!   ([`stats_stream`]);
//! - everything else, including upgrades on other paths: 404.
//!
//! The 101 response is built here (accept key per RFC 6455 §4.2.2); the
//! connection switches to WebSocket in each backend's HTTP phase.

pub mod request_head;
pub mod stats_stream;

use std::convert::Infallible;
use std::pin::Pin;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use sha1::{Digest, Sha1};

use crate::config::Config;
use crate::metrics::RejectReason;
use crate::protocol::deflate::{self, Agreed};

/// The sample page, embedded at build time.
pub const SAMPLE_PAGE: &str = include_str!("page.html");

/// The most bytes hyper buffers for one connection (its `max_buf_size`,
/// whose default is about 400 KiB): a request head larger than this gets
/// 431 and the connection closes. An upgrade request is a few hundred
/// bytes, a browser's with cookies a few KiB; HAProxy's buffer is 16 KiB
/// too. Without the cap, each slowloris client that sends large headers
/// held about 400 KiB of the engine's memory (tests/faults.rs).
pub const MAX_REQUEST_HEAD: usize = 16 << 10;

/// The GUID RFC 6455 appends to the client key.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A response body: buffered, or streamed (`/stats`). Not `Send`: a stream
/// lives on its worker's thread like everything else there.
pub type Body = Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = Infallible>>>;

/// A response as the router builds it.
pub type HttpResponse = Response<Body>;

/// The engine's read-only views that the router serves.
pub trait Observe {
    /// The `/healthz` JSON document.
    fn health(&self) -> String;
    /// The `/metrics` exposition.
    fn metrics(&self) -> String;
    /// The `/stats` event stream body.
    fn stats(&self) -> Body;
}

/// What the router decided for one request.
pub enum Route {
    /// Answer with this response and keep serving HTTP.
    Respond(HttpResponse),
    /// Accept the upgrade: send this 101, then speak WebSocket, compressed
    /// with these parameters if permessage-deflate was agreed.
    Upgrade(HttpResponse, Option<Agreed>),
    /// Refuse a WebSocket upgrade with this response.
    Reject(RejectReason, HttpResponse),
}

/// Routes one request. `admit` is asked for a connection slot only when the
/// upgrade is otherwise valid; `observe` renders the read-only endpoints.
pub fn route<B>(
    request: &Request<B>,
    config: &Config,
    admit: impl FnOnce() -> bool,
    observe: &impl Observe,
) -> Route {
    let upgrade = is_websocket_upgrade(request.headers());
    let path = request.uri().path();
    if path == "/ws" {
        return websocket_handshake(request, upgrade, config, admit);
    }
    let response = match (request.method(), path, upgrade) {
        (&Method::GET | &Method::HEAD, "/", false) => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(SAMPLE_PAGE.as_bytes()),
        ),
        (&Method::GET | &Method::HEAD, "/healthz", false) => respond(
            StatusCode::OK,
            "application/json",
            Bytes::from(observe.health()),
        ),
        (&Method::GET | &Method::HEAD, "/metrics", false) => respond(
            StatusCode::OK,
            crate::metrics::prometheus::CONTENT_TYPE,
            Bytes::from(observe.metrics()),
        ),
        (&Method::GET, "/stats", false) => {
            let mut response = Response::new(observe.stats());
            let h = response.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            // Tells nginx not to buffer the stream even where the deploy
            // snippet is not used.
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    Route::Respond(response)
}

fn websocket_handshake<B>(
    request: &Request<B>,
    upgrade: bool,
    config: &Config,
    admit: impl FnOnce() -> bool,
) -> Route {
    let headers = request.headers();
    if !upgrade {
        let mut response = plain(
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket\n",
        );
        response
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        add_version(&mut response);
        return Route::Reject(RejectReason::BadRequest, response);
    }
    let bad = |message: &'static str| {
        let mut response = plain(StatusCode::BAD_REQUEST, message);
        add_version(&mut response);
        Route::Reject(RejectReason::BadRequest, response)
    };
    if request.method() != Method::GET {
        return bad("a WebSocket upgrade must be a GET\n");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return bad("unsupported Sec-WebSocket-Version; this server speaks 13\n");
    }
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|k| is_valid_key(k.as_bytes()))
    else {
        return bad("missing or malformed Sec-WebSocket-Key\n");
    };
    if !origin_allowed(headers, &config.allowed_origins) {
        return Route::Reject(
            RejectReason::Origin,
            plain(StatusCode::FORBIDDEN, "origin not allowed\n"),
        );
    }
    if !admit() {
        return Route::Reject(
            RejectReason::Limit,
            plain(StatusCode::SERVICE_UNAVAILABLE, "too many connections\n"),
        );
    }
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept_key(key.as_bytes())).expect("base64 is a valid header value"),
    );
    let deflate = config.permessage_deflate.and_then(|policy| {
        let offers = headers.get_all(header::SEC_WEBSOCKET_EXTENSIONS);
        deflate::negotiate(offers.iter().map(HeaderValue::as_bytes), policy)
    });
    if let Some(agreed) = &deflate {
        h.insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_str(&agreed.response_header()).expect("the answer is made of tokens"),
        );
    }
    Route::Upgrade(response, deflate)
}

/// `Sec-WebSocket-Accept` for a client key (RFC 6455 §4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WEBSOCKET_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// A key must be the base64 encoding of 16 bytes.
fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|raw| raw.len() == 16)
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// `Connection: upgrade` and `Upgrade: websocket`, compared case-insensitively.
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    has_token(headers, header::CONNECTION, "upgrade")
        && has_token(headers, header::UPGRADE, "websocket")
}

/// As in ASP.NET Core: with an allow-list, a present Origin must be on it;
/// requests without Origin (non-browser clients) pass.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(origin)) => {
            let origin = origin.trim().trim_end_matches('/');
            allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
        }
        Some(Err(_)) => false,
    }
}

fn add_version(response: &mut HttpResponse) {
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
}

/// A buffered body.
fn full(bytes: Bytes) -> Body {
    Box::pin(Full::new(bytes))
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> HttpResponse {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn plain(status: StatusCode, message: &'static str) -> HttpResponse {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(message.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn origin_list_is_case_insensitive_and_absent_origin_passes() {
        let allowed = vec!["https://game.example".to_string()];
        let mut headers = HeaderMap::new();
        assert!(origin_allowed(&headers, &allowed));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("HTTPS://Game.Example"),
        );
        assert!(origin_allowed(&headers, &allowed));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!origin_allowed(&headers, &allowed));
    }
}
