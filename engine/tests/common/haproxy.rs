//! A real HAProxy (Debian's `haproxy`, installed by `./scripts/test-all.sh`)
//! running exactly the committed `deploy/haproxy/ringecho.cfg`. The file
//! reads its addresses, certificate and admin socket from environment
//! variables (`"${RINGECHO_...-default}"`), which the tests set. HAProxy
//! runs in the foreground (`-db`), logs to a file, and is killed on drop.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::nginx::deploy_dir;
use super::process::KillOnDrop;

/// The committed configuration.
pub fn config_path() -> PathBuf {
    deploy_dir().join("haproxy/ringecho.cfg")
}

/// The HAProxy binary: `$RINGECHO_HAPROXY`, `haproxy` on `PATH`, or
/// Debian's `/usr/sbin/haproxy`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGECHO_HAPROXY") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "haproxy not found: set RINGECHO_HAPROXY or install Debian's `haproxy` \
                 (./scripts/test-all.sh installs it)"
            )
        })
}

/// The values the configuration reads from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `RINGECHO_WSS_BIND`: where players connect with TLS.
    pub wss_bind: SocketAddr,
    /// `RINGECHO_WS_BIND`: plain ws:// for the private network.
    pub ws_bind: SocketAddr,
    /// `RINGECHO_CERT`: certificate chain and key, PEM.
    pub cert: PathBuf,
    /// `RINGECHO_ENGINE_A`.
    pub engine_a: SocketAddr,
    /// `RINGECHO_ENGINE_B`.
    pub engine_b: SocketAddr,
    /// `RINGECHO_HAPROXY_SOCKET`: the runtime API.
    pub admin_socket: PathBuf,
}

impl Settings {
    /// The environment variables, as the configuration names them.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RINGECHO_WSS_BIND", self.wss_bind.to_string()),
            ("RINGECHO_WS_BIND", self.ws_bind.to_string()),
            ("RINGECHO_CERT", self.cert.display().to_string()),
            ("RINGECHO_ENGINE_A", self.engine_a.to_string()),
            ("RINGECHO_ENGINE_B", self.engine_b.to_string()),
            (
                "RINGECHO_HAPROXY_SOCKET",
                self.admin_socket.display().to_string(),
            ),
        ]
    }

    /// `haproxy ARGS -f deploy/haproxy/ringecho.cfg` with these settings,
    /// run through `wrapper` (e.g. `ip netns exec NAME`) when it is not empty.
    pub fn command(&self, wrapper: &[&str], args: &[&str]) -> Command {
        let haproxy = binary();
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(&haproxy);
                command
            }
            None => Command::new(&haproxy),
        };
        command
            .args(args)
            .arg("-f")
            .arg(config_path())
            .envs(self.env())
            .stdin(Stdio::null());
        command
    }

    /// `haproxy -c`: checks the configuration with these settings.
    pub fn check(&self) -> Output {
        self.command(&[], &["-c"]).output().expect("run haproxy -c")
    }
}

/// A running HAProxy.
pub struct Haproxy {
    process: KillOnDrop,
    settings: Settings,
    log: PathBuf,
}

impl Haproxy {
    /// Starts HAProxy in the foreground with `settings`, through `wrapper`
    /// (empty, or e.g. `ip netns exec NAME`), logging to `log`; returns once
    /// its runtime API answers.
    pub fn start(settings: Settings, wrapper: &[&str], log: &Path) -> Haproxy {
        let log_file = std::fs::File::create(log).expect("create the HAProxy log");
        let process = KillOnDrop::spawn(
            settings
                .command(wrapper, &["-db"])
                .stdout(log_file.try_clone().expect("log file handle"))
                .stderr(log_file),
        );
        let mut haproxy = Haproxy {
            process,
            settings,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + super::NETWORK_TIMEOUT;
        while haproxy.try_admin("show info").is_err() {
            if let Some(status) = haproxy.process.exit_status() {
                panic!("haproxy exited ({status}); log:\n{}", haproxy.log());
            }
            assert!(
                Instant::now() < deadline,
                "haproxy's runtime API does not answer; log:\n{}",
                haproxy.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        haproxy
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Everything HAProxy logged so far (one line per finished request or
    /// WebSocket, and every server state change).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn try_admin(&self, command: &str) -> std::io::Result<String> {
        let mut socket = UnixStream::connect(&self.settings.admin_socket)?;
        socket.set_read_timeout(Some(super::NETWORK_TIMEOUT))?;
        socket.write_all(format!("{command}\n").as_bytes())?;
        let mut answer = String::new();
        socket.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// Sends one command to the runtime API and returns the answer.
    pub fn admin(&self, command: &str) -> String {
        self.try_admin(command)
            .unwrap_or_else(|e| panic!("haproxy runtime API, {command:?}: {e}"))
    }

    /// The operational state of `server` in `backend` as the runtime API
    /// reports it: 0 stopped (down), 1 starting, 2 running, 3 stopping.
    pub fn server_state(&self, backend: &str, server: &str) -> u8 {
        let answer = self.admin(&format!("show servers state {backend}"));
        // Columns: be_id be_name srv_id srv_name srv_addr srv_op_state ...
        answer
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.len() > 5 && cols[1] == backend && cols[3] == server)
            .and_then(|cols| cols[5].parse().ok())
            .unwrap_or_else(|| panic!("no state for {backend}/{server} in:\n{answer}"))
    }

    /// Waits (at most `limit`) until `server` of `backend` has state `state`.
    pub fn wait_for_state(&self, backend: &str, server: &str, state: u8, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.server_state(backend, server) != state {
            assert!(
                Instant::now() < deadline,
                "{backend}/{server} not in state {state} after {limit:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A loopback port that was free a moment ago (HAProxy binds it itself).
pub fn free_loopback_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
}
