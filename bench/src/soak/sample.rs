//! What the soak runner reads about the engine while the soak runs: RSS,
//! open file descriptors, CPU time (from `/proc`), the connections gauge
//! (from `/metrics`) and the loopback `TIME_WAIT` sockets on either side
//! of the engine's port (from `/proc/net/tcp`).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::harness::{process_cpu_time, process_rss_bytes, HarnessError, Result};

/// One sample of the engine (and loadgen's CPU), `t_s` seconds after the
/// soak's loadgen was started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since loadgen started.
    pub t_s: f64,
    /// Engine resident set size, bytes.
    pub rss_bytes: u64,
    /// Engine open file descriptors (`/proc/PID/fd` entries).
    pub fds: usize,
    /// Engine WebSockets open (`ringecho_connections`, all workers), when
    /// `/metrics` answered.
    pub connections: Option<u64>,
    /// Engine CPU use since the previous sample, percent of one core.
    pub engine_cpu_pct: Option<f64>,
    /// loadgen CPU use since the previous sample, percent of one core.
    pub loadgen_cpu_pct: Option<f64>,
    /// Sockets in `TIME_WAIT` on the engine's side of its port (read every
    /// few samples; empty in between).
    pub time_wait_server: Option<usize>,
    /// Sockets in `TIME_WAIT` on the clients' side of connections to the
    /// engine's port.
    pub time_wait_client: Option<usize>,
    /// The machine's 1-minute load average (others share the machine).
    pub loadavg: Option<f64>,
    /// Busy share of the engine's CPU, any process, percent.
    pub engine_core_busy_pct: Option<f64>,
    /// Busy share of loadgen's CPU, any process, percent.
    pub loadgen_core_busy_pct: Option<f64>,
    /// iowait share over all CPUs, percent.
    pub iowait_pct: Option<f64>,
    /// Steal share over all CPUs, percent.
    pub steal_pct: Option<f64>,
    /// Engine major page faults per second.
    pub engine_major_faults: Option<f64>,
    /// loadgen major page faults per second.
    pub loadgen_major_faults: Option<f64>,
    /// Engine threads in uninterruptible sleep (`D`) at the sample.
    pub engine_blocked_threads: Option<usize>,
    /// loadgen threads in uninterruptible sleep at the sample.
    pub loadgen_blocked_threads: Option<usize>,
}

impl Sample {
    /// A sample of the engine's own figures at `t_s`; the CPU, `TIME_WAIT`
    /// and contention fields are left empty for the runner to fill in.
    pub fn new(t_s: f64, rss_bytes: u64, fds: usize, connections: Option<u64>) -> Sample {
        Sample {
            t_s,
            rss_bytes,
            fds,
            connections,
            engine_cpu_pct: None,
            loadgen_cpu_pct: None,
            time_wait_server: None,
            time_wait_client: None,
            loadavg: crate::machine::loadavg().parse().ok(),
            engine_core_busy_pct: None,
            loadgen_core_busy_pct: None,
            iowait_pct: None,
            steal_pct: None,
            engine_major_faults: None,
            loadgen_major_faults: None,
            engine_blocked_threads: None,
            loadgen_blocked_threads: None,
        }
    }
}

/// The number of open file descriptors of a process.
pub fn count_fds(pid: u32) -> Result<usize> {
    let dir = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&dir).map_err(|e| HarnessError::Proc {
        pid,
        detail: format!("{dir}: {e}"),
    })?;
    Ok(entries.flatten().count())
}

/// The soft open-files limit of a process (`Max open files` in `/proc/PID/limits`).
pub fn open_files_limit(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads the engine's `/metrics` and sums `ringecho_connections` over workers.
pub fn scrape_connections(addr: SocketAddr) -> std::io::Result<u64> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    parse_connections_gauge(&body).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no ringecho_connections in /metrics",
        )
    })
}

/// Sums the `ringecho_connections{...} N` lines of an OpenMetrics text.
pub fn parse_connections_gauge(text: &str) -> Option<u64> {
    let mut found = false;
    let mut sum = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("ringecho_connections") else {
            continue;
        };
        // Not ringecho_connections_opened_total.
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        sum += value as u64;
        found = true;
    }
    found.then_some(sum)
}

/// `TIME_WAIT` sockets on loopback involving `port`: (server side, client
/// side). The server side holds `port` locally; the client side has it as
/// the remote port.
pub fn time_wait_counts(port: u16) -> (usize, usize) {
    let mut server = 0;
    let mut client = 0;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let (s, c) = count_time_wait(&text, port);
        server += s;
        client += c;
    }
    (server, client)
}

/// The counting of [`time_wait_counts`] over the text of `/proc/net/tcp`.
pub fn count_time_wait(text: &str, port: u16) -> (usize, usize) {
    const TIME_WAIT: &str = "06";
    let port_of = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let mut server = 0;
    let mut client = 0;
    for line in text.lines().skip(1) {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(local), Some(remote), Some(state)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if state != TIME_WAIT {
            continue;
        }
        if port_of(local) == Some(port) {
            server += 1;
        } else if port_of(remote) == Some(port) {
            client += 1;
        }
    }
    (server, client)
}

/// Reads CPU time deltas of a process between samples.
#[derive(Debug)]
pub struct CpuMeter {
    pid: u32,
    last: Option<(std::time::Instant, Duration)>,
}

impl CpuMeter {
    /// A meter for `pid`; the first reading only sets the start.
    pub fn new(pid: u32) -> CpuMeter {
        CpuMeter { pid, last: None }
    }

    /// CPU use since the previous reading, percent of one core (`None` on
    /// the first reading or when the process is gone).
    pub fn read(&mut self) -> Option<f64> {
        let now = std::time::Instant::now();
        let cpu = process_cpu_time(self.pid).ok()?;
        let pct = self.last.map(|(t, c)| {
            let wall = (now - t).as_secs_f64().max(1e-9);
            cpu.saturating_sub(c).as_secs_f64() / wall * 100.0
        });
        self.last = Some((now, cpu));
        pct
    }
}

/// Samples the engine `pid` listening on `addr`.
pub fn sample_engine(pid: u32, addr: SocketAddr, t_s: f64, with_tcp: bool) -> Result<Sample> {
    let rss_bytes = process_rss_bytes(pid)?;
    let fds = count_fds(pid)?;
    let connections = scrape_connections(addr).ok();
    let (time_wait_server, time_wait_client) = if with_tcp {
        let (s, c) = time_wait_counts(addr.port());
        (Some(s), Some(c))
    } else {
        (None, None)
    };
    Ok(Sample {
        time_wait_server,
        time_wait_client,
        ..Sample::new(t_s, rss_bytes, fds, connections)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_gauge_over_workers_and_skips_the_counter() {
        let text = "# TYPE ringecho_connections gauge\n\
                    ringecho_connections{worker=\"0\"} 7\n\
                    ringecho_connections{worker=\"1\"} 5\n\
                    # TYPE ringecho_connections_opened counter\n\
                    ringecho_connections_opened_total{worker=\"0\"} 99\n# EOF\n";
        assert_eq!(parse_connections_gauge(text), Some(12));
        assert_eq!(parse_connections_gauge("# EOF\n"), None);
    }

    #[test]
    fn tells_server_and_client_time_wait_apart() {
        // Port 5000 = 0x1388.
        let text = "  sl  local_address rem_address   st tx_queue rx_queue\n\
            0: 0100007F:1388 0500007F:9C40 06 00000000:00000000\n\
            1: 0500007F:9C41 0100007F:1388 06 00000000:00000000\n\
            2: 0500007F:9C42 0100007F:1388 06 00000000:00000000\n\
            3: 0100007F:1388 0500007F:9C43 01 00000000:00000000\n\
            4: 0100007F:1F90 0500007F:9C44 06 00000000:00000000\n";
        assert_eq!(count_time_wait(text, 5000), (1, 2));
    }

    /// A `sleep` child with `extra` more descriptors open (7, 8, 9, ...).
    fn sleeper(extra: usize) -> std::process::Child {
        use std::process::{Command, Stdio};
        let redirects: String = (0..extra)
            .map(|i| format!(" {}</dev/null", 7 + i))
            .collect();
        Command::new("sh")
            .arg("-c")
            .arg(format!("exec{redirects} sleep 30"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Waits until the child has exec'd `sleep` (its command name says so).
    fn wait_for_sleep(pid: u32) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("child {pid} never became sleep");
    }

    #[test]
    fn counts_a_child_process_fds_and_cpu() {
        // Both children inherit the same descriptors from the test runner
        // (cargo's jobserver, for one); the second has three more.
        let mut plain = sleeper(0);
        let mut more = sleeper(3);
        wait_for_sleep(plain.id());
        wait_for_sleep(more.id());
        let base = count_fds(plain.id()).unwrap();
        assert!(base >= 3, "stdin, stdout, stderr at least");
        assert_eq!(count_fds(more.id()).unwrap(), base + 3);
        assert!(open_files_limit(plain.id()).unwrap() >= 64);
        let mut meter = CpuMeter::new(plain.id());
        assert_eq!(meter.read(), None, "the first reading only sets the start");
        assert!(meter.read().unwrap() < 50.0, "sleep uses no CPU");
        for child in [&mut plain, &mut more] {
            let pid = child.id();
            child.kill().unwrap();
            child.wait().unwrap();
            assert!(count_fds(pid).is_err(), "gone");
        }
    }
}
