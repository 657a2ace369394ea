//! A receive-buffer ring far too small for the traffic must cost speed, never
//! correctness or liveness: the ring runs dry (ENOBUFS), messages span many
//! buffers, and yet every echo is exact and new connections still complete
//! their handshake while the old ones keep the ring empty.
//!
//! Both conditions are shown, not assumed: on io_uring the server logs the
//! first time its ring runs dry, and the smallest ring (one 64 B buffer)
//! makes every frame header of 2, 4 or 10 bytes plus mask straddle buffers.
//! The epoll backend ignores the ring options; it runs the same cases as the
//! reference that the answers must match.

mod common;

use common::server::Server;
use common::{backend_tests, within, ws, Backend};
use futures_util::future::join_all;
use tokio_tungstenite::tungstenite::Message;

/// 8 buffers of 256 B: 2 KiB for the whole worker, against 16 concurrent
/// 64 KiB messages (1 MiB in flight).
const TINY_RING: [&str; 6] = [
    "--receive-buffers",
    "8",
    "--receive-buffer-size",
    "256",
    "--threads",
    "1",
];

/// A payload whose every byte depends on the connection, the round and the
/// position, so a chunk delivered to the wrong socket or out of order shows.
fn payload(connection: usize, round: usize) -> Vec<u8> {
    (0..64 * 1024)
        .map(|i| (i * 31 + connection * 7 + round * 13) as u8)
        .collect()
}

async fn echoes_exactly_and_stays_live_on_a_tiny_ring(backend: Backend) {
    let server = Server::start(backend, &TINY_RING).await;
    let addr = server.addr();
    let clients = (0..16).map(move |connection| async move {
        let mut socket = ws::connect(addr).await;
        for round in 0..4 {
            ws::assert_echo(&mut socket, Message::Binary(payload(connection, round))).await;
        }
        ws::close(socket).await;
    });
    let load = tokio::spawn(async move { join_all(clients).await });

    // While the ring is dry, a newcomer still gets through the handshake and
    // an echo.
    let mut newcomer = within("a handshake under a dry ring", ws::connect(addr)).await;
    ws::assert_echo(&mut newcomer, Message::Text("still live".into())).await;
    ws::close(newcomer).await;

    within("16 clients x 4 rounds of 64 KiB", load)
        .await
        .expect("client task panicked");

    if backend == Backend::Uring {
        assert!(
            server
                .log()
                .iter()
                .any(|line| line.contains("receive buffer ring ran dry (8 x 256 B)")),
            "the ring never ran dry, so this test did not cover that case"
        );
    }
}

/// Sizes around every frame-length encoding boundary (7-bit, 16-bit, 64-bit
/// lengths) and around the 64 B buffer, so headers and payloads start and end
/// at every offset within a buffer.
const SIZES_ACROSS_BOUNDARIES: [usize; 12] =
    [0, 1, 50, 63, 64, 65, 125, 126, 127, 4_000, 65_535, 65_536];

async fn one_64_byte_buffer_splits_headers_and_payloads(backend: Backend) {
    let server = Server::start(
        backend,
        &[
            "--receive-buffers",
            "1",
            "--receive-buffer-size",
            "64",
            "--threads",
            "1",
        ],
    )
    .await;
    let addr = server.addr();
    let clients = (0..4).map(|connection| async move {
        let mut socket = ws::connect(addr).await;
        for (round, size) in SIZES_ACROSS_BOUNDARIES.into_iter().enumerate() {
            let mut bytes = payload(connection, round);
            bytes.resize(size, b'x');
            ws::assert_echo(&mut socket, Message::Binary(bytes)).await;
            let text: String = (0..size)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            ws::assert_echo(&mut socket, Message::Text(text)).await;
        }
        ws::close(socket).await;
    });
    within("4 clients across every frame boundary", join_all(clients)).await;
}

backend_tests!(
    echoes_exactly_and_stays_live_on_a_tiny_ring,
    one_64_byte_buffer_splits_headers_and_payloads
);
