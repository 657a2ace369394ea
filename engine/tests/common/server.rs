//! Running the `ringecho` binary under test.
//!
//! The server is started on `127.0.0.1:0`; its real address is read from the
//! startup line it logs to stderr (`listening on http://ADDR io=...`). A
//! background thread keeps draining stderr afterwards, so the pipe never fills
//! and the whole log is at hand when a test fails.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::time::timeout;

use super::process::KillOnDrop;
use super::{Backend, NETWORK_TIMEOUT};

/// Path of the binary under test, built by cargo for the integration tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_ringecho");

/// The text in front of the listening address in the startup line.
const STARTUP_MARKER: &str = "listening on http://";

/// A running `ringecho` process. Killed when dropped; if the test is failing
/// at that point, its log is printed to help with the diagnosis.
pub struct Server {
    process: KillOnDrop,
    pid: u32,
    addr: SocketAddr,
    startup_line: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `ringecho --listen 127.0.0.1:0 --io BACKEND EXTRA_ARGS...` with
    /// `RUST_LOG=info` and waits until it logs its listening address.
    pub async fn start(backend: Backend, extra_args: &[&str]) -> Server {
        Self::start_with_log_filter(backend, extra_args, "info").await
    }

    /// [`Server::start`] with `RUST_LOG=log_filter`, for tests that check
    /// what the engine logs.
    pub async fn start_with_log_filter(
        backend: Backend,
        extra_args: &[&str],
        log_filter: &str,
    ) -> Server {
        let mut args = vec!["--listen", "127.0.0.1:0", "--io", backend.name()];
        args.extend_from_slice(extra_args);
        Server::spawn(&args, log_filter, None).await
    }

    /// [`Server::start`] with both the soft and the hard `RLIMIT_NOFILE` set
    /// to `limit` (the engine raises its soft limit to the hard one, so
    /// both must be low for the limit to hold).
    pub async fn start_with_fd_limit(backend: Backend, extra_args: &[&str], limit: u64) -> Server {
        let mut args = vec!["--listen", "127.0.0.1:0", "--io", backend.name()];
        args.extend_from_slice(extra_args);
        Server::spawn(&args, "info", Some(limit)).await
    }

    /// Starts `ringecho ARGS...` exactly as given (the caller chooses
    /// `--listen`, which must pick a free port) and waits for its startup line.
    pub async fn start_with_args(args: &[&str]) -> Server {
        Server::spawn(args, "info", None).await
    }

    async fn spawn(args: &[&str], log_filter: &str, fd_limit: Option<u64>) -> Server {
        let mut command = binary_command();
        command
            .args(args)
            .env("RUST_LOG", log_filter)
            .stdout(Stdio::null());
        if let Some(limit) = fd_limit {
            let set_limit = move || rlimit::Resource::NOFILE.set(limit, limit);
            // SAFETY: the closure runs in the forked child before exec; it
            // only calls setrlimit(2), which is async-signal-safe, and
            // allocates nothing (an error is an OS error code).
            unsafe { command.pre_exec(set_limit) };
        }
        let mut process = KillOnDrop::spawn(&mut command);
        let stderr = process.child().stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (startup_sender, startup_receiver) = oneshot::channel();
        spawn_log_reader(stderr, Arc::clone(&log), startup_sender);

        let startup_line = match timeout(NETWORK_TIMEOUT, startup_receiver).await {
            Ok(Ok(line)) => line,
            failure => {
                let status = process.wait(Duration::from_secs(1)).await;
                panic!(
                    "ringecho {args:?} did not log its startup line \
                     ({}; exit status {status:?}); log:\n{}",
                    if failure.is_err() {
                        "timed out"
                    } else {
                        "log ended"
                    },
                    log.lock().expect("log lock").join("\n")
                );
            }
        };
        let addr = parse_listening_address(&startup_line);
        Server {
            pid: process.child().id(),
            process,
            addr,
            startup_line,
            log,
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The log line that announced the listening address.
    pub fn startup_line(&self) -> &str {
        &self.startup_line
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything the server has logged to stderr so far, ANSI escapes removed.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the server process.
    pub fn send_signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits in pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our
        // own child, which has not been reaped yet.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal}) failed");
    }

    /// Whether the server still runs, or how it ended: for failure messages.
    pub fn describe_state(&mut self) -> String {
        match self.process.exit_status() {
            Some(status) => format!("server exited, {status}"),
            None => "server still running".to_owned(),
        }
    }

    /// Waits up to `limit` for the server to exit and returns its status.
    pub async fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        self.process.wait(limit).await.unwrap_or_else(|| {
            panic!("ringecho still running {limit:?} after it was asked to stop")
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("---- ringecho log ----\n{}", self.log().join("\n"));
        }
    }
}

/// Runs the binary with `args` to completion (at most [`NETWORK_TIMEOUT`])
/// and returns its exit status and output. For command-line tests that expect
/// the process to exit by itself.
pub fn run_to_exit(args: &[&str]) -> Output {
    let mut process = KillOnDrop::spawn(binary_command().args(args).stdout(Stdio::piped()));
    let deadline = Instant::now() + NETWORK_TIMEOUT;
    let status = loop {
        if let Some(status) = process.exit_status() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "ringecho {args:?} still running after {NETWORK_TIMEOUT:?}"
        );
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: read_all(process.child().stdout.take()),
        stderr: read_all(process.child().stderr.take()),
    }
}

/// The binary under test with no stdin, a piped stderr and no colours.
fn binary_command() -> Command {
    let mut command = Command::new(BINARY);
    command
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn read_all(pipe: Option<impl Read>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut bytes).expect("read child output");
    }
    bytes
}

/// Collects stderr lines into `log` and hands the startup line to
/// `startup_line`. Dropping the sender without a line tells the waiting side
/// that the log ended before the server started.
fn spawn_log_reader(
    stderr: ChildStderr,
    log: Arc<Mutex<Vec<String>>>,
    startup_line: oneshot::Sender<String>,
) {
    thread::spawn(move || {
        let mut startup_line = Some(startup_line);
        let mut reader = BufReader::new(stderr);
        let mut raw_line = Vec::new();
        loop {
            raw_line.clear();
            match reader.read_until(b'\n', &mut raw_line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = strip_ansi_escapes(String::from_utf8_lossy(&raw_line).trim_end());
            if line.contains(STARTUP_MARKER) {
                if let Some(sender) = startup_line.take() {
                    let _ = sender.send(line.clone());
                }
            }
            log.lock().expect("log lock").push(line);
        }
    });
}

fn parse_listening_address(startup_line: &str) -> SocketAddr {
    let (_, after_marker) = startup_line
        .split_once(STARTUP_MARKER)
        .expect("startup line contains the marker");
    let addr = after_marker
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    addr.parse()
        .unwrap_or_else(|_| panic!("no socket address in startup line {startup_line:?}"))
}

/// Removes terminal colour sequences (`ESC [ ... letter`) that a logger may
/// add even when stderr is not a terminal.
fn strip_ansi_escapes(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
