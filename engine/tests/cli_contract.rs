//! The command-line contract of `ringecho`, case by case against the real
//! binary: usage errors exit 2 with one line and no backtrace; an address
//! another process listens on is refused (exit 1, naming the address)
//! unless `--join-existing` asks to share it; `--help` lists every endpoint
//! and exit code; no colour codes when stderr is not a terminal; `-q` is
//! quiet; the epoll start-up line does not describe io_uring's ring.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::server::{run_to_exit, Server, BINARY};
use tokio_tungstenite::tungstenite::Message;

/// `ringecho ARGS` with `RUST_BACKTRACE=1` (a usage error must still print
/// no backtrace), run to its exit.
fn exit_of(args: &[&str]) -> Output {
    let mut child = Command::new(BINARY)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ringecho {args:?} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The last stderr line, and that it is the only `error` line.
fn error_line(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("backtrace"), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{err}");
    errors[0].to_string()
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for (args, what) in [
        (&["--threads", "0"][..], "--threads"),
        (&["--receive-buffers", "3"][..], "--receive-buffers"),
        (&["--max-backpressure", "1KiB"][..], "--max-backpressure"),
        (&["--allowed-origin", "nope"][..], "--allowed-origin"),
    ] {
        let out = exit_of(&[&["--listen", "127.0.0.1:0"][..], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let line = error_line(&out);
        assert!(line.starts_with("ringecho: error: "), "{line}");
        assert!(line.contains(what), "{args:?}: {line}");
    }
    // The parser's own errors are usage errors too.
    let out = exit_of(&["--io", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_address_another_process_listens_on_is_refused() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for backend in ["uring", "epoll"] {
        let out = exit_of(&["--listen", &addr, "--io", backend]);
        assert_eq!(out.status.code(), Some(1), "{backend}");
        let line = error_line(&out);
        assert!(
            line.contains(&format!("{addr} is already in use")) && line.contains("--join-existing"),
            "{backend}: {line}"
        );
    }
}

#[tokio::test]
async fn a_second_engine_joins_the_port_only_when_asked() {
    let addr = format!("127.0.0.1:{}", free_port());
    let first =
        Server::start_with_args(&["--listen", &addr, "--threads", "1", "--io", "epoll"]).await;
    assert!(
        !first.startup_line().contains("joined"),
        "{}",
        first.startup_line()
    );

    let refused = exit_of(&["--listen", &addr, "--threads", "1"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(error_line(&refused).contains("already in use"));

    let second = Server::start_with_args(&[
        "--listen",
        &addr,
        "--threads",
        "1",
        "--io",
        "epoll",
        "--join-existing",
    ])
    .await;
    assert!(
        second.startup_line().contains("joined=true"),
        "{}",
        second.startup_line()
    );
    // The restart recipe: the old engine stops, the new one keeps the port.
    first.send_signal(libc::SIGTERM);
    let addr: SocketAddr = addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while first_still_running(&first) {
        assert!(Instant::now() < deadline, "the old engine did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut socket = common::ws::connect(addr).await;
    common::ws::assert_echo(&mut socket, Message::text("still here")).await;
    drop(second);
}

fn first_still_running(server: &Server) -> bool {
    std::path::Path::new(&format!("/proc/{}", server.pid())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", server.pid()))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn help_lists_every_endpoint_and_exit_code() {
    let out = run_to_exit(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for item in [
        "GET /ws",
        "GET /healthz",
        "GET /metrics",
        "GET /stats",
        "GET / ",
        "404",
        "Exit codes:",
        "0 stopped by SIGINT or SIGTERM",
        "1 a runtime error",
        "2 usage error",
        "--join-existing",
        "--quiet",
    ] {
        assert!(help.contains(item), "--help lacks {item:?}:\n{help}");
    }
}

/// Starts `ringecho ARGS` on a fixed free port with stderr piped (not a
/// terminal) and nothing set in the environment about logs or colours,
/// waits until it accepts, stops it with SIGTERM and returns its stderr.
fn stderr_of_a_run(extra: &[&str]) -> String {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child: Child = Command::new(BINARY)
        .args(["--listen", &listen, "--threads", "1"])
        .args(extra)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "ringecho {extra:?} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    stderr
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let stderr = stderr_of_a_run(&["--io", "epoll"]);
    assert!(stderr.contains("listening on http://"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe:\n{stderr:?}"
    );
}

#[test]
fn quiet_logs_nothing_on_a_clean_run() {
    for backend in ["uring", "epoll"] {
        let stderr = stderr_of_a_run(&["-q", "--io", backend]);
        assert_eq!(stderr, "", "{backend}: -q printed:\n{stderr}");
    }
}

#[tokio::test]
async fn the_epoll_startup_line_names_no_receive_ring() {
    let epoll = Server::start_with_args(&["--listen", "127.0.0.1:0", "--io", "epoll"]).await;
    assert!(
        !epoll.startup_line().contains("receive_buffers"),
        "{}",
        epoll.startup_line()
    );
    let uring = Server::start_with_args(&["--listen", "127.0.0.1:0", "--io", "uring"]).await;
    assert!(
        uring.startup_line().contains("receive_buffers="),
        "{}",
        uring.startup_line()
    );
}
