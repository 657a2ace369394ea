//! Keep-alive: pings every `--keep-alive-interval`, and with
//! `--keep-alive-timeout` a client that stops answering them is disconnected
//! while one that answers stays connected.
//!
//! The server checks its timers at a granularity of about a quarter of the
//! shorter setting, so the bounds below leave generous slack; they check the
//! behaviour, not the speed.

mod common;

use std::time::Duration;

use common::frames::{Frame, OpCode};
use common::raw_ws::RawWebSocket;
use common::server::Server;
use common::{backend_tests, Backend};
use tokio::time::{timeout_at, Instant};

const INTERVAL: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(1);

/// Server options for pings every [`INTERVAL`], with no timeout.
const PINGS_ONLY: [&str; 2] = ["--keep-alive-interval", "500ms"];
/// Server options for pings every [`INTERVAL`] and a [`TIMEOUT`] for pongs.
const PINGS_WITH_TIMEOUT: [&str; 4] = [
    "--keep-alive-interval",
    "500ms",
    "--keep-alive-timeout",
    "1s",
];

/// Reads the next frame, which must be a ping, answers it with a pong of the
/// same payload, and returns when it arrived.
async fn answer_next_ping(socket: &mut RawWebSocket) -> Instant {
    let frame = socket.read_frame().await;
    let arrived = Instant::now();
    assert_eq!(frame.opcode, OpCode::Ping, "expected a ping, got {frame:?}");
    socket.send(&Frame::pong(frame.payload)).await;
    arrived
}

async fn pings_every_interval(backend: Backend) {
    let server = Server::start(backend, &PINGS_ONLY).await;
    let mut socket = RawWebSocket::connect(server.addr()).await;
    let connected_at = Instant::now();
    let mut arrivals = Vec::new();
    for _ in 0..4 {
        arrivals.push(answer_next_ping(&mut socket).await);
    }

    let first_wait = arrivals[0] - connected_at;
    assert!(
        first_wait <= INTERVAL * 2,
        "first ping {first_wait:?} after connecting, interval {INTERVAL:?}"
    );
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (INTERVAL / 2..=INTERVAL * 2).contains(&gap),
            "pings {gap:?} apart, interval {INTERVAL:?}"
        );
    }
}

async fn disconnects_a_client_that_never_answers_pings(backend: Backend) {
    let server = Server::start(backend, &PINGS_WITH_TIMEOUT).await;
    let mut socket = RawWebSocket::connect(server.addr()).await;
    let connected_at = Instant::now();
    let mut first_ping = None;
    // Anything may arrive before the disconnect (more pings, a close frame);
    // this client answers none of it.
    while let Some(frame) = socket.next_frame().await {
        if frame.opcode == OpCode::Ping {
            first_ping.get_or_insert_with(Instant::now);
        }
    }
    let closed_at = Instant::now();

    let first_ping = first_ping.expect("the server closed the connection without pinging it");
    let unanswered_for = closed_at - first_ping;
    assert!(
        unanswered_for >= TIMEOUT * 3 / 4,
        "closed {unanswered_for:?} after the first unanswered ping, timeout {TIMEOUT:?}"
    );
    let latest_close = INTERVAL + TIMEOUT + Duration::from_millis(1_500);
    let open_for = closed_at - connected_at;
    assert!(
        open_for <= latest_close,
        "closed only {open_for:?} after connecting (interval {INTERVAL:?}, timeout {TIMEOUT:?})"
    );
}

async fn keeps_a_client_that_answers_pings(backend: Backend) {
    let server = Server::start(backend, &PINGS_WITH_TIMEOUT).await;
    let mut socket = RawWebSocket::connect(server.addr()).await;
    let deadline = Instant::now() + INTERVAL * 4 + TIMEOUT;
    let mut pings = 0;
    while timeout_at(deadline, answer_next_ping(&mut socket))
        .await
        .is_ok()
    {
        pings += 1;
    }
    assert!(
        pings >= 2,
        "only {pings} pings in {:?}",
        INTERVAL * 4 + TIMEOUT
    );

    let message = b"still connected";
    socket.send(&Frame::text(*message)).await;
    loop {
        let frame = socket.read_frame().await;
        if frame.opcode == OpCode::Ping {
            socket.send(&Frame::pong(frame.payload)).await;
            continue;
        }
        assert_eq!(frame, Frame::text(*message), "echo after the pings");
        break;
    }
}

backend_tests!(
    pings_every_interval,
    disconnects_a_client_that_never_answers_pings,
    keeps_a_client_that_answers_pings,
);
