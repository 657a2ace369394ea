//! A WebSocket costs the engine the same memory after kilobytes of traffic
//! as after its first message, on both backends: the RSS follows the
//! number of connections, not their history. This is the soak's "RSS flat
//! after warm-up" (`results/soak.md`) at test scale. On epoll it failed
//! before the codec's read buffer was committed on the first read
//! (`engine/src/epoll/session.rs`, "Memory"): each connection's RSS grew by a
//! page once its input passed the first 4 KiB of that 8 KiB buffer.

mod common;

use std::time::Duration;

use common::server::Server;
use common::{backend_tests, ws, Backend};
use futures_util::future::join_all;
use tokio_tungstenite::tungstenite::Message;

/// WebSockets held open.
const CONNECTIONS: usize = 400;
/// Messages per connection after the first, 200 B each: 8 KB of input per
/// connection, enough to cross every page of an 8 KiB read buffer.
const ROUNDS: usize = 40;
/// Payload of each message.
const SIZE: usize = 200;
/// Most RSS growth per connection that passes; the buffer's second page
/// is 4 KiB, so a connection that grows by it fails clearly.
const MAX_GROWTH_PER_CONNECTION: i64 = 1024;

/// Resident set size of `pid` in bytes (`/proc/PID/statm`).
fn rss_bytes(pid: u32) -> i64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).expect("read statm");
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages in statm");
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page as i64
}

/// One round: every connection sends one message, then every echo is checked.
async fn round(sockets: &mut [ws::WebSocket], fill: u8) {
    let message = Message::Binary(vec![fill; SIZE]);
    join_all(
        sockets
            .iter_mut()
            .map(|socket| ws::send(socket, message.clone())),
    )
    .await;
    for socket in sockets.iter_mut() {
        let echo = ws::next_message(socket).await.expect("an echo");
        assert!(echo == message, "echo of round {fill} differs");
    }
}

async fn memory_does_not_grow_with_traffic(backend: Backend) {
    let server = Server::start(backend, &["--threads", "1"]).await;
    let addr = server.addr();
    let mut sockets = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        sockets.push(ws::connect(addr).await);
    }
    round(&mut sockets, 0).await;
    // Let the io_uring ring give back buffers the burst of handshakes and
    // first messages took (it keeps spares for a second).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = rss_bytes(server.pid());

    for fill in 1..=ROUNDS {
        round(&mut sockets, fill as u8).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = rss_bytes(server.pid());

    let per_connection = (after - before) / CONNECTIONS as i64;
    eprintln!(
        "{}: RSS {before} -> {after} B, {per_connection} B per WebSocket",
        backend.name()
    );
    assert!(
        per_connection < MAX_GROWTH_PER_CONNECTION,
        "{}: RSS grew {} B per WebSocket over {} B of traffic each ({before} -> {after} B)",
        backend.name(),
        per_connection,
        ROUNDS * SIZE
    );
    for socket in sockets {
        ws::close(socket).await;
    }
}

backend_tests!(memory_does_not_grow_with_traffic);
