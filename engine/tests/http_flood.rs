//! A client that floods the HTTP phase with empty lines costs the engine
//! next to nothing, on both backends.
//!
//! HTTP/1.1 lets a client send empty lines before a request, and hyper
//! (httparse) skips them, up to its buffer limit (400 KB by default; the
//! engine now caps it at `http::MAX_REQUEST_HEAD`, 16 KiB, and answers 431
//! past it). On the io_uring
//! path hyper's reads stop at each request head's end, and every stop makes
//! hyper parse its whole buffer again: before the fix, a read stopped at
//! every `\r\n\r\n`, so 400 KB of empty lines cost its worker 7 s of CPU
//! (100,000 parses), during which every other connection on that worker
//! waited. The `upgrade` fuzz target found it (docs/fuzzing.md).

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::http::Request;
use common::server::Server;
use common::{backend_tests, within, Backend};

/// Empty lines sent: just under hyper's buffer limit (8 KiB + 400 KiB).
const FLOOD: usize = 400_000;
/// The engine's CPU time the whole flood may cost (it was 7 s on io_uring
/// before the fix; it is about 10 ms on either backend).
const CPU_BUDGET: Duration = Duration::from_secs(1);

/// User plus system CPU time of process `pid`, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

async fn empty_lines_cost_next_to_nothing(backend: Backend) {
    let server = Server::start(backend, &["--threads", "1", "--handshake-timeout", "2s"]).await;
    let before = cpu_time(server.pid());
    let mut flood = within("connect", TcpStream::connect(server.addr()))
        .await
        .expect("connect");
    within(
        "the flood to be sent",
        flood.write_all(&b"\r\n".repeat(FLOOD / 2)),
    )
    .await
    .expect("send the flood");
    // No request ever comes: the handshake timeout closes the connection,
    // without an answer.
    let mut rest = Vec::new();
    let read = within(
        "the engine to close the flood",
        flood.read_to_end(&mut rest),
    )
    .await;
    assert!(
        read.is_err() || rest.is_empty(),
        "answered empty lines: {:?}",
        String::from_utf8_lossy(&rest)
    );
    let used = cpu_time(server.pid()) - before;
    assert!(
        used < CPU_BUDGET,
        "{FLOOD} bytes of empty lines cost the engine {used:?} of CPU"
    );
    // The worker still serves.
    let response = Request::get("/healthz").send(server.addr()).await;
    assert_eq!(response.status, 200, "{response:?}");
}

backend_tests!(empty_lines_cost_next_to_nothing);
