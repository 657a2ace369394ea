//! `/metrics` and `/stats` after real traffic: echoes, closes with known
//! codes, every kind of refused handshake, keep-alive pings and a keep-alive
//! timeout, all read back from the engine's own counters.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::frames::{Frame, OpCode};
use common::http::{read_more, Request};
use common::metrics::Scrape;
use common::raw_ws::RawWebSocket;
use common::server::Server;
use common::{backend_tests, within, ws, Backend};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// Closes `socket` with code 1000 and waits for the server's answer.
async fn close_normally(mut socket: ws::WebSocket) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    };
    ws::send(&mut socket, Message::Close(Some(frame))).await;
    ws::drain_until_closed(&mut socket).await;
}

/// Scrapes until `check` passes on a scrape (counters are bumped right after
/// the bytes go out, so a client can be a moment ahead), then returns it.
async fn scrape_until(addr: SocketAddr, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..100 {
        let scrape = Scrape::fetch(addr).await;
        if check(&scrape) {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let scrape = Scrape::fetch(addr).await;
    panic!("/metrics never showed {what}:\n{}", scrape.text);
}

async fn counts_traffic_closes_rejections_and_keep_alive(backend: Backend) {
    let server = Server::start(
        backend,
        &[
            "--threads",
            "2",
            "--allowed-origin",
            "http://game.example",
            "--max-connections",
            "3",
            "--handshake-timeout",
            "300ms",
            "--keep-alive-interval",
            "200ms",
            "--keep-alive-timeout",
            "2s",
        ],
    )
    .await;
    let addr = server.addr();

    // Two echoes (5 + 100 payload bytes), then a normal close (1000).
    let mut socket = ws::connect(addr).await;
    ws::assert_echo(&mut socket, Message::text("hello")).await;
    ws::assert_echo(&mut socket, Message::binary(vec![7u8; 100])).await;
    close_normally(socket).await;

    // An application close code is answered with the same code.
    let mut raw = RawWebSocket::connect(addr).await;
    raw.send(&Frame::close(4001, "bye")).await;
    let answer = raw.read_frame().await;
    assert_eq!(answer.close_code(), Some(4001), "{answer:?}");
    raw.expect_disconnect().await;

    // Invalid UTF-8 makes the server close with 1007.
    let mut raw = RawWebSocket::connect(addr).await;
    raw.send(&Frame::text(vec![0xff, 0xfe])).await;
    raw.expect_close(1007).await;
    // The engine lingers after its close frame until the client ends its
    // side, and the connection counts against --max-connections until then:
    // end it, and wait until it is gone before the limit is tested below.
    drop(raw);
    scrape_until(addr, "the failed connection closed", |s| {
        s.sum("ringecho_connections", &[]) == 0.0
    })
    .await;

    // Refused handshakes: a foreign origin, two bad requests, the limit.
    let foreign = Request::upgrade("/ws").header("Origin", "http://evil.example");
    assert_eq!(foreign.send(addr).await.status, 403);
    let keyless = Request::upgrade("/ws").without_header("Sec-WebSocket-Key");
    assert_eq!(keyless.send(addr).await.status, 400);
    assert_eq!(Request::get("/ws").send(addr).await.status, 426);
    let held = [
        ws::connect(addr).await,
        ws::connect(addr).await,
        ws::connect(addr).await,
    ];
    let refused = ws::try_connect(addr).await;
    assert!(refused.is_err(), "a 4th WebSocket past --max-connections 3");
    for socket in held {
        close_normally(socket).await;
    }

    // A connection that never sends its request is cut at the handshake
    // timeout.
    let mut silent = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    assert!(
        !read_more(&mut silent, &mut Vec::new(), "the handshake timeout").await,
        "the server answered a request that was never sent"
    );

    // Keep-alive: a peer that never answers pings is pinged, then dropped.
    let mut mute = RawWebSocket::connect(addr).await;
    let mut pings_seen = 0;
    while let Some(frame) = mute.next_frame().await {
        assert_eq!(frame.opcode, OpCode::Ping, "{frame:?}");
        pings_seen += 1;
    }
    assert!(pings_seen >= 1, "the mute peer was dropped without a ping");

    let scrape = scrape_until(addr, "every close and the keep-alive timeout", |s| {
        s.sum("ringecho_close_frames_sent_total", &[("code", "1000")]) == 4.0
            && s.sum("ringecho_close_frames_sent_total", &[("code", "1007")]) == 1.0
            && s.sum("ringecho_keep_alive_timeouts_total", &[]) >= 1.0
            && s.sum("ringecho_connections", &[]) == 0.0
    })
    .await;
    let value = |metric: &str, labels: &[(&str, &str)]| scrape.sum(metric, labels);
    let text = &scrape.text;

    let info = scrape.only_labels("ringecho_info");
    assert_eq!(info["io"], backend.name(), "{text}");
    assert_eq!(info["workers"], "2", "{text}");
    assert_eq!(info["receive_buffers"], "512", "{text}");
    assert_eq!(info["receive_buffer_size"], "65536", "{text}");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"), "{text}");
    assert_eq!(value("ringecho_info", &[]), 1.0, "{text}");
    assert_eq!(
        scrape.workers("ringecho_messages_received_total"),
        ["0", "1"],
        "one series per worker"
    );

    // ws + close(4001) + bad UTF-8 + 3 held + the mute peer.
    assert_eq!(
        value("ringecho_connections_opened_total", &[]),
        7.0,
        "{text}"
    );
    // Built without the `metrics` feature, message counters stay at zero.
    let counted = if cfg!(feature = "metrics") { 1.0 } else { 0.0 };
    assert_eq!(
        info["message_counters"],
        cfg!(feature = "metrics").to_string()
    );
    for (metric, expected) in [
        ("ringecho_messages_received_total", 2.0),
        ("ringecho_messages_sent_total", 2.0),
        ("ringecho_payload_received_bytes_total", 105.0),
        ("ringecho_payload_sent_bytes_total", 105.0),
    ] {
        assert_eq!(value(metric, &[]), expected * counted, "{metric}:\n{text}");
    }

    let received = |code| value("ringecho_close_frames_received_total", &[("code", code)]);
    let sent = |code| value("ringecho_close_frames_sent_total", &[("code", code)]);
    // The first socket and the three held ones close with 1000.
    assert_eq!(received("1000"), 4.0, "{text}");
    assert_eq!(sent("1000"), 4.0, "{text}");
    assert_eq!(received("4000-4999"), 1.0, "{text}");
    assert_eq!(sent("4000-4999"), 1.0, "{text}");
    assert_eq!(sent("1007"), 1.0, "{text}");

    let rejected = |reason| value("ringecho_handshakes_rejected_total", &[("reason", reason)]);
    assert_eq!(rejected("origin"), 1.0, "{text}");
    assert_eq!(rejected("bad_request"), 2.0, "{text}");
    assert_eq!(rejected("limit"), 1.0, "{text}");
    assert!(rejected("timeout") >= 1.0, "{text}");

    assert!(
        value("ringecho_pings_sent_total", &[]) >= f64::from(pings_seen),
        "pings sent must cover the {pings_seen} the mute peer saw:\n{text}"
    );
    assert_eq!(
        value("ringecho_keep_alive_timeouts_total", &[]),
        1.0,
        "{text}"
    );
}

/// Reads `data:` events from `/stats` until `check` accepts one.
async fn stats_event_until(
    addr: SocketAddr,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    stream
        .write_all(format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("send the request");
    let mut lines = BufReader::new(stream).lines();
    let mut head = Vec::new();
    loop {
        let line = within("the /stats head", lines.next_line())
            .await
            .expect("read")
            .expect("/stats ended before its head did");
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    assert!(head[0].contains(" 200 "), "{head:?}");
    assert!(
        head.iter()
            .any(|h| h.eq_ignore_ascii_case("content-type: text/event-stream")),
        "{head:?}"
    );
    within(what, async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("read")
                .expect("/stats ended");
            // Chunk-size lines and blank lines carry no event.
            if let Some(json) = line.strip_prefix("data: ") {
                let event: serde_json::Value = serde_json::from_str(json).expect("event is JSON");
                if check(&event) {
                    return event;
                }
            }
        }
    })
    .await
}

async fn stats_stream_reports_live_counters(backend: Backend) {
    let server = Server::start(backend, &["--threads", "2"]).await;
    let addr = server.addr();
    let idle = stats_event_until(addr, "a first event", |_| true).await;
    assert_eq!(idle["info"]["io"], backend.name(), "{idle}");
    assert_eq!(idle["info"]["workers"], 2, "{idle}");
    assert_eq!(idle["info"]["receive_buffers"], 512, "{idle}");
    assert_eq!(idle["workers"].as_array().map(Vec::len), Some(2), "{idle}");
    assert_eq!(idle["totals"]["connections"], 0, "{idle}");

    let mut socket = ws::connect(addr).await;
    for _ in 0..3 {
        ws::assert_echo(&mut socket, Message::text("twenty bytes of text")).await;
    }
    // Built without the `metrics` feature, message counters stay at zero.
    let counted = u64::from(cfg!(feature = "metrics"));
    let busy = stats_event_until(addr, "the open WebSocket and its echoes", |e| {
        e["totals"]["connections"] == 1 && e["totals"]["messages_out"] == 3 * counted
    })
    .await;
    assert_eq!(busy["totals"]["messages_in"], 3 * counted, "{busy}");
    assert_eq!(busy["totals"]["bytes_in"], 60 * counted, "{busy}");
    assert_eq!(busy["totals"]["bytes_out"], 60 * counted, "{busy}");
    let per_worker: u64 = busy["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["messages_in"].as_u64().expect("messages_in"))
        .sum();
    assert_eq!(
        per_worker,
        3 * counted,
        "workers add up to the total: {busy}"
    );
    ws::close(socket).await;
}

backend_tests!(
    counts_traffic_closes_rejections_and_keep_alive,
    stats_stream_reports_live_counters
);
