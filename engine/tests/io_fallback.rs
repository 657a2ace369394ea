//! Where io_uring is forbidden, `--io auto` falls back to epoll with one
//! clear log line and still serves, while `--io uring` refuses to start.
//!
//! io_uring is forbidden the way containers do it: a seccomp filter (Docker's
//! default profile denies `io_uring_setup`) installed in the child before it
//! execs the real binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Installs a seccomp filter that makes `io_uring_setup` fail with EPERM.
fn deny_io_uring_setup() -> std::io::Result<()> {
    let statement = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let mut program = [
        // Load the syscall number (offset 0 of struct seccomp_data).
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0, 0),
        statement(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            libc::SYS_io_uring_setup as u32,
            0,
            1,
        ),
        statement(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            0,
            0,
        ),
        statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW, 0, 0),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls in the forked child before exec; `fprog`
    // points at `program`, which outlives both calls.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &fprog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Starts the engine with io_uring forbidden; kills it on drop.
struct Engine(Child);

impl Engine {
    fn start(io: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringecho"));
        command
            .args(["--listen", "127.0.0.1:0", "--threads", "1", "--io", io])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: the closure only calls async-signal-safe prctl(2).
        unsafe { command.pre_exec(deny_io_uring_setup) };
        Engine(command.spawn().expect("start ringecho"))
    }

    /// Reads stderr until `listening on http://ADDR` (returning the log so
    /// far and ADDR) or until the process exits (returning no address).
    fn startup_log(&mut self) -> (String, Option<String>) {
        let stderr = self.0.stderr.take().expect("stderr is piped");
        let mut log = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("read stderr");
            log.push_str(&line);
            log.push('\n');
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                return (log, Some(addr));
            }
        }
        (log, None)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn auto_falls_back_to_epoll_with_one_log_line_and_serves() {
    let mut engine = Engine::start("auto");
    let (log, addr) = engine.startup_log();
    let addr = addr.unwrap_or_else(|| panic!("engine did not start:\n{log}"));
    let fallbacks = log
        .lines()
        .filter(|l| l.contains("falling back to epoll"))
        .count();
    assert_eq!(fallbacks, 1, "expected exactly one fallback line:\n{log}");
    assert!(
        log.contains("io=epoll"),
        "start-up line names the backend:\n{log}"
    );

    let mut stream = TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read /healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""io":"epoll""#), "{response}");
}

#[test]
fn uring_refuses_to_start_without_io_uring() {
    let mut engine = Engine::start("uring");
    let (log, addr) = engine.startup_log();
    assert_eq!(addr, None, "must not serve without io_uring:\n{log}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = engine.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "engine did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "exit status must be non-zero");
    assert!(
        log.contains("io_uring is not available"),
        "clear reason:\n{log}"
    );
    assert!(
        log.contains("--io epoll"),
        "says what to do instead:\n{log}"
    );
}
