//! Fault injection against the real binary, on both backends: clients that
//! vanish or half-close, running out of file descriptors, a connect storm,
//! slowloris, a receive ring that runs dry, and SIGTERM under load.
//!
//! Every test asserts the same two things besides its own:
//! - the engine still echoes for other clients: a [`Witness`] keeps a
//!   well-behaved WebSocket echoing through the fault and checks every
//!   echo (one lost or wrong echo fails the test);
//! - nothing leaked: once the clients are gone, the engine's open file
//!   descriptors (`/proc/PID/fd`) and its `ringecho_connections` gauge are
//!   back to the [`Baseline`] taken before the fault.
//!
//! What other tests already cover is not repeated here: a client that never
//! reads its echoes (`backpressure.rs`), handshake and idle timeouts of
//! single connections and graceful shutdown of idle clients
//! (`lifecycle.rs`), correctness on a tiny ring (`undersized_buffers.rs`).
//!
//! The tests take turns ([`ONE_AT_A_TIME`]): each opens up to 10,000
//! sockets or measures the engine's CPU time, and running them side by
//! side would skew each other's measurements.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::frames::{decode, Frame, OpCode};
use common::http::Request;
use common::metrics::Scrape;
use common::procfs;
use common::raw_ws::{self, RawWebSocket};
use common::server::Server;
use common::{backend_tests, eventually, within, ws, Backend};
use futures_util::future::join_all;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// The fault tests run one at a time (see the module docs).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What "nothing leaked" is measured against: the engine's open file
/// descriptors and open WebSockets before the fault.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Baseline {
    fds: usize,
    websockets: f64,
}

impl Baseline {
    /// The engine's state now, once it is idle: the descriptor count is
    /// read until it holds still (the scrape's own connection has closed).
    async fn take(server: &Server) -> Baseline {
        let websockets = open_websockets(server.addr()).await;
        let fds = eventually("the engine's descriptor count to settle", || async {
            let before = procfs::open_fds(server.pid());
            tokio::time::sleep(Duration::from_millis(100)).await;
            (procfs::open_fds(server.pid()) == before).then_some(before)
        })
        .await;
        Baseline { fds, websockets }
    }

    /// Waits until the engine is back to this baseline, failing the test
    /// (with what differs) if it is not within the network timeout.
    async fn assert_restored(&self, server: &Server, after: &str) {
        let pid = server.pid();
        let restored = tokio::time::timeout(common::NETWORK_TIMEOUT, async {
            loop {
                let fds = procfs::open_fds(pid);
                let websockets = open_websockets(server.addr()).await;
                if fds == self.fds && websockets == self.websockets {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        if restored.is_err() {
            panic!(
                "after {after}: the engine holds {} fds and {} WebSockets, \
                 against {} and {} before: something leaked",
                procfs::open_fds(pid),
                open_websockets(server.addr()).await,
                self.fds,
                self.websockets
            );
        }
    }
}

/// The `ringecho_connections` gauge, summed over workers.
async fn open_websockets(addr: SocketAddr) -> f64 {
    Scrape::fetch(addr).await.sum("ringecho_connections", &[])
}

/// A well-behaved client that keeps echoing while a fault is under way,
/// checking every echo: the "still echoes for other clients" half of each
/// test. Every message differs, so a mixed-up echo shows.
struct Witness {
    stop: Arc<AtomicBool>,
    task: JoinHandle<u64>,
}

impl Witness {
    /// Connects and starts echoing a 1 KiB message every 5 ms.
    async fn start(addr: SocketAddr) -> Witness {
        let mut socket = ws::connect(addr).await;
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut echoes = 0u64;
                // One echo more once stopped: the engine still echoes
                // after the fault, too.
                loop {
                    let payload: Vec<u8> = (0..1024u64)
                        .map(|i| (i.wrapping_mul(7) ^ echoes) as u8)
                        .collect();
                    ws::assert_echo(&mut socket, Message::Binary(payload)).await;
                    echoes += 1;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                ws::close(socket).await;
                echoes
            }
        });
        Witness { stop, task }
    }

    /// Stops the witness after one more echo and closes it; returns how
    /// many echoes it checked, failing the test if it saw fewer than
    /// `at_least` (or a lost or wrong one).
    async fn finish(self, at_least: u64) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let echoes = within("the witness to finish", self.task)
            .await
            .expect("the witness saw a lost or wrong echo");
        assert!(
            echoes >= at_least,
            "the witness got only {echoes} echoes during the fault (expected {at_least}+)"
        );
        echoes
    }
}

// ---- clients that vanish ----------------------------------------------------

/// How many clients of each kind vanish, all at once.
const VANISHING_PER_KIND: usize = 30;

/// A valid upgrade request for `/ws` on `addr`.
fn upgrade_request(addr: SocketAddr) -> Vec<u8> {
    Request::upgrade("/ws").to_bytes(addr)
}

/// The ways a client vanishes (a TCP reset, `SO_LINGER` 0) in this test.
#[derive(Debug, Clone, Copy)]
enum Vanish {
    /// Half of the upgrade request sent.
    MidHandshake,
    /// The whole upgrade request sent, gone before the 101.
    BeforeTheResponse,
    /// Half of a 64 KiB binary frame sent (echoed in place as it arrives).
    MidBinaryFrame,
    /// Half of a 100 KiB text frame sent (copied out of the ring on io_uring).
    MidTextFrame,
    /// The first fragment of a message sent (reassembled by the engine).
    MidFragmentedMessage,
    /// A close frame sent, gone before the engine's answer.
    MidCloseFromClient,
    /// A protocol error sent; the engine's close 1002 read, never answered.
    MidCloseFromServer,
    /// A 1 MiB frame sent without reading its echo, gone while the engine
    /// is still sending it (a send in flight: the client's receive buffer
    /// is full).
    DuringALargeEcho,
}

impl Vanish {
    const ALL: [Vanish; 8] = [
        Vanish::MidHandshake,
        Vanish::BeforeTheResponse,
        Vanish::MidBinaryFrame,
        Vanish::MidTextFrame,
        Vanish::MidFragmentedMessage,
        Vanish::MidCloseFromClient,
        Vanish::MidCloseFromServer,
        Vanish::DuringALargeEcho,
    ];

    /// Plays one client that vanishes this way.
    async fn play(self, addr: SocketAddr) {
        // Long enough for the engine to have read what was sent.
        let settle = Duration::from_millis(50);
        match self {
            Vanish::MidHandshake | Vanish::BeforeTheResponse => {
                let mut stream = within("connect", TcpStream::connect(addr))
                    .await
                    .expect("connect");
                let request = upgrade_request(addr);
                let sent = match self {
                    Vanish::MidHandshake => &request[..request.len() / 2],
                    _ => &request[..],
                };
                within("send the request", stream.write_all(sent))
                    .await
                    .expect("send the request");
                tokio::time::sleep(settle).await;
                raw_ws::reset(stream);
            }
            Vanish::MidBinaryFrame | Vanish::MidTextFrame => {
                let mut socket = RawWebSocket::connect(addr).await;
                let frame = match self {
                    Vanish::MidBinaryFrame => Frame::binary(vec![0xA5; 64 << 10]),
                    _ => Frame::text(vec![b't'; 100 << 10]),
                };
                let wire = RawWebSocket::wire(&frame);
                socket.send_bytes(&wire[..wire.len() / 2]).await;
                tokio::time::sleep(settle).await;
                socket.reset();
            }
            Vanish::MidFragmentedMessage => {
                let mut socket = RawWebSocket::connect(addr).await;
                socket.send(&Frame::text("first of many").not_final()).await;
                socket
                    .send(&Frame::continuation("second").not_final())
                    .await;
                tokio::time::sleep(settle).await;
                socket.reset();
            }
            Vanish::MidCloseFromClient => {
                let mut socket = RawWebSocket::connect(addr).await;
                socket.send(&Frame::close(1000, "bye")).await;
                socket.reset();
            }
            Vanish::MidCloseFromServer => {
                let mut socket = RawWebSocket::connect(addr).await;
                socket.send(&Frame::new(OpCode::Reserved(0x3), "")).await;
                let close = socket.read_frame().await;
                assert_eq!(close.close_code(), Some(1002), "got {close:?}");
                socket.reset();
            }
            Vanish::DuringALargeEcho => {
                let mut socket = RawWebSocket::connect(addr).await;
                static WIRE: OnceLock<Vec<u8>> = OnceLock::new();
                let wire =
                    WIRE.get_or_init(|| RawWebSocket::wire(&Frame::binary(vec![0x5A; 1 << 20])));
                // The engine may stop reading once its echo backs up, so
                // the write may never finish: it is cut short either way.
                socket
                    .send_bytes_for(wire, Duration::from_millis(300))
                    .await;
                socket.reset();
            }
        }
    }
}

async fn clients_that_vanish_leave_nothing_behind(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = Server::start(backend, &[]).await;
    let addr = server.addr();
    let baseline = Baseline::take(&server).await;
    let witness = Witness::start(addr).await;

    let clients = Vanish::ALL
        .into_iter()
        .flat_map(|kind| (0..VANISHING_PER_KIND).map(move |_| kind.play(addr)));
    within("the vanishing clients", join_all(clients)).await;

    witness.finish(2).await;
    baseline
        .assert_restored(&server, "240 clients vanished (8 ways x 30)")
        .await;
}

// ---- half-close ---------------------------------------------------------------

/// Decodes every whole frame at the start of `bytes`, failing on a masked
/// one; returns them and the bytes after them (a frame cut short).
fn frames_in(mut bytes: &[u8]) -> (Vec<Frame>, &[u8]) {
    let mut frames = Vec::new();
    while let Some(decoded) = decode(bytes) {
        assert!(!decoded.masked, "a masked frame from the server");
        frames.push(decoded.frame);
        bytes = &bytes[decoded.wire_len..];
    }
    (frames, bytes)
}

/// A client that shuts down its write side (a TCP half-close) gets the
/// echo of every whole message it sent, then the engine closes the
/// connection (a FIN, no reset). It sends no close frame: the peer can no
/// longer answer one, and RFC 6455 has no code for "peer went away" to
/// send (1006 is never sent). A binary frame cut short by the half-close:
/// on epoll nothing of its echo is sent (fastwebsockets reads whole
/// frames); on io_uring the echo streams as the frame arrives, so the
/// start of it may have gone out, and the connection ends there. A client
/// that half-closes after its close frame gets the engine's answering
/// close frame first.
async fn a_client_that_half_closes_gets_its_echoes_then_the_end(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = Server::start(backend, &[]).await;
    let addr = server.addr();
    let baseline = Baseline::take(&server).await;
    let witness = Witness::start(addr).await;

    let whole = [
        Frame::text("one"),
        Frame::binary(vec![2; 20_000]),
        Frame::text("three"),
    ];
    let mut socket = RawWebSocket::connect(addr).await;
    for frame in &whole {
        socket.send(frame).await;
    }
    let cut = RawWebSocket::wire(&Frame::binary(vec![4; 1000]));
    socket.send_bytes(&cut[..500]).await;
    socket.shutdown_write().await;
    let (bytes, end) = socket.read_to_end().await;
    assert!(end.is_ok(), "the engine reset the connection: {end:?}");
    let (echoes, rest) = frames_in(&bytes);
    assert_eq!(echoes, whole, "echoes before the end");
    let cut_echo = Frame::binary(vec![4; 1000]).encode_unmasked();
    match backend {
        Backend::Epoll => assert!(rest.is_empty(), "{} bytes after the echoes", rest.len()),
        Backend::Uring => assert!(
            cut_echo.starts_with(rest),
            "the {} bytes after the echoes are not the start of the cut frame's echo",
            rest.len()
        ),
    }

    let mut socket = RawWebSocket::connect(addr).await;
    socket.send(&Frame::text("last words")).await;
    socket.send(&Frame::close(1000, "bye")).await;
    socket.shutdown_write().await;
    let (bytes, end) = socket.read_to_end().await;
    assert!(end.is_ok(), "the engine reset the connection: {end:?}");
    assert_eq!(
        frames_in(&bytes),
        (
            vec![Frame::text("last words"), Frame::close(1000, "bye")],
            &[][..]
        ),
        "the echo and the answering close, and nothing after"
    );

    witness.finish(1).await;
    baseline
        .assert_restored(&server, "two clients half-closed")
        .await;
}

// ---- running out of file descriptors ------------------------------------------

/// The engine's descriptor limit in this test, soft and hard.
const FD_LIMIT: u64 = 128;
/// WebSockets tried beyond what the limit leaves room for.
const EXCESS: usize = 60;
/// How long a client beyond the limit may wait to be told "no".
const DROP_WITHIN: Duration = Duration::from_secs(1);
/// The window over which the engine's CPU time is measured while it is out
/// of descriptors and clients keep knocking.
const CPU_WINDOW: Duration = Duration::from_secs(2);
/// The most CPU the engine may use in [`CPU_WINDOW`]: 15% of one core. A
/// spinning accept loop uses all of it.
const CPU_BUDGET: Duration = Duration::from_millis(300);

/// How one WebSocket attempt ended.
enum Attempt {
    /// Upgraded; it echoed once.
    Open(Box<ws::WebSocket>),
    /// The connection was closed before the upgrade, after this long.
    Dropped(Duration),
}

/// Tries to open a WebSocket and echo once on it.
async fn attempt(addr: SocketAddr) -> Attempt {
    let started = tokio::time::Instant::now();
    match ws::try_connect(addr).await {
        Ok(mut socket) => {
            ws::assert_echo(&mut socket, Message::Text("made it".into())).await;
            Attempt::Open(Box::new(socket))
        }
        Err(_) => Attempt::Dropped(started.elapsed()),
    }
}

/// Opens `count` WebSockets, 16 at a time; returns the open ones and how
/// long each refused one took to be refused.
async fn attempt_many(addr: SocketAddr, count: usize) -> (Vec<ws::WebSocket>, Vec<Duration>) {
    let mut open = Vec::new();
    let mut dropped = Vec::new();
    let attempts: Vec<usize> = (0..count).collect();
    for batch in attempts.chunks(16) {
        for outcome in join_all(batch.iter().map(|_| attempt(addr))).await {
            match outcome {
                Attempt::Open(socket) => open.push(*socket),
                Attempt::Dropped(after) => dropped.push(after),
            }
        }
    }
    (open, dropped)
}

/// Started with `ulimit -n 128` (soft and hard), the engine runs out of
/// descriptors once its WebSockets fill the room left. Then:
/// - every further client is dropped at once (its connection closed
///   before the upgrade, within [`DROP_WITHIN`]), not left hanging in the
///   backlog;
/// - the engine does not spin: while clients keep knocking for
///   [`CPU_WINDOW`], it uses less than [`CPU_BUDGET`] of CPU;
/// - it logs the condition once (two workers, many failed accepts);
/// - `ringecho_connections_dropped_total` counts every dropped client;
/// - the open WebSockets keep echoing, and once some close, new clients
///   get in again (on io_uring: the multishot accept, ended by `EMFILE`,
///   was re-armed).
///
/// `ENFILE` (the system-wide table full) takes the same path in the
/// engine, but cannot be caused here without starving the whole machine.
async fn running_out_of_file_descriptors_drops_the_excess_without_spinning(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = Server::start_with_fd_limit(backend, &[], FD_LIMIT).await;
    let addr = server.addr();
    let pid = server.pid();
    let baseline = Baseline::take(&server).await;
    let witness = Witness::start(addr).await;
    let room = usize::try_from(FD_LIMIT).expect("small") - procfs::open_fds(pid);

    let (mut open, dropped) = attempt_many(addr, room + EXCESS).await;
    assert!(
        open.len().abs_diff(room) <= 2,
        "{} WebSockets opened with room for {room}",
        open.len()
    );
    let slowest = dropped.iter().max().copied().unwrap_or_default();
    assert!(
        dropped.len() >= EXCESS - 2 && slowest <= DROP_WITHIN,
        "{} of {} clients beyond the limit were dropped, the slowest after {slowest:?}",
        dropped.len(),
        room + EXCESS
    );

    // Clients keep knocking; the engine drops each without spinning.
    let cpu_before = procfs::cpu_time(pid);
    let knocks_started = tokio::time::Instant::now();
    let mut knocks_dropped = 0;
    while knocks_started.elapsed() < CPU_WINDOW {
        match attempt(addr).await {
            Attempt::Open(_) => panic!("a knock got in while the engine was out of descriptors (fds {} of {FD_LIMIT}, {knocks_dropped} knocks dropped before)", procfs::open_fds(pid)),
            Attempt::Dropped(after) => {
                assert!(after <= DROP_WITHIN, "a knock was dropped only after {after:?}");
                knocks_dropped += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu = procfs::cpu_time(pid) - cpu_before;
    assert!(
        cpu <= CPU_BUDGET,
        "the engine used {cpu:?} of CPU in {CPU_WINDOW:?} while out of descriptors"
    );
    let warnings = server
        .log()
        .iter()
        .filter(|line| line.contains("out of file descriptors"))
        .count();
    assert_eq!(warnings, 1, "logged {warnings} times, expected once");

    // The open ones still echo; free some room and new clients get in.
    for socket in &mut open {
        ws::assert_echo(socket, Message::Text("still here".into())).await;
    }
    for socket in open.drain(..40) {
        ws::close(socket).await;
    }
    let (again, refused) = attempt_many(addr, 20).await;
    assert!(
        refused.is_empty() && again.len() == 20,
        "after 40 closed, {} of 20 new clients were dropped",
        refused.len()
    );
    let scrape = Scrape::fetch(addr).await;
    assert_eq!(
        scrape.sum("ringecho_connections_dropped_total", &[]),
        (dropped.len() + knocks_dropped) as f64,
        "every dropped client counted"
    );

    for socket in open.into_iter().chain(again) {
        ws::close(socket).await;
    }
    witness.finish(2).await;
    baseline
        .assert_restored(&server, "running out of descriptors")
        .await;
}

backend_tests!(
    clients_that_vanish_leave_nothing_behind,
    a_client_that_half_closes_gets_its_echoes_then_the_end,
    running_out_of_file_descriptors_drops_the_excess_without_spinning,
);
