//! ringecho behind a real nginx, configured with the committed
//! `deploy/nginx/ringecho-locations.conf` and a short `proxy_read_timeout`
//! of 1 s: without keep-alive nginx cuts an idle WebSocket; with
//! `--keep-alive-interval 300ms` the same idle WebSocket survives several
//! times that timeout. The page, `/metrics` and `/stats` pass through too.

mod common;

use std::time::{Duration, Instant};

use common::http::Request;
use common::nginx::Nginx;
use common::server::Server;
use common::{within, ws, Backend};
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// nginx's `proxy_read_timeout` in these tests.
const PROXY_READ_TIMEOUT: &str = "1s";
/// How long the idle WebSocket must survive with keep-alive on: several
/// times the proxy timeout.
const IDLE: Duration = Duration::from_millis(3_500);
/// Upper bound for nginx to cut an idle WebSocket (the timeout is 1 s).
const CUT_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test]
async fn nginx_cuts_an_idle_websocket_when_keep_alive_is_off() {
    let server = Server::start(Backend::Uring, &["--keep-alive-interval", "0"]).await;
    let nginx = Nginx::start(server.addr(), PROXY_READ_TIMEOUT).await;
    let mut socket = ws::connect(nginx.addr()).await;
    ws::assert_echo(&mut socket, Message::text("through nginx")).await;

    let idle_since = Instant::now();
    let ended = tokio::time::timeout(CUT_WITHIN, socket.next()).await;
    match ended {
        Err(_) => panic!(
            "nginx kept an idle WebSocket open for {CUT_WITHIN:?} with \
             proxy_read_timeout {PROXY_READ_TIMEOUT}"
        ),
        Ok(Some(Ok(Message::Ping(_)))) => panic!("the engine pinged with keep-alive off"),
        Ok(Some(Ok(message))) if !message.is_close() => {
            panic!("unexpected message while idle: {message:?}")
        }
        // EOF, a reset or a close: the connection is gone.
        Ok(_) => {}
    }
    println!(
        "nginx cut the idle WebSocket after {:?}",
        idle_since.elapsed()
    );
    let log = nginx.error_log();
    assert!(
        log.contains("upstream timed out"),
        "nginx's error.log does not say it timed out the upstream:\n{log}"
    );
}

#[tokio::test]
async fn keep_alive_pings_keep_an_idle_websocket_open_through_nginx() {
    let server = Server::start(Backend::Uring, &["--keep-alive-interval", "300ms"]).await;
    let nginx = Nginx::start(server.addr(), PROXY_READ_TIMEOUT).await;
    let mut socket = ws::connect(nginx.addr()).await;
    ws::assert_echo(&mut socket, Message::text("before the pause")).await;

    // Idle on the application level: only the engine's pings flow (the
    // client answers them with pongs while it reads).
    let deadline = Instant::now() + IDLE;
    let mut pings = 0;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(other) => panic!(
                "the idle WebSocket ended or got data after {pings} pings: {other:?}; \
                 nginx error.log:\n{}",
                nginx.error_log()
            ),
        }
    }
    assert!(pings >= 2, "only {pings} keep-alive pings in {IDLE:?}");

    ws::assert_echo(&mut socket, Message::text("after the pause")).await;
    ws::close(socket).await;
    let log = nginx.error_log();
    assert!(
        !log.contains("upstream timed out"),
        "nginx timed out the upstream although pings flowed:\n{log}"
    );
}

#[tokio::test]
async fn page_metrics_and_stats_pass_through_nginx() {
    let server = Server::start(Backend::Uring, &[]).await;
    let nginx = Nginx::start(server.addr(), PROXY_READ_TIMEOUT).await;

    let page = Request::get("/").send(nginx.addr()).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body_text().contains("Communication Log"));

    let metrics = common::metrics::Scrape::fetch(nginx.addr()).await;
    assert_eq!(metrics.sum("ringecho_info", &[]), 1.0, "{}", metrics.text);

    // The stats stream is not buffered: its first event arrives at once,
    // not when a buffer fills or the stream ends.
    let mut stream = within("connect", TcpStream::connect(nginx.addr()))
        .await
        .expect("connect to nginx");
    let request = format!("GET /stats HTTP/1.1\r\nHost: {}\r\n\r\n", nginx.addr());
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut lines = BufReader::new(stream).lines();
    let event = within("the first /stats event through nginx", async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("read")
                .expect("the stream ended");
            if let Some(json) = line.strip_prefix("data: ") {
                return serde_json::from_str::<serde_json::Value>(json).expect("JSON event");
            }
        }
    })
    .await;
    assert_eq!(event["info"]["io"], "uring", "{event}");
}
