//! Backpressure: one client that sends without ever reading its echoes
//! cannot hold server memory or starve the other clients, and is dropped
//! after `--backpressure-timeout`.
//!
//! The server runs one worker with `--max-backpressure 256KiB
//! --backpressure-timeout 2s` and pings off. Fifty well-behaved clients echo
//! 1 KiB binary messages in a closed loop; their echoes over a 2 s window are
//! counted before a raw client starts writing 100 MiB of masked 64 KiB binary
//! frames that it never reads. The test then checks:
//!
//! - (a) while that client is stuck, the fifty still complete at least half
//!   the echoes of the earlier window (a behaviour check, loose on purpose:
//!   the machine is shared);
//! - (b) the server's resident memory (`VmRSS`) never grows more than
//!   [`RSS_GROWTH_BOUND`] (64 MiB) above what it was just before the stuck
//!   client started, although that client offers 100 MiB;
//! - (c) the server ends the stuck connection within the backpressure
//!   timeout + 5 s of the client's first write (its writes then fail with a
//!   reset or a broken pipe);
//! - (d) `ringecho_backpressure_closes_total` is 1;
//! - (e) the fifty clients are all still open and echo correctly.
//!
//! Every wait is bounded; each backend's run takes about 10 s.

mod common;

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::frames::Frame;
use common::http::{read_response, Request};
use common::metrics::Scrape;
use common::raw_ws::RawWebSocket;
use common::server::Server;
use common::{backend_tests, eventually, within, ws, Backend};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};
use tokio_tungstenite::tungstenite::Message;

/// `--backpressure-timeout`.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The server under test: one worker, so every client shares it.
const SERVER_ARGS: [&str; 8] = [
    "--threads",
    "1",
    "--max-backpressure",
    "256KiB",
    "--backpressure-timeout",
    "2s",
    "--keep-alive-interval",
    "0",
];
/// Well-behaved clients.
const CLIENTS: usize = 50;
/// Payload of one echo of a well-behaved client.
const MESSAGE_SIZE: usize = 1024;
/// The windows over which echoes are counted.
const WINDOW: Duration = Duration::from_secs(2);
/// Payload of one frame of the stuck client.
const STUCK_FRAME_SIZE: usize = 64 << 10;
/// What the stuck client tries to send in all.
const STUCK_TOTAL: u64 = 100 << 20;
/// The most the server's resident memory may grow while the stuck client
/// pushes [`STUCK_TOTAL`] at it.
const RSS_GROWTH_BOUND: u64 = 64 << 20;
/// After this long without finishing a frame, the stuck client counts as
/// stuck.
const STALL: Duration = Duration::from_millis(200);
/// Safety net: no client loop runs longer than this.
const CLIENT_LOOP_LIMIT: Duration = Duration::from_secs(25);

/// The server's resident set size in bytes (`VmRSS` in /proc/PID/status).
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("reading /proc/{pid}/status: {error}"));
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"));
    kib * 1024
}

/// Echoes 1 KiB binary messages in a closed loop until `stop` (or
/// [`CLIENT_LOOP_LIMIT`]), counting each echo in `echoes`, and hands the
/// connection back. Each message's bytes differ, so a mixed-up echo fails.
fn spawn_echo_loop(
    mut socket: ws::WebSocket,
    client: usize,
    echoes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<ws::WebSocket> {
    tokio::spawn(async move {
        let limit = Instant::now() + CLIENT_LOOP_LIMIT;
        let mut round = 0usize;
        while !stop.load(Ordering::Relaxed) && Instant::now() < limit {
            let payload: Vec<u8> = (0..MESSAGE_SIZE)
                .map(|i| (client + round + i) as u8)
                .collect();
            ws::assert_echo(&mut socket, Message::binary(payload)).await;
            echoes.fetch_add(1, Ordering::Relaxed);
            round += 1;
        }
        socket
    })
}

/// How the stuck client's writing ended.
struct StuckEnd {
    /// The write error, or `None` if all [`STUCK_TOTAL`] bytes went out.
    error: Option<std::io::Error>,
    /// When writing ended (error or done); `None` if it hit its deadline.
    ended_at: Option<Instant>,
    started_at: Instant,
}

/// Opens a WebSocket by hand and writes masked 64 KiB binary frames, never
/// reading, until [`STUCK_TOTAL`] bytes are out, a write fails, or the
/// backpressure timeout + 5 s have passed. `written` counts finished frames'
/// bytes.
async fn spawn_stuck_client(
    addr: std::net::SocketAddr,
    written: Arc<AtomicU64>,
) -> JoinHandle<StuckEnd> {
    let mut stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect the stuck client");
    within(
        "sending the upgrade request",
        stream.write_all(&Request::upgrade("/ws").to_bytes(addr)),
    )
    .await
    .expect("send the upgrade request");
    let response = read_response(&mut stream, &mut Vec::new()).await;
    assert_eq!(response.status, 101, "upgrade refused: {response:?}");
    let wire = RawWebSocket::wire(&Frame::binary(vec![0x5a; STUCK_FRAME_SIZE]));
    tokio::spawn(async move {
        let started_at = Instant::now();
        let writing = async {
            while written.load(Ordering::Relaxed) < STUCK_TOTAL {
                stream.write_all(&wire).await?;
                written.fetch_add(STUCK_FRAME_SIZE as u64, Ordering::Relaxed);
            }
            Ok::<(), std::io::Error>(())
        };
        match tokio::time::timeout(TIMEOUT + Duration::from_secs(5), writing).await {
            Ok(result) => StuckEnd {
                error: result.err(),
                ended_at: Some(Instant::now()),
                started_at,
            },
            Err(_) => StuckEnd {
                error: None,
                ended_at: None,
                started_at,
            },
        }
    })
}

async fn a_client_that_never_reads_is_dropped_without_hurting_the_others(backend: Backend) {
    let server = Server::start(backend, &SERVER_ARGS).await;
    let addr = server.addr();

    let echoes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::with_capacity(CLIENTS);
    for client in 0..CLIENTS {
        let socket = ws::connect(addr).await;
        loops.push(spawn_echo_loop(
            socket,
            client,
            echoes.clone(),
            stop.clone(),
        ));
    }
    // Warm up, then count a window with only well-behaved clients.
    sleep(Duration::from_millis(500)).await;
    let start = echoes.load(Ordering::Relaxed);
    sleep(WINDOW).await;
    let unhindered = echoes.load(Ordering::Relaxed) - start;
    assert!(unhindered > 0, "no echoes at all in {WINDOW:?}");
    let rss_before = resident_bytes(server.pid());

    let written = Arc::new(AtomicU64::new(0));
    let stuck = spawn_stuck_client(addr, written.clone()).await;

    // Wait until the stuck client's writes stop making progress.
    let mut last = (written.load(Ordering::Relaxed), Instant::now());
    let mut rss_peak = rss_before;
    let stalled = within("the stuck client to stall", async {
        loop {
            sleep(Duration::from_millis(20)).await;
            rss_peak = rss_peak.max(resident_bytes(server.pid()));
            let now = written.load(Ordering::Relaxed);
            if stuck.is_finished() {
                return false;
            }
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() >= STALL {
                return true;
            }
        }
    })
    .await;
    assert!(
        stalled,
        "the stuck client's writes ended before they ever stalled ({} bytes out)",
        written.load(Ordering::Relaxed)
    );

    // (a) The others keep echoing while it is stuck.
    let start = echoes.load(Ordering::Relaxed);
    let window_end = Instant::now() + WINDOW;
    while Instant::now() < window_end {
        rss_peak = rss_peak.max(resident_bytes(server.pid()));
        sleep(Duration::from_millis(100)).await;
    }
    let hindered = echoes.load(Ordering::Relaxed) - start;

    // (c) The server ends the stuck connection in time.
    let end = within("the stuck client's writes to end", async {
        while !stuck.is_finished() {
            rss_peak = rss_peak.max(resident_bytes(server.pid()));
            sleep(Duration::from_millis(50)).await;
        }
        stuck.await.expect("the stuck client's task")
    })
    .await;
    rss_peak = rss_peak.max(resident_bytes(server.pid()));
    let sent = written.load(Ordering::Relaxed);
    let latest = TIMEOUT + Duration::from_secs(5);
    let ended_at = end.ended_at.unwrap_or_else(|| {
        panic!("the stuck connection was still open {latest:?} after its first write ({sent} bytes out)")
    });
    let error = end.error.unwrap_or_else(|| {
        panic!("the server read all {sent} bytes of a client that never reads its echoes")
    });
    assert!(
        matches!(
            error.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
        ),
        "the stuck client's write failed with {error} (expected a reset or broken pipe)"
    );
    let open_for = ended_at - end.started_at;
    assert!(
        open_for <= latest,
        "the stuck connection ended {open_for:?} after its first write, later than {latest:?}"
    );
    assert!(
        sent < STUCK_TOTAL,
        "the server took all {sent} bytes before dropping the stuck client"
    );

    assert!(
        hindered * 2 >= unhindered,
        "while one client was stuck the others echoed {hindered} times in {WINDOW:?}, \
         against {unhindered} before: less than half"
    );

    // (b) The stuck client's data never piled up in the server.
    let growth = rss_peak.saturating_sub(rss_before);
    assert!(
        growth < RSS_GROWTH_BOUND,
        "server RSS grew by {} KiB (from {} KiB) while the stuck client sent {} KiB",
        growth >> 10,
        rss_before >> 10,
        sent >> 10
    );

    eprintln!(
        "{}: echoes in {WINDOW:?}: {unhindered} before, {hindered} while stuck; \
         stuck client sent {} KiB, ended after {open_for:?} ({error}); \
         server RSS {} KiB before, peak growth {} KiB",
        backend.name(),
        sent >> 10,
        rss_before >> 10,
        growth >> 10
    );

    // (d) Counted once, with its 1008.
    let scrape = eventually("the backpressure close in /metrics", || async {
        let scrape = Scrape::fetch(addr).await;
        (scrape.sum("ringecho_backpressure_closes_total", &[]) >= 1.0).then_some(scrape)
    })
    .await;
    assert_eq!(
        scrape.sum("ringecho_backpressure_closes_total", &[]),
        1.0,
        "{}",
        scrape.text
    );
    assert_eq!(
        scrape.sum("ringecho_close_frames_sent_total", &[("code", "1008")]),
        1.0,
        "{}",
        scrape.text
    );

    // (e) The others are all still open and echo correctly.
    stop.store(true, Ordering::Relaxed);
    let mut sockets = Vec::with_capacity(CLIENTS);
    for handle in loops {
        sockets.push(
            within("an echo loop to stop", handle)
                .await
                .expect("echo loop"),
        );
    }
    assert_eq!(
        Scrape::fetch(addr).await.sum("ringecho_connections", &[]),
        CLIENTS as f64,
        "every well-behaved client is still connected"
    );
    for (client, socket) in sockets.iter_mut().enumerate() {
        let payload = vec![client as u8; MESSAGE_SIZE];
        ws::assert_echo(socket, Message::binary(payload)).await;
    }
    for socket in sockets {
        ws::close(socket).await;
    }
}

backend_tests!(a_client_that_never_reads_is_dropped_without_hurting_the_others);
