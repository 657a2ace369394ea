//! The edges of a connection's and the server's life: the deadline for
//! finishing the HTTP handshake, and graceful shutdown on SIGTERM and SIGINT.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::frames::Frame;
use common::raw_ws::RawWebSocket;
use common::server::Server;
use common::{backend_tests, within, ws, Backend, NETWORK_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(500);
const HANDSHAKE_TIMEOUT_ARG: &str = "500ms";
/// How late after [`HANDSHAKE_TIMEOUT`] a stalled client may still be
/// connected without failing the test.
const HANDSHAKE_TIMEOUT_SLACK: Duration = Duration::from_millis(2_500);

const GOING_AWAY: u16 = 1001;

/// Connects over TCP, sends `prefix` and nothing more, and returns how long
/// the server kept the connection open. Whatever the server sends before
/// closing (an error response, say) is ignored.
async fn time_until_dropped(addr: SocketAddr, prefix: &[u8]) -> Duration {
    let mut stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect to the server");
    let connected_at = Instant::now();
    within("sending a partial request", stream.write_all(prefix))
        .await
        .expect("send a partial request");
    let mut discarded = [0; 1024];
    while let Ok(1..) = within(
        "the server to drop an unfinished handshake",
        stream.read(&mut discarded),
    )
    .await
    {}
    connected_at.elapsed()
}

async fn drops_connections_that_do_not_finish_the_handshake(backend: Backend) {
    let server = Server::start(backend, &["--handshake-timeout", HANDSHAKE_TIMEOUT_ARG]).await;
    let addr = server.addr();
    let established_client = async {
        let mut socket = ws::connect(addr).await;
        tokio::time::sleep(HANDSHAKE_TIMEOUT * 3).await;
        ws::assert_echo(&mut socket, Message::text("past the handshake deadline")).await;
    };
    // A keep-alive HTTP client that got its answer and then says nothing
    // is dropped too (hyper's header read timeout on epoll, the loop's idle
    // deadline on io_uring).
    let idle_request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (silent, half_request_line, idle_keep_alive, ()) = tokio::join!(
        time_until_dropped(addr, b""),
        time_until_dropped(addr, b"GET /ws HTT"),
        time_until_dropped(addr, idle_request.as_bytes()),
        established_client,
    );

    let allowed = HANDSHAKE_TIMEOUT * 4 / 5..=HANDSHAKE_TIMEOUT + HANDSHAKE_TIMEOUT_SLACK;
    for (case, open_for) in [
        ("sent nothing", silent),
        ("sent half a request line", half_request_line),
        ("went idle after a keep-alive request", idle_keep_alive),
    ] {
        assert!(
            allowed.contains(&open_for),
            "client that {case} was dropped after {open_for:?}, expected {allowed:?}"
        );
    }
}

/// Whether a WebSocket handshake with `addr` completes within two seconds.
async fn handshake_completes(addr: SocketAddr) -> bool {
    let handshake = tokio_tungstenite::connect_async(ws::echo_url(addr));
    let attempt = tokio::time::timeout(Duration::from_secs(2), handshake).await;
    matches!(attempt, Ok(Ok(_)))
}

/// Opens three WebSockets, sends `signal`, and checks the graceful shutdown:
/// every client gets close 1001, no new client gets in, and once the clients
/// have answered the close the process exits with status 0.
async fn assert_graceful_shutdown(backend: Backend, signal: libc::c_int) {
    let mut server = Server::start(backend, &["--shutdown-timeout", "5s"]).await;
    let mut sockets = Vec::new();
    for index in 0..3 {
        let mut socket = ws::connect(server.addr()).await;
        ws::assert_echo(&mut socket, Message::text(format!("client {index}"))).await;
        sockets.push(socket);
    }

    server.send_signal(signal);
    for socket in &mut sockets {
        match ws::next_message(socket).await {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(u16::from(frame.code), GOING_AWAY, "close code at shutdown");
            }
            other => panic!(
                "expected a close frame with code 1001, got {other:?} ({})",
                server.describe_state()
            ),
        }
    }
    assert!(
        !handshake_completes(server.addr()).await,
        "a new WebSocket was accepted during shutdown"
    );
    for socket in &mut sockets {
        ws::drain_until_closed(socket).await;
    }

    let status = server.wait_for_exit(NETWORK_TIMEOUT).await;
    assert!(status.success(), "exit status after shutdown: {status}");
}

async fn shuts_down_gracefully_on_sigterm(backend: Backend) {
    assert_graceful_shutdown(backend, libc::SIGTERM).await;
}

async fn shuts_down_gracefully_on_sigint(backend: Backend) {
    assert_graceful_shutdown(backend, libc::SIGINT).await;
}

async fn exits_after_the_shutdown_timeout_when_a_client_never_answers(backend: Backend) {
    let mut server = Server::start(backend, &["--shutdown-timeout", "1s"]).await;
    let mut silent_client = RawWebSocket::connect(server.addr()).await;

    server.send_signal(libc::SIGTERM);
    let close = silent_client.next_frame().await;
    assert_eq!(
        close.as_ref().and_then(Frame::close_code),
        Some(GOING_AWAY),
        "expected a close frame with code 1001, got {close:?} ({})",
        server.describe_state()
    );

    let status = server.wait_for_exit(NETWORK_TIMEOUT).await;
    assert!(status.success(), "exit status after shutdown: {status}");
}

backend_tests!(
    drops_connections_that_do_not_finish_the_handshake,
    shuts_down_gracefully_on_sigterm,
    shuts_down_gracefully_on_sigint,
    exits_after_the_shutdown_timeout_when_a_client_never_answers,
);
