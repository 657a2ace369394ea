//! Fault injection against the real binary, on both backends: clients that
//! vanish or half-close, running out of file descriptors, a connect storm,
//! slowloris, a client that floods while it is not read, a receive ring
//! that runs dry, and SIGTERM under load. Each test prints one summary line
//! (`--nocapture`); `results/reliability.md` collects them.
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
    /// 64 KiB frames sent without reading their echoes until the engine
    /// pauses the connection (above `--max-backpressure`), then gone.
    WhilePausedForBackpressure,
}

impl Vanish {
    const ALL: [Vanish; 9] = [
        Vanish::MidHandshake,
        Vanish::BeforeTheResponse,
        Vanish::MidBinaryFrame,
        Vanish::MidTextFrame,
        Vanish::MidFragmentedMessage,
        Vanish::MidCloseFromClient,
        Vanish::MidCloseFromServer,
        Vanish::DuringALargeEcho,
        Vanish::WhilePausedForBackpressure,
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
            Vanish::WhilePausedForBackpressure => {
                let mut socket = RawWebSocket::connect(addr).await;
                static WIRE: OnceLock<Vec<u8>> = OnceLock::new();
                let wire = WIRE.get_or_init(|| {
                    let frame = RawWebSocket::wire(&Frame::binary(vec![0x3C; 64 << 10]));
                    frame.repeat(64)
                });
                // 4 MiB against the 1 MiB cap: the writes stall once the
                // engine stops reading.
                socket
                    .send_bytes_for(wire, Duration::from_millis(500))
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

    let echoes = witness.finish(2).await;
    baseline
        .assert_restored(&server, "270 clients vanished (9 ways x 30)")
        .await;
    eprintln!(
        "vanishing clients ({}): {} reset in 9 ways; witness {echoes} echoes exact; \
         fds and gauge back to baseline",
        backend.name(),
        Vanish::ALL.len() * VANISHING_PER_KIND
    );
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
    let rest_len = rest.len();
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

    let echoes = witness.finish(1).await;
    baseline
        .assert_restored(&server, "two clients half-closed")
        .await;
    eprintln!(
        "half-close ({}): whole frames echoed, then FIN ({} bytes of the cut frame's \
         echo); close answered; witness {echoes} echoes exact",
        backend.name(),
        rest_len
    );
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
    let echoes = witness.finish(2).await;
    baseline
        .assert_restored(&server, "running out of descriptors")
        .await;
    eprintln!(
        "fd exhaustion ({}): ulimit -n {FD_LIMIT}, room for {room}; {} dropped (slowest \
         {slowest:?}), {knocks_dropped} knocks dropped; CPU {cpu:?} in {CPU_WINDOW:?}; \
         logged once; 20 new clients got in after 40 closed; witness {echoes} echoes exact",
        backend.name(),
        dropped.len()
    );
}

// ---- a connect storm -----------------------------------------------------------

/// WebSockets opened in the storm.
const STORM: usize = 10_000;
/// Handshakes in flight at once during the storm.
const STORM_IN_FLIGHT: usize = 256;

/// Lets this test process hold as many sockets as the hard limit allows.
fn raise_own_fd_limit() {
    rlimit::increase_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE");
}

/// Opens a WebSocket and checks one echo that names it.
async fn open_and_echo(addr: SocketAddr, index: usize) -> ws::WebSocket {
    let mut socket = ws::connect(addr).await;
    ws::assert_echo(&mut socket, Message::Text(format!("storm {index}"))).await;
    socket
}

/// 10,000 WebSocket connects and upgrades as fast as this client makes
/// them (256 handshakes in flight). Every one must upgrade and echo, the
/// gauge must count all 10,000 at once, and once they close (half with a
/// close handshake, half by dropping the TCP connection) nothing is left.
async fn a_storm_of_10_000_connects(backend: Backend) {
    use futures_util::StreamExt;
    let _turn = ONE_AT_A_TIME.lock().await;
    raise_own_fd_limit();
    let server = Server::start(backend, &[]).await;
    let addr = server.addr();
    let baseline = Baseline::take(&server).await;
    let witness = Witness::start(addr).await;

    let started = tokio::time::Instant::now();
    let sockets: Vec<ws::WebSocket> = futures_util::stream::iter(0..STORM)
        .map(|index| open_and_echo(addr, index))
        .buffer_unordered(STORM_IN_FLIGHT)
        .collect()
        .await;
    let took = started.elapsed();
    assert_eq!(sockets.len(), STORM);
    let open = open_websockets(addr).await;
    assert_eq!(
        open,
        baseline.websockets + (STORM + 1) as f64,
        "the gauge counts the storm and the witness"
    );
    eprintln!(
        "connect storm ({}): {STORM} upgrades and echoes in {took:?} ({:.0}/s)",
        backend.name(),
        STORM as f64 / took.as_secs_f64()
    );

    let (closing, dropping): (Vec<_>, Vec<_>) = sockets
        .into_iter()
        .enumerate()
        .partition(|(index, _)| index % 2 == 0);
    drop(dropping);
    futures_util::stream::iter(closing)
        .for_each_concurrent(STORM_IN_FLIGHT, |(_, socket)| ws::close(socket))
        .await;

    witness.finish(2).await;
    baseline
        .assert_restored(&server, "10,000 WebSockets opened and closed")
        .await;
}

// ---- slowloris ------------------------------------------------------------------

/// Slowloris connections held open at once.
const SLOWLORIS: usize = 2_000;
/// `--handshake-timeout` for the slowloris test.
const SLOWLORIS_TIMEOUT: Duration = Duration::from_secs(2);
/// One more byte of the never-ending header this often.
const TRICKLE: Duration = Duration::from_millis(250);
/// How late after the timeout a slowloris connection may still be open
/// (the io_uring loop checks deadlines every 100 ms at most; the machine
/// is shared).
const SLOWLORIS_SLACK: Duration = Duration::from_secs(2);
/// Bytes of header each slowloris client sends at once before it starts
/// to trickle: most of what the engine buffers for a request head
/// (`MAX_REQUEST_HEAD`, 16 KiB), the costliest slow client it accepts.
const SLOWLORIS_HEADER: usize = 12 << 10;
/// The most the engine's resident memory may grow while the slowloris
/// connections are open: 64 KiB per connection (hyper's 16 KiB read and
/// 8 KiB write buffers, the connection's task and slot, allocator slack).
const SLOWLORIS_RSS_PER_CONNECTION: u64 = 64 << 10;
/// Clients that send a request head larger than the engine buffers.
const OVERSIZED_HEADS: usize = 50;

/// A slowloris client: sends the start of an upgrade request with a
/// [`SLOWLORIS_HEADER`]-byte header, then one more byte of that header
/// line every [`TRICKLE`], never ending it, until the engine closes the
/// connection. Returns how long it stayed open.
async fn slowloris(addr: SocketAddr) -> Duration {
    use tokio::io::AsyncReadExt;
    // Timed from before the connect: the engine cannot have accepted the
    // connection earlier, and this busy client may see it late.
    let opened = tokio::time::Instant::now();
    let stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nX-Slow: {}",
        "z".repeat(SLOWLORIS_HEADER)
    );
    let trickle = async {
        if writer.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let mut ticks = tokio::time::interval(TRICKLE);
        loop {
            ticks.tick().await;
            if writer.write_all(b"z").await.is_err() {
                return;
            }
        }
    };
    let closed = async {
        let mut byte = [0; 64];
        while let Ok(1..) = reader.read(&mut byte).await {}
    };
    // Reading EOF or a reset, or a failed write: either way the engine let go.
    within("the engine to drop a slowloris client", async {
        tokio::select! {
            () = closed => {}
            () = trickle => {}
        }
    })
    .await;
    opened.elapsed()
}

/// Sends a request head of 64 KiB, more than the engine buffers, and
/// returns the status the engine answered (431), or `None` if it just
/// closed the connection.
async fn oversized_head(addr: SocketAddr) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let mut stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let head = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\n\r\n",
        "b".repeat(64 << 10)
    );
    // The engine may close before it has read it all.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = within(
        "the answer to an oversized head",
        stream.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

/// 2,000 slowloris clients at once, each sending an upgrade request with
/// a 12 KiB header and then one more byte every 250 ms, never finishing
/// it, with `--handshake-timeout 2s`. The timeout holds for every one of
/// them (closed after 2 s, within [`SLOWLORIS_SLACK`]); the engine's memory
/// stays under [`SLOWLORIS_RSS_PER_CONNECTION`] per connection while they
/// are open; each is counted as a handshake timeout; and the witness
/// echoes throughout. Meanwhile 50 clients send 64 KiB request heads,
/// more than the engine buffers: each gets 431 (or its connection closed)
/// at once, not after the timeout.
async fn slowloris_is_cut_off_by_the_handshake_timeout(backend: Backend) {
    use futures_util::StreamExt;
    let _turn = ONE_AT_A_TIME.lock().await;
    raise_own_fd_limit();
    let server = Server::start(backend, &["--handshake-timeout", "2s"]).await;
    let addr = server.addr();
    let pid = server.pid();
    let baseline = Baseline::take(&server).await;
    let witness = Witness::start(addr).await;
    let rss_before = procfs::resident_bytes(pid);

    let peak = Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (peak, sampling) = (peak.clone(), sampling.clone());
        async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(procfs::resident_bytes(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let oversized = async {
        let started = tokio::time::Instant::now();
        let answers = join_all((0..OVERSIZED_HEADS).map(|_| oversized_head(addr))).await;
        (answers, started.elapsed())
    };
    let slow = futures_util::stream::iter(0..SLOWLORIS)
        .map(|_| slowloris(addr))
        .buffer_unordered(SLOWLORIS)
        .collect::<Vec<Duration>>();
    let (open_for, (answers, oversized_took)) = tokio::join!(slow, oversized);
    sampling.store(false, Ordering::Relaxed);
    assert!(
        answers
            .iter()
            .all(|status| matches!(status, Some(431) | None)),
        "oversized request heads were answered {answers:?}"
    );
    assert!(
        oversized_took < SLOWLORIS_TIMEOUT,
        "oversized request heads took {oversized_took:?} to be refused"
    );
    sampler.await.expect("the memory sampler");

    let shortest = open_for.iter().min().copied().unwrap_or_default();
    let longest = open_for.iter().max().copied().unwrap_or_default();
    let allowed = SLOWLORIS_TIMEOUT * 4 / 5..=SLOWLORIS_TIMEOUT + SLOWLORIS_SLACK;
    assert!(
        allowed.contains(&shortest) && allowed.contains(&longest),
        "slowloris clients were dropped after {shortest:?} to {longest:?}, expected {allowed:?}"
    );
    let growth = peak.load(Ordering::Relaxed).saturating_sub(rss_before);
    let bound = SLOWLORIS as u64 * SLOWLORIS_RSS_PER_CONNECTION;
    assert!(
        growth <= bound,
        "the engine grew by {} KiB with {SLOWLORIS} slowloris clients, bound {} KiB",
        growth >> 10,
        bound >> 10
    );
    let timeouts = Scrape::fetch(addr).await.sum(
        "ringecho_handshakes_rejected_total",
        &[("reason", "timeout")],
    );
    assert_eq!(
        timeouts, SLOWLORIS as f64,
        "each counted as a handshake timeout"
    );
    eprintln!(
        "slowloris ({}): {SLOWLORIS} clients dropped after {shortest:?} to {longest:?}; \
         RSS +{} KiB ({} B per connection)",
        backend.name(),
        growth >> 10,
        growth / SLOWLORIS as u64
    );

    witness.finish(2).await;
    baseline
        .assert_restored(&server, "2,000 slowloris clients")
        .await;
}

// ---- a client that sends while the engine does not read -------------------------

/// An HTTP client asks for `/stats` (a response that never ends) and then
/// keeps sending, never reading: hyper reads no more of its bytes while it
/// streams the response. The engine must stop receiving from it rather
/// than hold what it sends: on io_uring, its receive buffers come from the
/// worker's shared ring (a small one here, 64 x 4 KiB), and a client that
/// took them all would starve every other connection of the worker. A
/// newcomer on the same worker must still get through its handshake and
/// echo, and the witness must keep echoing.
async fn a_client_that_sends_without_reading_cannot_starve_the_others(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = Server::start(backend, &["--threads", "1", "--receive-buffers", "64"]).await;
    let addr = server.addr();
    let baseline = Baseline::take(&server).await;
    let witness = Witness::start(addr).await;

    let mut hog = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let request = format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    hog.write_all(request.as_bytes()).await.expect("send");
    let junk = vec![b'j'; 64 << 10];
    let mut sent = 0usize;
    let pushing = tokio::time::Instant::now();
    while pushing.elapsed() < Duration::from_secs(2) {
        match tokio::time::timeout(Duration::from_millis(100), hog.write_all(&junk)).await {
            Ok(Ok(())) => sent += junk.len(),
            Ok(Err(error)) => panic!("the engine dropped the client: {error}"),
            // Blocked: the engine stopped reading from it.
            Err(_) => {}
        }
    }
    let mut newcomer = within(
        "a newcomer's handshake while one client floods",
        ws::connect(addr),
    )
    .await;
    ws::assert_echo(&mut newcomer, Message::Text("still served".into())).await;
    ws::close(newcomer).await;
    eprintln!(
        "flooding client ({}): sent {} KiB without reading; others served",
        backend.name(),
        sent >> 10
    );

    raw_ws::reset(hog);
    witness.finish(2).await;
    baseline
        .assert_restored(&server, "a client sent without reading")
        .await;
}

// ---- the receive ring runs dry (io_uring) ---------------------------------------

/// Clients echoing 16 KiB messages in a closed loop while the ring runs
/// dry.
const DRY_RING_CLIENTS: usize = 32;
/// How long the load runs.
const DRY_RING_LOAD: Duration = Duration::from_secs(2);

/// io_uring only (the epoll backend has no receive ring): one worker with
/// the smallest ring allowed, one 4 KiB buffer, under 32 clients echoing
/// 16 KiB messages and 30 more that vanish mid-frame (holding a part of
/// the ring when they go). The ring runs dry (logged), every echo is
/// still exact, and afterwards it recovers: with a single buffer, one
/// buffer never given back would stop the worker receiving at all, so a
/// new client echoing 100 messages proves every buffer came back. The
/// correctness of dry-ring echoes themselves is `undersized_buffers.rs`'s.
#[tokio::test]
async fn the_receive_ring_runs_dry_under_load_and_recovers() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = Server::start(
        Backend::Uring,
        &[
            "--threads",
            "1",
            "--receive-buffers",
            "1",
            "--receive-buffer-size",
            "4KiB",
        ],
    )
    .await;
    let addr = server.addr();
    let baseline = Baseline::take(&server).await;
    let witness = Witness::start(addr).await;

    let load = (0..DRY_RING_CLIENTS).map(|client| async move {
        let mut socket = ws::connect(addr).await;
        let started = tokio::time::Instant::now();
        let mut round = 0usize;
        while started.elapsed() < DRY_RING_LOAD {
            let payload: Vec<u8> = (0..16 << 10)
                .map(|i: usize| (i ^ client ^ round) as u8)
                .collect();
            ws::assert_echo(&mut socket, Message::Binary(payload)).await;
            round += 1;
        }
        ws::close(socket).await;
        round
    });
    let vanishing = (0..30).map(|index| async move {
        tokio::time::sleep(DRY_RING_LOAD * index / 30).await;
        Vanish::MidBinaryFrame.play(addr).await;
    });
    let (echoes, _) = within(
        "the load on a dry ring",
        futures_util::future::join(join_all(load), join_all(vanishing)),
    )
    .await;
    let echoes: usize = echoes.iter().sum();
    assert!(
        server
            .log()
            .iter()
            .any(|line| line.contains("receive buffer ring ran dry (1 x 4096 B)")),
        "the ring never ran dry, so this test did not cover that case"
    );

    let mut after = ws::connect(addr).await;
    for round in 0..100u32 {
        let payload = round.to_be_bytes().repeat(4 << 10);
        ws::assert_echo(&mut after, Message::Binary(payload)).await;
    }
    ws::close(after).await;
    eprintln!(
        "dry ring (uring): {echoes} echoes of 16 KiB by {DRY_RING_CLIENTS} clients on a \
         1 x 4 KiB ring with 30 vanishing mid-frame; recovered"
    );

    witness.finish(2).await;
    baseline
        .assert_restored(&server, "a dry ring under load")
        .await;
}

// ---- SIGTERM under full load -----------------------------------------------------

/// Clients echoing in a closed loop when SIGTERM arrives.
const BUSY_CLIENTS: usize = 100;
/// Clients that never answer the engine's close frame.
const SILENT_CLIENTS: usize = 5;
/// `--shutdown-timeout` for the SIGTERM test.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// How a busy client's run ended.
struct BusyEnd {
    /// Echoes received, each checked.
    echoes: u64,
    /// The code of the engine's close frame.
    close_code: u16,
}

/// Echoes messages of 20 B, 1 KiB and 16 KiB in turn, each checked, until
/// the engine's close frame arrives; then answers it (tungstenite does)
/// and waits for the TCP connection to end. The message in flight when
/// the close came gets no echo: the engine sends no data after its close.
async fn busy_client(addr: SocketAddr, client: usize) -> BusyEnd {
    let mut socket = ws::connect(addr).await;
    let mut echoes = 0u64;
    for round in 0usize.. {
        let size = [20, 1 << 10, 16 << 10][round % 3];
        let payload: Vec<u8> = (0..size).map(|i| (i ^ client ^ round) as u8).collect();
        ws::send(&mut socket, Message::Binary(payload.clone())).await;
        match ws::next_message(&mut socket).await {
            Some(Message::Binary(echo)) => {
                assert!(echo == payload, "client {client}: a wrong echo");
                echoes += 1;
            }
            Some(Message::Close(Some(frame))) => {
                ws::drain_until_closed(&mut socket).await;
                return BusyEnd {
                    echoes,
                    close_code: frame.code.into(),
                };
            }
            other => panic!("client {client}: expected an echo or a close, got {other:?}"),
        }
    }
    unreachable!("the loop only ends by returning")
}

/// SIGTERM while 100 clients echo as fast as they can (20 B to 16 KiB
/// messages) and 5 more sit idle and will never answer a close. Every
/// client gets close 1001; the busy ones answer it and their connections
/// end at once (not at the timeout); every echo before the close is exact;
/// the engine waits `--shutdown-timeout` (3 s) for the silent ones and
/// exits 0 right after it.
async fn sigterm_under_full_load_closes_everyone_with_1001(backend: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut server = Server::start(backend, &["--threads", "2", "--shutdown-timeout", "3s"]).await;
    let addr = server.addr();
    let pid = server.pid();
    let baseline = Baseline::take(&server).await;
    let mut silent = Vec::new();
    for _ in 0..SILENT_CLIENTS {
        silent.push(RawWebSocket::connect(addr).await);
    }
    let busy: Vec<_> = (0..BUSY_CLIENTS)
        .map(|client| tokio::spawn(busy_client(addr, client)))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    server.send_signal(libc::SIGTERM);
    let signalled = tokio::time::Instant::now();
    let mut echoes = 0;
    for client in busy {
        let end = within("a busy client to be closed", client)
            .await
            .expect("a busy client failed");
        assert_eq!(end.close_code, 1001, "close code at shutdown");
        assert!(end.echoes > 0, "a busy client got no echo before the close");
        echoes += end.echoes;
    }
    let busy_done = signalled.elapsed();
    assert!(
        busy_done < SHUTDOWN_TIMEOUT,
        "the busy clients were closed only after {busy_done:?}"
    );
    // Their connections are gone, the listeners closed; the silent ones
    // remain (two listeners, one per worker).
    let expected_fds = baseline.fds - 2 + SILENT_CLIENTS;
    // A busy client's end of stream reaches the engine's lingering close a
    // moment after the client saw the close: give the engine up to 1 s (well
    // inside the 3 s shutdown timeout) to close those descriptors.
    let mut fds = procfs::open_fds(pid);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while fds > expected_fds && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
        fds = procfs::open_fds(pid);
    }
    assert!(
        fds <= expected_fds,
        "{fds} fds open {busy_done:?} after SIGTERM, expected {expected_fds} at most"
    );
    for client in &mut silent {
        let close = client.read_frame().await;
        assert_eq!(close.close_code(), Some(1001), "got {close:?}");
    }

    let status = server.wait_for_exit(SHUTDOWN_TIMEOUT * 2).await;
    let exited = signalled.elapsed();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let allowed =
        SHUTDOWN_TIMEOUT - Duration::from_millis(200)..=SHUTDOWN_TIMEOUT + Duration::from_secs(1);
    assert!(
        allowed.contains(&exited),
        "exited {exited:?} after SIGTERM, expected {allowed:?} (the silent clients hold it)"
    );
    // io_uring: every operation was cancelled and collected before exit
    // (a recv re-armed after the final cancel used to be left in flight).
    assert!(
        !server
            .log()
            .iter()
            .any(|line| line.contains("still in flight at exit")),
        "operations left in flight at exit"
    );
    eprintln!(
        "SIGTERM under load ({}): {BUSY_CLIENTS} busy clients ({echoes} echoes, all exact) \
         closed with 1001 within {busy_done:?}; {SILENT_CLIENTS} silent got 1001; \
         exit 0 after {exited:?}",
        backend.name()
    );
}

backend_tests!(
    clients_that_vanish_leave_nothing_behind,
    a_client_that_half_closes_gets_its_echoes_then_the_end,
    running_out_of_file_descriptors_drops_the_excess_without_spinning,
    a_storm_of_10_000_connects,
    slowloris_is_cut_off_by_the_handshake_timeout,
    a_client_that_sends_without_reading_cannot_starve_the_others,
    sigterm_under_full_load_closes_everyone_with_1001,
);
