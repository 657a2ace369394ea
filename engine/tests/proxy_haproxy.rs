//! Two engines behind a real HAProxy running exactly the committed
//! `deploy/haproxy/ringecho.cfg` (addresses, certificate and admin socket
//! from the environment variables the file reads), on loopback:
//!
//! - TLS termination: a `wss://` client that trusts the test's CA echoes
//!   through HAProxy, and one that trusts another CA is refused;
//! - `/ws` is balanced with leastconn, as both engines' `/metrics` show;
//! - SIGTERM on one engine: only its own clients get close 1001, the
//!   others keep echoing, reconnects right away land on the other engine
//!   (retried and redispatched before any health check has noticed), and
//!   the health checks on `/healthz` then mark it down;
//! - the runtime API drains an engine before a planned restart;
//! - the file passes `haproxy -c`, and its `timeout tunnel` is above the
//!   systemd unit's `--keep-alive-interval`.

mod common;

use std::time::{Duration, Instant};

use common::haproxy::{self, free_loopback_addr, Haproxy, Settings};
use common::metrics::Scrape;
use common::server::Server;
use common::tls::{connector_trusting, TestPki};
use common::{within, ws, Backend};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode, Message};

/// Two engines, HAProxy in front, and the test CA.
struct Stack {
    a: Server,
    b: Server,
    haproxy: Haproxy,
    pki: TestPki,
    dir: tempfile::TempDir,
}

async fn stack() -> Stack {
    let engine = ["--threads", "1", "--no-pin", "--shutdown-timeout", "5s"];
    let a = Server::start(Backend::Uring, &engine).await;
    let b = Server::start(Backend::Uring, &engine).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = TestPki::create(dir.path(), "ringecho test CA", &["127.0.0.1"]);
    let settings = Settings {
        wss_bind: free_loopback_addr(),
        ws_bind: free_loopback_addr(),
        cert: pki.server_pem.clone(),
        engine_a: a.addr(),
        engine_b: b.addr(),
        admin_socket: dir.path().join("admin.sock"),
    };
    let haproxy = Haproxy::start(settings, &[], &dir.path().join("haproxy.log"));
    Stack {
        a,
        b,
        haproxy,
        pki,
        dir,
    }
}

impl Stack {
    /// Open WebSockets on engine A and on engine B, from their `/metrics`.
    async fn connections(&self) -> (f64, f64) {
        let a = Scrape::fetch(self.a.addr()).await;
        let b = Scrape::fetch(self.b.addr()).await;
        (
            a.sum("ringecho_connections", &[]),
            b.sum("ringecho_connections", &[]),
        )
    }

    /// Waits until the engines count `want` open WebSockets.
    async fn wait_for_connections(&self, want: (f64, f64)) {
        common::eventually(&format!("connections {want:?} on (A, B)"), || async {
            (self.connections().await == want).then_some(())
        })
        .await;
    }

    fn wss_url(&self) -> String {
        format!("wss://{}/ws", self.haproxy.settings().wss_bind)
    }
}

#[tokio::test]
async fn wss_is_terminated_by_haproxy_and_checked_against_the_ca() {
    let s = stack().await;
    let (mut socket, _) = within(
        "a wss:// handshake through HAProxy",
        tokio_tungstenite::connect_async_tls_with_config(
            s.wss_url(),
            None,
            false,
            Some(connector_trusting(&s.pki.ca_cert)),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("wss:// through HAProxy: {e}\n{}", s.haproxy.log()));
    ws::assert_echo(&mut socket, Message::text("over wss")).await;
    ws::assert_echo(&mut socket, Message::binary(vec![7u8; 20_000])).await;
    // The engines saw one plain WebSocket between them.
    let (a, b) = s.connections().await;
    assert_eq!(a + b, 1.0, "open WebSockets on the engines");
    ws::close(socket).await;

    // A client that trusts another CA refuses HAProxy's certificate.
    let other_dir = s.dir.path().join("other");
    std::fs::create_dir(&other_dir).expect("dir for another CA");
    let other = TestPki::create(&other_dir, "another CA", &["127.0.0.1"]);
    let refused = within(
        "a wss:// handshake with the wrong CA",
        tokio_tungstenite::connect_async_tls_with_config(
            s.wss_url(),
            None,
            false,
            Some(connector_trusting(&other.ca_cert)),
        ),
    )
    .await;
    match refused {
        Err(tungstenite::Error::Io(e)) if e.to_string().contains("UnknownIssuer") => {}
        Err(other) => panic!("refused for another reason than the CA: {other:?}"),
        Ok(_) => panic!("a client that does not trust the CA connected"),
    }
}

#[tokio::test]
async fn leastconn_spreads_websockets_over_both_engines() {
    let s = stack().await;
    let mut sockets = Vec::new();
    for i in 0..6 {
        let mut socket = ws::connect(s.haproxy.settings().ws_bind).await;
        ws::assert_echo(&mut socket, Message::text(format!("player {i}"))).await;
        sockets.push(socket);
    }
    s.wait_for_connections((3.0, 3.0)).await;
    let a = Scrape::fetch(s.a.addr()).await;
    let b = Scrape::fetch(s.b.addr()).await;
    assert_eq!(a.sum("ringecho_messages_received_total", &[]), 3.0);
    assert_eq!(b.sum("ringecho_messages_received_total", &[]), 3.0);
    for socket in sockets {
        ws::close(socket).await;
    }
}

/// How long a client waits for engine A's close after the SIGTERM.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// The close code the server sends within [`CLOSE_WITHIN`], or `None` when
/// the connection stays quiet (and open).
async fn close_within(socket: &mut ws::WebSocket) -> Option<CloseCode> {
    let deadline = tokio::time::Instant::now() + CLOSE_WITHIN;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Some(frame.map_or(CloseCode::Status, |f| f.code))
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("neither quiet nor a close: {other:?}"),
        }
    }
}

#[tokio::test]
async fn sigterm_on_one_engine_drops_nobody_else_and_reconnects_land_on_the_other() {
    let mut s = stack().await;
    let proxy = s.haproxy.settings().ws_bind;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(ws::connect(proxy).await);
    }
    s.wait_for_connections((2.0, 2.0)).await;

    s.a.send_signal(libc::SIGTERM);
    let stopped_at = Instant::now();
    // Engine A's two clients get 1001; engine B's two hear nothing.
    let codes = futures_util::future::join_all(sockets.iter_mut().map(close_within)).await;
    let mut survivors = Vec::new();
    for (socket, code) in sockets.into_iter().zip(codes) {
        match code {
            Some(code) => assert_eq!(code, CloseCode::Away, "engine A's close code"),
            None => survivors.push(socket),
        }
    }
    assert_eq!(survivors.len(), 2, "exactly engine A's clients were closed");
    for socket in &mut survivors {
        ws::assert_echo(socket, Message::text("still here")).await;
    }

    // Reconnect at once. HAProxy cannot know yet that A is gone (two failed
    // checks 0.5 s apart are needed); the refused connections to A are
    // retried on B.
    let a_state = s.haproxy.server_state("ringecho_ws", "engine-a");
    println!(
        "engine-a state when reconnecting, {:?} after SIGTERM: {a_state} (2 = running)",
        stopped_at.elapsed()
    );
    for _ in 0..2 {
        let mut socket = ws::connect(proxy).await;
        ws::assert_echo(&mut socket, Message::text("back")).await;
        survivors.push(socket);
    }
    let status = s.a.wait_for_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "engine A exited with {status}");
    let b = Scrape::fetch(s.b.addr()).await;
    assert_eq!(b.sum("ringecho_connections", &[]), 4.0, "all on engine B");

    // The health checks on /healthz mark A down; B stays up.
    s.haproxy
        .wait_for_state("ringecho_ws", "engine-a", 0, Duration::from_secs(10));
    assert_eq!(s.haproxy.server_state("ringecho_ws", "engine-b"), 2);
    for socket in &mut survivors {
        ws::assert_echo(socket, Message::text("after A went down")).await;
    }
    // No upgrade through HAProxy failed (HAProxy logs each WebSocket when
    // it ends, so only the ones A closed are logged by now).
    let log = s.haproxy.log();
    assert!(log.contains("Server ringecho_ws/engine-a is DOWN"), "{log}");
    assert!(
        log.lines()
            .filter(|l| l.contains("GET /ws"))
            .all(|line| line.contains(" 101 ")),
        "an upgrade through HAProxy failed:\n{log}"
    );
    for socket in survivors {
        ws::close(socket).await;
    }
}

#[tokio::test]
async fn the_runtime_api_drains_an_engine_before_a_planned_restart() {
    let s = stack().await;
    let proxy = s.haproxy.settings().ws_bind;
    let answer = s
        .haproxy
        .admin("set server ringecho_ws/engine-a state drain");
    assert!(answer.trim().is_empty(), "drain refused: {answer}");
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(ws::connect(proxy).await);
    }
    s.wait_for_connections((0.0, 3.0)).await;
    // Ready again: leastconn sends the next player to the empty engine.
    s.haproxy
        .admin("set server ringecho_ws/engine-a state ready");
    sockets.push(ws::connect(proxy).await);
    s.wait_for_connections((1.0, 3.0)).await;
    for socket in sockets {
        ws::close(socket).await;
    }
}

#[test]
fn the_config_passes_haproxy_c_and_its_tunnel_timeout_fits_the_keep_alive() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = TestPki::create(dir.path(), "ringecho test CA", &["127.0.0.1"]);
    let settings = Settings {
        wss_bind: free_loopback_addr(),
        ws_bind: free_loopback_addr(),
        cert: pki.server_pem,
        engine_a: "127.0.0.1:5001".parse().expect("address"),
        engine_b: "127.0.0.1:5002".parse().expect("address"),
        admin_socket: dir.path().join("admin.sock"),
    };
    let output = settings.check();
    assert!(
        output.status.success(),
        "haproxy -c rejects deploy/haproxy/ringecho.cfg:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // HAProxy closes an upgraded WebSocket after `timeout tunnel` without a
    // byte; the engines' keep-alive pings (as the systemd unit runs them)
    // must come well before.
    let config = std::fs::read_to_string(haproxy::config_path()).expect("read the config");
    let tunnel = config
        .lines()
        .find_map(|line| line.trim().strip_prefix("timeout tunnel "))
        .map(|value| humantime::parse_duration(value.trim()).expect("a duration"))
        .expect("the config sets timeout tunnel");
    let unit =
        std::fs::read_to_string(common::nginx::deploy_dir().join("systemd/ringecho.service"))
            .expect("read the unit");
    let exec_start = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let words: Vec<&str> = exec_start.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "--keep-alive-interval")
        .expect("the unit sets --keep-alive-interval");
    let interval = humantime::parse_duration(words[at + 1]).expect("a duration");
    assert!(
        interval * 2 <= tunnel,
        "--keep-alive-interval {interval:?} must be at most half of timeout tunnel {tunnel:?}"
    );
}
