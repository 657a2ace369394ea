//! The HTTP side: the sample page, `/healthz`, 404s, refused upgrades (400,
//! 403 for foreign origins, 503 past `--max-connections`).

mod common;

use common::http::{connections_per_worker, health, Request};
use common::server::Server;
use common::{backend_tests, eventually, ws, Backend};
use tokio_tungstenite::tungstenite::Message;

const SWITCHING_PROTOCOLS: u16 = 101;

async fn serves_the_sample_page(backend: Backend) {
    let server = Server::start(backend, &[]).await;
    let response = Request::get("/").send(server.addr()).await;
    assert_eq!(response.status, 200, "{response:?}");
    let content_type = response.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "content type {content_type:?}"
    );
    assert!(
        response.body_text().contains("Communication Log"),
        "the page has no Communication Log"
    );
}

async fn reports_backend_and_workers_in_health(backend: Backend) {
    let server = Server::start(backend, &["--threads", "2"]).await;
    let startup_line = server.startup_line();
    for expected in [format!("io={}", backend.name()), "workers=2".to_owned()] {
        assert!(
            startup_line.contains(&expected),
            "startup line {startup_line:?} lacks {expected:?}"
        );
    }

    let idle = health(server.addr()).await;
    assert_eq!(idle["status"], "ok", "{idle}");
    assert_eq!(idle["io"], backend.name(), "{idle}");
    let workers = idle["workers"].as_array().expect("workers array");
    for (index, worker) in workers.iter().enumerate() {
        assert_eq!(worker["worker"], index, "worker numbering in {idle}");
        assert!(worker["cpu"].is_u64(), "worker without a cpu: {idle}");
    }
    assert_eq!(connections_per_worker(&idle), [0, 0], "{idle}");

    let addr = server.addr();
    let _socket = ws::connect(addr).await;
    eventually("/healthz to count the open WebSocket", || async move {
        let total: u64 = connections_per_worker(&health(addr).await).iter().sum();
        (total == 1).then_some(())
    })
    .await;
}

async fn answers_404_for_unknown_paths(backend: Backend) {
    let server = Server::start(backend, &[]).await;
    for (case, request) in [
        ("GET /nope", Request::get("/nope")),
        ("upgrade on /other", Request::upgrade("/other")),
    ] {
        let response = request.send(server.addr()).await;
        assert_eq!(response.status, 404, "{case}: {response:?}");
    }
}

async fn rejects_bad_upgrades_with_400_and_the_supported_version(backend: Backend) {
    let server = Server::start(backend, &[]).await;
    for (case, request) in [
        (
            "no Sec-WebSocket-Key",
            Request::upgrade("/ws").without_header("Sec-WebSocket-Key"),
        ),
        (
            "Sec-WebSocket-Version 8",
            Request::upgrade("/ws").header("Sec-WebSocket-Version", "8"),
        ),
    ] {
        let response = request.send(server.addr()).await;
        assert_eq!(response.status, 400, "{case}: {response:?}");
        assert_eq!(
            response.header("Sec-WebSocket-Version"),
            Some("13"),
            "{case}: {response:?}"
        );
    }
}

async fn refuses_upgrades_from_origins_not_allowed(backend: Backend) {
    let server = Server::start(backend, &["--allowed-origin", "http://good.example"]).await;
    for (origin, expected_status) in [
        (Some("http://evil.example"), 403),
        (Some("http://good.example"), SWITCHING_PROTOCOLS),
        (None, SWITCHING_PROTOCOLS),
    ] {
        let request = match origin {
            Some(origin) => Request::upgrade("/ws").header("Origin", origin),
            None => Request::upgrade("/ws"),
        };
        let response = request.send(server.addr()).await;
        assert_eq!(
            response.status, expected_status,
            "Origin {origin:?}: {response:?}"
        );
    }
}

async fn refuses_upgrades_past_max_connections_with_503(backend: Backend) {
    let server = Server::start(backend, &["--max-connections", "2"]).await;
    let first = ws::connect(server.addr()).await;
    let _second = ws::connect(server.addr()).await;

    let third = Request::upgrade("/ws").send(server.addr()).await;
    assert_eq!(third.status, 503, "third connection: {third:?}");

    ws::close(first).await;
    let addr = server.addr();
    let mut replacement = eventually("a new connection after one closed", || async move {
        ws::try_connect(addr).await.ok()
    })
    .await;
    ws::assert_echo(&mut replacement, Message::text("room again")).await;
}

backend_tests!(
    serves_the_sample_page,
    reports_backend_and_workers_in_health,
    answers_404_for_unknown_paths,
    rejects_bad_upgrades_with_400_and_the_supported_version,
    refuses_upgrades_from_origins_not_allowed,
    refuses_upgrades_past_max_connections_with_503,
);
