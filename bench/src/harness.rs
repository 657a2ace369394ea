//! The measurement harness shared by the comparison runner (`compare`) and
//! the receive-buffer sweep (`tune`): start an echo server pinned to one
//! CPU, drive it with `loadgen` pinned to another, and read what the server
//! spent from `/proc`.
//!
//! It does what `scripts/measure-engine.py` does, for any echo server that
//! prints `listening on http://ADDR` on stderr (ringecho's start-up line;
//! the peer servers in this crate print the same line):
//!
//! * [`RunningServer::start`] spawns the binary with its CPU affinity set
//!   before `exec` (so every thread it starts inherits it), reads the
//!   address from stderr, and afterwards reports [`RunningServer::cpu_time`]
//!   (utime + stime from `/proc/PID/stat`), [`RunningServer::rss_bytes`]
//!   (`/proc/PID/statm`) and [`RunningServer::open_connections`]
//!   (its socket file descriptors beyond those it had at start, from
//!   `/proc/PID/fd`, which works for servers without `/healthz`).
//! * [`Loadgen::run`] runs `loadgen --json` pinned to its CPU and returns
//!   loadgen's own [`Report`] type (schema version 1), not a copy of it.
//! * [`measure_closed`], [`measure_fixed_rate_cpu`], [`measure_latency`] and
//!   [`measure_idle_rss`] are the four measurements of the comparison.
//!
//! CPU per message comes from one loadgen run of warmup + measure: the
//! server's CPU time is read when loadgen's warmup ends and again when its
//! measured window ends (both timed from loadgen's start), and the server's
//! CPU rate over that stretch is divided by loadgen's echo rate over its
//! measured window. Connecting, warming up and closing stay outside.
//!
//! Every child is bounded in time: loadgen runs are killed if they overrun
//! their duration by [`LOADGEN_GRACE`], servers are stopped with SIGTERM and
//! killed after a timeout, and dropping a [`RunningServer`] kills it.
//!
//! ```no_run
//! use std::time::Duration;
//! use bench::harness::{Binaries, Build, Loadgen, RunningServer, ServerSpec, Window, measure_closed};
//! use ringecho::IoBackend;
//!
//! let bins = Binaries::locate(Build::Release)?;
//! let server = RunningServer::start(&ServerSpec::ringecho(&bins.ringecho, IoBackend::Uring, 1))?;
//! let loadgen = Loadgen::new(&bins.loadgen, 0);
//! let window = Window { warmup: Duration::from_secs(1), measure: Duration::from_secs(5) };
//! let m = measure_closed(&server, &loadgen, 200, 16 * 1024, &window)?;
//! println!("{} msg/s, {:.2} CPU-us/msg", m.report.msgs_per_sec, m.cpu_us_per_msg);
//! server.stop()?;
//! # Ok::<(), bench::harness::HarnessError>(())
//! ```

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringecho::IoBackend;

pub use loadgen::report::Report;

/// How long a server may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long [`RunningServer::stop`] waits after SIGTERM before killing.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a loadgen run may overrun warmup + duration before it is killed
/// (it also has to open its connections and close them).
pub const LOADGEN_GRACE: Duration = Duration::from_secs(60);
/// Lines of a child's stderr kept for error messages.
const STDERR_TAIL: usize = 20;

/// What can go wrong while measuring.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A binary is missing from the target directory.
    #[error(
        "{0} not found (build it: cargo build --release -p ringecho -p loadgen -p bench --bins)"
    )]
    MissingBinary(PathBuf),
    /// `cargo build` failed.
    #[error("cargo build failed: {0}")]
    Build(String),
    /// Spawning or talking to a child process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server exited or went quiet before printing its address.
    #[error(
        "{binary} did not print `listening on http://ADDR` within {timeout:?}; stderr:\n{stderr}"
    )]
    NoAddress {
        /// The server binary.
        binary: PathBuf,
        /// How long we waited.
        timeout: Duration,
        /// The last lines it printed.
        stderr: String,
    },
    /// A `/proc` file could not be read or parsed.
    #[error("reading /proc for pid {pid}: {detail}")]
    Proc {
        /// The process.
        pid: u32,
        /// What was wrong.
        detail: String,
    },
    /// loadgen failed without writing its JSON report.
    #[error("loadgen {args:?} failed ({status}); stderr:\n{stderr}")]
    Loadgen {
        /// The arguments it ran with.
        args: Vec<String>,
        /// How it ended.
        status: String,
        /// The last lines it printed.
        stderr: String,
    },
    /// loadgen's JSON report could not be parsed.
    #[error("loadgen report: {0}")]
    Report(#[from] serde_json::Error),
}

/// Harness result.
pub type Result<T> = std::result::Result<T, HarnessError>;

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

// ---------------------------------------------------------------- binaries

/// Which cargo profile the binaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// `target/release`: what every measurement must use.
    Release,
    /// `target/debug`: enough for end-to-end checks (`compare --quick` in tests).
    Debug,
}

impl Build {
    fn dir_name(self) -> &'static str {
        match self {
            Build::Release => "release",
            Build::Debug => "debug",
        }
    }
}

/// Paths of the four binaries a comparison needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// The engine (`engine/`, bin `ringecho`).
    pub ringecho: PathBuf,
    /// The load generator (`loadgen/`, bin `loadgen`).
    pub loadgen: PathBuf,
    /// The fastwebsockets-on-tokio peer (`bench`, bin `fws_echo`).
    pub fws_echo: PathBuf,
    /// The tokio-tungstenite peer (`bench`, bin `tungstenite_echo`).
    pub tungstenite_echo: PathBuf,
}

/// The workspace root (the directory holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The cargo target directory: `$CARGO_TARGET_DIR` or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

impl Binaries {
    /// The binaries in one directory (e.g. `target/release`), checked to exist.
    pub fn in_dir(dir: &Path) -> Result<Binaries> {
        let find = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(HarnessError::MissingBinary(path))
            }
        };
        Ok(Binaries {
            ringecho: find("ringecho")?,
            loadgen: find("loadgen")?,
            fws_echo: find("fws_echo")?,
            tungstenite_echo: find("tungstenite_echo")?,
        })
    }

    /// Builds all four with `cargo build` (a no-op when up to date) and
    /// returns their paths in the profile's target directory.
    pub fn locate(build: Build) -> Result<Binaries> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root()).args([
            "build", "--quiet", "-p", "ringecho", "-p", "loadgen", "-p", "bench", "--bins",
        ]);
        if build == Build::Release {
            cmd.arg("--release");
        }
        let out = cmd.output().map_err(io_err("running cargo build"))?;
        if !out.status.success() {
            return Err(HarnessError::Build(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
        Binaries::in_dir(&target_dir().join(build.dir_name()))
    }
}

// ---------------------------------------------------------------- pinning

/// A command whose process (and every thread it starts) runs only on `cpu`.
pub fn pinned_command(binary: &Path, cpu: usize) -> Command {
    let mut cmd = Command::new(binary);
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed. It builds a cpu_set_t on the stack
    // (CPU_ZERO/CPU_SET are plain bit operations, no allocation, no locks)
    // and makes one sched_setaffinity(2) system call; it touches no memory
    // shared with the parent and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_ZERO(&mut set);
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Keeps the last lines of a child's stderr, draining it so the pipe never
/// fills; the first `listening on http://ADDR` goes to `addr_tx`.
fn drain_stderr(
    stderr: std::process::ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
    addr_tx: Option<mpsc::Sender<SocketAddr>>,
) {
    let mut addr_tx = addr_tx;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if let Some(tx) = &addr_tx {
            if let Some(addr) = parse_listening_line(&line) {
                let _ = tx.send(addr);
                addr_tx = None;
            }
        }
        if let Ok(mut t) = tail.lock() {
            if t.len() == STDERR_TAIL {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

fn tail_text(tail: &Mutex<VecDeque<String>>) -> String {
    tail.lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// Finds the address in a `... listening on http://127.0.0.1:5000 ...` line
/// (ANSI colour codes around it are ignored).
pub fn parse_listening_line(line: &str) -> Option<SocketAddr> {
    const MARK: &str = "listening on http://";
    let start = line.find(MARK)? + MARK.len();
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '\u{1b}' || c == '/')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

// ---------------------------------------------------------------- server

/// How to start one echo server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The executable.
    pub binary: PathBuf,
    /// Its arguments; must make it listen on 127.0.0.1 (port 0 is fine)
    /// and print `listening on http://ADDR` to stderr.
    pub args: Vec<String>,
    /// The CPU it is pinned to.
    pub cpu: usize,
    /// The URL path of the echo endpoint (`/ws`).
    pub path: String,
}

impl ServerSpec {
    /// ringecho with one worker on `backend`, keep-alive pings off, on a
    /// free port.
    pub fn ringecho(binary: &Path, backend: IoBackend, cpu: usize) -> ServerSpec {
        ServerSpec {
            binary: binary.to_path_buf(),
            args: [
                "--listen",
                "127.0.0.1:0",
                "--threads",
                "1",
                "--io",
                backend.name(),
                "--keep-alive-interval",
                "0",
            ]
            .map(String::from)
            .to_vec(),
            cpu,
            path: "/ws".into(),
        }
    }

    /// A peer server of this crate (`fws_echo`, `tungstenite_echo`) on a free port.
    pub fn peer(binary: &Path, cpu: usize) -> ServerSpec {
        ServerSpec {
            binary: binary.to_path_buf(),
            args: vec!["--listen".into(), "127.0.0.1:0".into()],
            cpu,
            path: "/ws".into(),
        }
    }

    /// Appends arguments (e.g. `--receive-buffer-size 2KiB`).
    pub fn with_args<I, S>(mut self, args: I) -> ServerSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// A started, pinned server. Dropping it kills the process.
#[derive(Debug)]
pub struct RunningServer {
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
    path: String,
    binary: PathBuf,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Socket fds held when the address was announced.
    baseline_sockets: usize,
}

impl RunningServer {
    /// Spawns the server pinned to `spec.cpu` and waits (up to
    /// [`START_TIMEOUT`]) for its `listening on http://ADDR` line.
    pub fn start(spec: &ServerSpec) -> Result<RunningServer> {
        let mut cmd = pinned_command(&spec.binary, spec.cpu);
        cmd.args(&spec.args)
            .env("NO_COLOR", "1")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(io_err(format!("starting {}", spec.binary.display())))?;
        let pid = child.id();
        let stderr = child.stderr.take().ok_or_else(|| HarnessError::Proc {
            pid,
            detail: "no stderr pipe".into(),
        })?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel();
        {
            let tail = Arc::clone(&tail);
            thread::spawn(move || drain_stderr(stderr, tail, Some(tx)));
        }
        let mut server = RunningServer {
            child: Some(child),
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            path: spec.path.clone(),
            binary: spec.binary.clone(),
            stderr: tail,
            baseline_sockets: 0,
        };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                server.addr = addr;
                server.baseline_sockets = count_sockets(pid)?;
                Ok(server)
            }
            Err(_) => {
                server.kill();
                Err(HarnessError::NoAddress {
                    binary: spec.binary.clone(),
                    timeout: START_TIMEOUT,
                    stderr: tail_text(&server.stderr),
                })
            }
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The echo endpoint, e.g. `ws://127.0.0.1:40123/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{}", self.addr, self.path)
    }

    /// The last lines it wrote to stderr (for error messages).
    pub fn stderr_tail(&self) -> String {
        tail_text(&self.stderr)
    }

    /// CPU time used so far, user + system, all threads
    /// (`utime + stime` of `/proc/PID/stat`, clock-tick resolution).
    pub fn cpu_time(&self) -> Result<Duration> {
        process_cpu_time(self.pid)
    }

    /// Resident set size now (`/proc/PID/statm`, resident pages x page size).
    pub fn rss_bytes(&self) -> Result<u64> {
        process_rss_bytes(self.pid)
    }

    /// Connections the server holds open right now: its socket file
    /// descriptors (`/proc/PID/fd` entries naming `socket:[...]`) minus the
    /// ones it had when it announced its address (listeners, signal pipes).
    /// Works for any server, `/healthz` or not. (Counting ESTABLISHED rows
    /// of `/proc/PID/net/tcp` is namespace-wide and over-counts while
    /// thousands of sockets are being added during the read.)
    pub fn open_connections(&self) -> Result<usize> {
        Ok(count_sockets(self.pid)?.saturating_sub(self.baseline_sockets))
    }

    /// Asks it to stop (SIGTERM), waits up to [`STOP_TIMEOUT`], then kills it.
    /// Returns how it exited.
    pub fn stop(mut self) -> Result<ExitStatus> {
        self.stop_within(STOP_TIMEOUT)
    }

    fn stop_within(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(HarnessError::Proc {
                pid: self.pid,
                detail: "already stopped".into(),
            });
        };
        signal(self.pid, libc::SIGTERM);
        let status = wait_until(&mut child, Instant::now() + timeout)
            .map_err(io_err(format!("waiting for {}", self.binary.display())))?;
        match status {
            Some(status) => Ok(status),
            None => {
                let _ = child.kill();
                child
                    .wait()
                    .map_err(io_err(format!("reaping {}", self.binary.display())))
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends a signal to a process this harness started.
fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // `pid` is a child we spawned and have not reaped yet (the caller holds
    // its `Child`), so the id cannot have been reused by another process.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Polls `child` until it exits or `deadline` passes (`None`).
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The number of socket file descriptors a process holds.
pub fn count_sockets(pid: u32) -> Result<usize> {
    let dir = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&dir).map_err(|e| HarnessError::Proc {
        pid,
        detail: format!("{dir}: {e}"),
    })?;
    Ok(entries
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:["))
        })
        .count())
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// utime + stime of a process (`/proc/PID/stat`).
pub fn process_cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| HarnessError::Proc {
        pid,
        detail: format!("{path}: {e}"),
    })?;
    let ticks = parse_stat_cpu_ticks(&text).ok_or_else(|| HarnessError::Proc {
        pid,
        detail: format!("cannot parse {path}"),
    })?;
    let hz = clock_ticks_per_second();
    Ok(Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz))
}

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name, field 3 (state) is index 0: utime is field 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size of a process (`/proc/PID/statm`).
pub fn process_rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/statm");
    let text = std::fs::read_to_string(&path).map_err(|e| HarnessError::Proc {
        pid,
        detail: format!("{path}: {e}"),
    })?;
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| HarnessError::Proc {
            pid,
            detail: format!("cannot parse {path}"),
        })?;
    Ok(pages * page_size())
}

// ---------------------------------------------------------------- loadgen

/// The load generator binary and the CPU it is pinned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loadgen {
    /// The `loadgen` executable.
    pub binary: PathBuf,
    /// The CPU it runs on (one thread).
    pub cpu: usize,
}

impl Loadgen {
    /// loadgen at `binary`, pinned to `cpu`.
    pub fn new(binary: &Path, cpu: usize) -> Loadgen {
        Loadgen {
            binary: binary.to_path_buf(),
            cpu,
        }
    }

    /// Runs `loadgen URL ARGS --duration D --warmup W --json FILE --quiet`
    /// to completion and returns its report. A run that ends with echo or
    /// connection errors still returns its report (check `report.exit`);
    /// only a run that writes no report is an error.
    pub fn run(
        &self,
        url: &str,
        args: &[String],
        duration: Duration,
        warmup: Duration,
    ) -> Result<Report> {
        self.spawn(url, args, duration, warmup)?.wait()
    }

    /// Starts the same run as [`Loadgen::run`] in the background.
    pub fn spawn(
        &self,
        url: &str,
        args: &[String],
        duration: Duration,
        warmup: Duration,
    ) -> Result<LoadgenRun> {
        let json = tempfile::Builder::new()
            .prefix("bench-loadgen-")
            .suffix(".json")
            .tempfile()
            .map_err(io_err("creating a temporary file"))?;
        let mut full: Vec<String> = vec![url.to_string()];
        full.extend(args.iter().cloned());
        full.extend([
            "--duration".into(),
            format!("{}", duration.as_secs_f64()),
            "--warmup".into(),
            format!("{}", warmup.as_secs_f64()),
            "--json".into(),
            json.path().display().to_string(),
            "--quiet".into(),
        ]);
        let started = Instant::now();
        let mut child = pinned_command(&self.binary, self.cpu)
            .args(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err(format!("starting {}", self.binary.display())))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let drain = child.stderr.take().map(|stderr| {
            let tail = Arc::clone(&tail);
            thread::spawn(move || drain_stderr(stderr, tail, None))
        });
        Ok(LoadgenRun {
            child: Some(child),
            started,
            deadline: started + duration + warmup + LOADGEN_GRACE,
            json,
            args: full,
            tail,
            drain,
        })
    }
}

/// A loadgen run in progress. Dropping it kills loadgen.
#[derive(Debug)]
pub struct LoadgenRun {
    child: Option<Child>,
    started: Instant,
    deadline: Instant,
    json: tempfile::NamedTempFile,
    args: Vec<String>,
    tail: Arc<Mutex<VecDeque<String>>>,
    drain: Option<thread::JoinHandle<()>>,
}

impl LoadgenRun {
    /// When loadgen was started (its clock starts a moment later).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// loadgen's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for the end of the run (killing loadgen if it overruns by
    /// [`LOADGEN_GRACE`]) and returns its report.
    pub fn wait(mut self) -> Result<Report> {
        let Some(mut child) = self.child.take() else {
            return Err(HarnessError::Loadgen {
                args: self.args.clone(),
                status: "already waited for".into(),
                stderr: String::new(),
            });
        };
        let status =
            wait_until(&mut child, self.deadline).map_err(io_err("waiting for loadgen"))?;
        let status = match status {
            Some(s) => s.to_string(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                "killed: overran its duration".to_string()
            }
        };
        if let Some(handle) = self.drain.take() {
            let _ = handle.join();
        }
        let text = std::fs::read_to_string(self.json.path()).unwrap_or_default();
        if text.trim().is_empty() {
            return Err(HarnessError::Loadgen {
                args: self.args.clone(),
                status,
                stderr: tail_text(&self.tail),
            });
        }
        Ok(serde_json::from_str(&text)?)
    }
}

impl Drop for LoadgenRun {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------- measurements

/// Warmup and measured durations of one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Load before measuring (loadgen's `--warmup`: connections open and
    /// traffic runs, but nothing is counted).
    pub warmup: Duration,
    /// The measured window (loadgen's `--duration`).
    pub measure: Duration,
}

/// One measured window: loadgen's report and the server's CPU over it.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// loadgen's report (its measured window excludes the warmup).
    pub report: Report,
    /// Server CPU time (user + system) between the end of the warmup and
    /// the end of the measured window.
    pub server_cpu: Duration,
    /// Wall time over which `server_cpu` was read.
    pub server_wall: Duration,
    /// loadgen's own CPU time (user + system, every thread) over the same
    /// stretch: above [`crate::held_core::CLIENT_BOUND_PERCENT`] of
    /// `server_wall`, the client was the bottleneck.
    pub client_cpu: Duration,
    /// Server CPU microseconds per echo: the server's CPU rate over
    /// `server_wall` divided by loadgen's echo rate (`NaN` without echoes).
    pub cpu_us_per_msg: f64,
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

/// Runs loadgen with `args` for `window.warmup + window.measure` and reads
/// the server's CPU time when the warmup ends and when the measured window
/// ends (timed from loadgen's start; loadgen's own clock starts a few
/// milliseconds later, which the rate-based division makes harmless).
pub fn measure_window(
    server: &RunningServer,
    loadgen: &Loadgen,
    args: &[String],
    window: &Window,
) -> Result<Measurement> {
    let run = loadgen.spawn(&server.ws_url(), args, window.measure, window.warmup)?;
    let start = run.started();
    let client_time = || run.pid().and_then(|pid| process_cpu_time(pid).ok());
    sleep_until(start + window.warmup);
    let (cpu0, client0, wall0) = (server.cpu_time()?, client_time(), Instant::now());
    sleep_until(start + window.warmup + window.measure);
    let (cpu1, client1, wall1) = (server.cpu_time()?, client_time(), Instant::now());
    let report = run.wait()?;
    let server_cpu = cpu1.saturating_sub(cpu0);
    let client_cpu = match (client0, client1) {
        (Some(c0), Some(c1)) => c1.saturating_sub(c0),
        _ => Duration::ZERO,
    };
    let server_wall = wall1 - wall0;
    let cpu_us_per_msg = if report.messages > 0 && report.msgs_per_sec > 0.0 {
        server_cpu.as_secs_f64() * 1e6 / server_wall.as_secs_f64().max(1e-9) / report.msgs_per_sec
    } else {
        f64::NAN
    };
    Ok(Measurement {
        report,
        server_cpu,
        server_wall,
        client_cpu,
        cpu_us_per_msg,
    })
}

/// Closed loop (one message in flight per connection, as uWebSockets'
/// `load_test`): `connections` x `size`-byte binary messages.
pub fn measure_closed(
    server: &RunningServer,
    loadgen: &Loadgen,
    connections: usize,
    size: usize,
    window: &Window,
) -> Result<Measurement> {
    let args = strings(&[
        "--mode",
        "closed",
        "-c",
        &connections.to_string(),
        "-s",
        &size.to_string(),
    ]);
    measure_window(server, loadgen, &args, window)
}

/// Open loop at a fixed offered rate (`connections` x `rate_hz` messages
/// of `size` bytes per second), so both cores stay unsaturated and
/// `cpu_us_per_msg` compares server efficiency rather than who saturates.
pub fn measure_fixed_rate_cpu(
    server: &RunningServer,
    loadgen: &Loadgen,
    connections: usize,
    rate_hz: f64,
    size: usize,
    window: &Window,
) -> Result<Measurement> {
    let args = strings(&[
        "--mode",
        "open",
        "-c",
        &connections.to_string(),
        "--rate",
        &rate_hz.to_string(),
        "-s",
        &size.to_string(),
    ]);
    measure_window(server, loadgen, &args, window)
}

/// Latency under a loadgen preset (e.g. `shooter-128hz`): one run with
/// loadgen's own warmup, whose samples stay out of the histograms.
pub fn measure_latency(
    server: &RunningServer,
    loadgen: &Loadgen,
    preset: &str,
    window: &Window,
) -> Result<Report> {
    measure_preset(server, loadgen, preset, &[], window).map(|m| m.report)
}

/// A loadgen preset with `extra` options on top (e.g. `-c 20`), measured
/// like [`measure_window`]: the report plus the server's CPU per echo.
pub fn measure_preset(
    server: &RunningServer,
    loadgen: &Loadgen,
    preset: &str,
    extra: &[String],
    window: &Window,
) -> Result<Measurement> {
    let mut args = strings(&["--preset", preset]);
    args.extend(extra.iter().cloned());
    measure_window(server, loadgen, &args, window)
}

/// Server memory per idle connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleRss {
    /// (RSS with `open` connections - RSS before any) / `open`.
    pub bytes_per_connection: f64,
    /// Connections open when the RSS was sampled (the most seen).
    pub open: usize,
    /// RSS before the first connection.
    pub rss_before: u64,
    /// RSS with `open` connections.
    pub rss_after: u64,
}

/// Opens `connections` WebSockets that never send (loadgen open mode at
/// 0.001 Hz, `connect_rate` per second) and samples the server's RSS each
/// 250 ms while they open; returns the RSS delta at the largest open count
/// divided by that count. Stops loadgen once all are open and the RSS has
/// settled for a second (or after `connections / connect_rate + 15 s`).
pub fn measure_idle_rss(
    server: &RunningServer,
    loadgen: &Loadgen,
    connections: usize,
    connect_rate: f64,
) -> Result<IdleRss> {
    thread::sleep(Duration::from_millis(300));
    let rss_before = server.rss_bytes()?;
    let budget = Duration::from_secs_f64(connections as f64 / connect_rate.max(1.0))
        + Duration::from_secs(15);
    let args = strings(&[
        &server.ws_url(),
        "--mode",
        "open",
        "--rate",
        "0.001",
        "-c",
        &connections.to_string(),
        "--connect-rate",
        &connect_rate.to_string(),
        "--duration",
        &budget.as_secs_f64().to_string(),
        "--warmup",
        "0",
        "--quiet",
    ]);
    let mut child = pinned_command(&loadgen.binary, loadgen.cpu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io_err(format!("starting {}", loadgen.binary.display())))?;
    let deadline = Instant::now() + budget + Duration::from_secs(5);
    let (mut open, mut rss_after) = (0, rss_before);
    let mut all_open_since: Option<Instant> = None;
    let sampled = (|| -> Result<()> {
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(250));
            let now_open = server.open_connections()?;
            if now_open >= open && now_open > 0 {
                open = now_open;
                rss_after = server.rss_bytes()?;
            }
            if now_open >= connections {
                let since = *all_open_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_secs(1) {
                    break;
                }
            }
            if child
                .try_wait()
                .map_err(io_err("polling loadgen"))?
                .is_some()
            {
                break;
            }
        }
        Ok(())
    })();
    let _ = child.kill();
    let _ = child.wait();
    sampled?;
    Ok(IdleRss {
        bytes_per_connection: if open > 0 {
            rss_after.saturating_sub(rss_before) as f64 / open as f64
        } else {
            f64::NAN
        },
        open,
        rss_before,
        rss_after,
    })
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_listening_line_of_every_server() {
        let ringecho =
            "\u{1b}[2m2026-11-21T18:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m ringecho::server: \
                        listening on http://127.0.0.1:5000 io=uring workers=1 pinned=true";
        assert_eq!(
            parse_listening_line(ringecho),
            Some("127.0.0.1:5000".parse().unwrap())
        );
        assert_eq!(
            parse_listening_line("fws_echo listening on http://127.0.0.1:41234"),
            Some("127.0.0.1:41234".parse().unwrap())
        );
        assert_eq!(
            parse_listening_line("listening on http://[::1]:8080/"),
            Some("[::1]:8080".parse().unwrap())
        );
        assert_eq!(parse_listening_line("starting up"), None);
        assert_eq!(parse_listening_line("listening on http://nonsense"), None);
    }

    #[test]
    fn reads_cpu_ticks_past_a_name_with_spaces() {
        let stat =
            "1234 (my server) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1 1 1";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn counts_the_sockets_a_process_holds() {
        let pid = std::process::id();
        let before = count_sockets(pid).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        // Tests run in parallel threads: others may open sockets too.
        assert!(
            count_sockets(pid).unwrap() >= before + 3,
            "listener + 2 ends"
        );
        drop((listener, client, server, file));
    }

    #[test]
    fn measures_this_process() {
        let pid = std::process::id();
        // Burn a little CPU so the counter is visibly non-zero.
        let mut x = 0u64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(process_cpu_time(pid).unwrap() > Duration::ZERO);
        assert!(process_rss_bytes(pid).unwrap() > 0);
    }
}
