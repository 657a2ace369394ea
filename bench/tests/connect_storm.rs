//! A connect storm from the real load generator: `loadgen soak` opens
//! 10,000 WebSockets as fast as it can make them (no pacing: a
//! `--connect-rate` far above what one core reaches), holds them for a few
//! seconds with some traffic, then closes them all, on each backend.
//!
//! The fault tests of the engine (`engine/tests/faults.rs`) run a storm
//! from their own tokio-tungstenite client with a bounded number of
//! handshakes in flight. This one is the unbounded one the reliability
//! issue names: as fast as loadgen can make them. It asserts what every
//! fault test asserts. First, the engine still echoes for another client:
//! an independent tokio-tungstenite witness echoes a distinct message every
//! 5 ms through the whole storm, and each echo is compared. Second, nothing
//! leaked: once loadgen is gone, the engine's open descriptors and its
//! `ringecho_connections` gauge are back to their values before the storm.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::harness::{Binaries, Build, RunningServer, ServerSpec};
use futures_util::{SinkExt, StreamExt};
use ringecho::IoBackend;
use tokio_tungstenite::tungstenite::Message;

/// WebSockets the storm opens (and holds at once).
const STORM: u64 = 10_000;
/// How long loadgen holds them after the last one opened.
const HOLD: &str = "3s";
/// How long the whole loadgen run may take (a debug build, two cores
/// shared with the engine) before the test fails.
const LOADGEN_DEADLINE: Duration = Duration::from_secs(90);
/// How long the engine may take to be back at its baseline.
const SETTLE: Duration = Duration::from_secs(10);
/// Time between two messages of the witness.
const WITNESS_EVERY: Duration = Duration::from_millis(5);

/// Open file descriptors of `pid` (`/proc/PID/fd`).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// The engine's `ringecho_connections` gauge, summed over its workers,
/// read from `/metrics`.
fn connections_gauge(addr: SocketAddr) -> u64 {
    let mut stream = TcpStream::connect(addr).expect("connect for /metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read /metrics");
    // One sample per worker: `ringecho_connections{worker="0"} 3`.
    let samples: Vec<u64> = text
        .lines()
        .filter(|line| {
            line.strip_prefix("ringecho_connections")
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .map(|line| {
            let value = line.rsplit(' ').next().unwrap_or_default();
            value.parse().expect("a gauge value")
        })
        .collect();
    assert!(
        !samples.is_empty(),
        "no ringecho_connections gauge in:\n{text}"
    );
    samples.iter().sum()
}

/// Polls until the engine's descriptors and gauge are back to `fds` and 0
/// (the gauge counts the /metrics request itself as no WebSocket).
fn wait_for_baseline(server: &RunningServer, fds: usize) -> (usize, u64) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = (open_fds(server.pid()), connections_gauge(server.addr()));
        if now == (fds, 0) || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Echoes a distinct text message every [`WITNESS_EVERY`] until `stop`,
/// checking each echo; returns how many came back exact, and panics on
/// any other outcome.
fn run_witness(url: String, stop: Arc<AtomicBool>) -> u64 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("the witness connects");
        let mut echoed = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let text = format!("witness {echoed} {}", "w".repeat(64));
            socket
                .send(Message::Text(text.clone()))
                .await
                .expect("the witness sends");
            let reply = tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .expect("an echo within 10 s, storm or not")
                .expect("the witness's socket stays open")
                .expect("no error on the witness's socket");
            assert_eq!(reply, Message::Text(text), "the witness's echo");
            echoed += 1;
            tokio::time::sleep(WITNESS_EVERY).await;
        }
        socket.close(None).await.ok();
        echoed
    })
}

/// Runs the storm against `backend` and checks everything.
fn storm(bins: &Binaries, backend: IoBackend) {
    let spec = ServerSpec::ringecho(&bins.ringecho, backend, 1);
    let server = RunningServer::start(&spec).expect("start the engine");
    // The engine's descriptors with nothing connected; the witness holds one more.
    let fds_before = open_fds(server.pid());
    let gauge_before = connections_gauge(server.addr());
    assert_eq!(gauge_before, 0);

    let stop = Arc::new(AtomicBool::new(false));
    let witness = {
        let (url, stop) = (server.ws_url(), Arc::clone(&stop));
        std::thread::spawn(move || run_witness(url, stop))
    };
    let report = run_loadgen(&bins.loadgen, &server.ws_url());
    stop.store(true, Ordering::Relaxed);
    let witnessed = witness.join().expect("the witness never saw a wrong echo");

    let totals = &report["totals"];
    let count = |key: &str| totals[key].as_u64().unwrap_or(u64::MAX);
    assert_eq!(
        report["pass"], true,
        "{backend}: loadgen's verdict: {report}"
    );
    assert_eq!(count("opened"), STORM, "{backend}: every connect upgraded");
    assert_eq!(count("max_open"), STORM, "{backend}: all held at once");
    assert_eq!(
        totals["connect_failures"],
        serde_json::json!({}),
        "{backend}"
    );
    assert_eq!(
        totals["unexpected_closes"],
        serde_json::json!({}),
        "{backend}"
    );
    assert_eq!((count("lost"), count("corrupted")), (0, 0), "{backend}");
    assert!(count("echoes") > 0, "{backend}: the storm's players echoed");
    assert_eq!(count("closed_clean"), count("closes"), "{backend}");
    assert!(
        witnessed >= 20,
        "{backend}: the witness echoed all along the storm ({witnessed} echoes)"
    );

    let after = wait_for_baseline(&server, fds_before);
    assert_eq!(
        after,
        (fds_before, 0),
        "{backend}: fds and the connections gauge back to the baseline"
    );
    // The end of the first 100 ms interval with all of them open.
    let ramp_s = report["series"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["open"] == STORM))
        .and_then(|row| row["t_s"].as_f64())
        .unwrap_or(f64::NAN);
    eprintln!(
        "connect storm ({backend}): {STORM} opened within {ramp_s:.1} s, {} echoes, 0 lost; \
         witness {witnessed} echoes, all exact; fds {fds_before} -> {} after, gauge 0",
        count("echoes"),
        after.0
    );
    let status = server.stop().expect("stop the engine");
    assert!(status.success(), "{backend}: engine exit {status}");
}

/// Runs `loadgen soak` as a storm and returns its JSON report.
fn run_loadgen(loadgen: &Path, url: &str) -> serde_json::Value {
    let json = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    let mut child = Command::new(loadgen)
        .args(["soak", url, "--connections", &STORM.to_string()])
        // A rate no core reaches: loadgen opens them as fast as it can.
        .args(["--connect-rate", "10000000", "--duration", HOLD])
        .args(["--churn", "0", "--players", "20", "--bursts", "10"])
        .args(["--lobby-rate", "0.5", "--interval", "100ms", "--pin", "0"])
        .args(["--quiet", "--json"])
        .arg(json.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start loadgen soak");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LOADGEN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen soak overran {LOADGEN_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "loadgen soak: {status}");
    serde_json::from_str(&std::fs::read_to_string(json.path()).unwrap()).expect("loadgen's JSON")
}

#[test]
fn a_storm_of_10_000_connects_from_loadgen() {
    let bins = Binaries::locate(Build::Debug).expect("build or locate the debug binaries");
    for backend in IoBackend::ALL {
        storm(&bins, backend);
    }
}
