//! What it measures: the WebSocket handshake in the engine's own code.
//! `accept_key` is the `Sec-WebSocket-Accept` computation (SHA-1 of the
//! client key and the RFC 6455 GUID, then base64); `upgrade_response` is
//! `ringecho::internals::http::route` on a browser-like upgrade request for
//! `/ws`: header checks (Connection/Upgrade tokens, version, key validity, origin
//! allow-list) plus building the `101 Switching Protocols` response. hyper's
//! request parsing and response serialisation are not included.

// criterion_group! defines a `pub fn benches` that cannot carry a doc
// comment; nothing else in a benchmark is public.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hyper::Request;
use ringecho::internals::http::{accept_key, route, Body, Observe, Route};
use ringecho::Config;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade_request() -> Request<()> {
    Request::builder()
        .method("GET")
        .uri("/ws")
        .header("Host", "127.0.0.1:5000")
        .header("Connection", "keep-alive, Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", KEY)
        .header("Origin", "http://127.0.0.1:5000")
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        )
        .body(())
        .expect("request")
}

/// The read-only endpoints' data source; the upgrade route never asks it.
struct NothingToObserve;

impl Observe for NothingToObserve {
    fn health(&self) -> String {
        String::new()
    }
    fn metrics(&self) -> String {
        String::new()
    }
    fn stats(&self) -> Body {
        Box::pin(http_body_util::Empty::new())
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("handshake");
    assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    group.bench_function("accept_key", |b| {
        b.iter(|| accept_key(black_box(KEY.as_bytes())))
    });
    let request = upgrade_request();
    let config = Config {
        allowed_origins: vec!["http://127.0.0.1:5000".into()],
        ..Config::default()
    };
    assert!(matches!(
        route(&request, &config, || true, &NothingToObserve),
        Route::Upgrade(..)
    ));
    group.bench_function("upgrade_response", |b| {
        b.iter(|| route(black_box(&request), &config, || true, &NothingToObserve))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench
}
criterion_main!(benches);
