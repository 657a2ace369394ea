//! A real nginx (Debian's `nginx`, installed by `./scripts/test-all.sh`)
//! run by the test itself on loopback: single process, in the foreground,
//! with every path in a temporary prefix directory, killed on drop.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::process::KillOnDrop;

/// The repository's `deploy/` folder.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the engine crate sits in the workspace")
        .join("deploy")
}

/// The committed location snippet, included verbatim by [`Nginx::start`].
pub fn locations_snippet() -> PathBuf {
    deploy_dir().join("nginx/ringecho-locations.conf")
}

/// The nginx binary: `$RINGECHO_NGINX`, `nginx` on `PATH`, or Debian's
/// `/usr/sbin/nginx`.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGECHO_NGINX") {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx not found: set RINGECHO_NGINX or install Debian's `nginx` \
                 (./scripts/test-all.sh installs it)"
            )
        })
}

/// The top of a self-contained nginx.conf: no daemon, no master process,
/// pid, logs and temp files under `prefix`. `http` is the body of the
/// `http { }` block.
pub fn config(prefix: &Path, http: &str) -> String {
    let p = prefix.display();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {p}/nginx.pid;
error_log {p}/error.log info;
events {{ worker_connections 128; }}
http {{
    access_log {p}/access.log;
    client_body_temp_path {p}/client_body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
{http}
}}
"
    )
}

/// Runs `nginx -t` on `config_text` (written into `prefix`).
pub fn check_config(prefix: &Path, config_text: &str) -> Output {
    let file = prefix.join("nginx.conf");
    std::fs::write(&file, config_text).expect("write nginx.conf");
    Command::new(binary())
        .arg("-t")
        .args(prefix_args(prefix, &file))
        .stdin(Stdio::null())
        .output()
        .expect("run nginx -t")
}

fn prefix_args(prefix: &Path, file: &Path) -> Vec<String> {
    vec![
        "-p".into(),
        prefix.display().to_string(),
        "-e".into(),
        prefix.join("error.log").display().to_string(),
        "-c".into(),
        file.display().to_string(),
    ]
}

/// A running nginx reverse proxy in front of one ringecho.
pub struct Nginx {
    process: KillOnDrop,
    addr: SocketAddr,
    prefix: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx on a free loopback port, proxying to `upstream` with
    /// `proxy_read_timeout` (an nginx time such as `1s`) and the committed
    /// location snippet; returns once it accepts connections.
    pub async fn start(upstream: SocketAddr, proxy_read_timeout: &str) -> Nginx {
        let prefix = tempfile::tempdir().expect("nginx prefix dir");
        let port = free_port();
        let http = format!(
            "    upstream ringecho {{ server {upstream}; }}
    server {{
        listen 127.0.0.1:{port};
        proxy_read_timeout {proxy_read_timeout};
        include {snippet};
    }}",
            snippet = locations_snippet().display()
        );
        let file = prefix.path().join("nginx.conf");
        std::fs::write(&file, config(prefix.path(), &http)).expect("write nginx.conf");
        let process = KillOnDrop::spawn(
            Command::new(binary())
                .args(prefix_args(prefix.path(), &file))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let mut nginx = Nginx {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            prefix,
        };
        nginx.wait_until_listening().await;
        nginx
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + super::NETWORK_TIMEOUT;
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            if let Some(status) = self.process.exit_status() {
                panic!("nginx exited ({status}); error.log:\n{}", self.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx is not listening on {}; error.log:\n{}",
                self.addr,
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address nginx listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.prefix.path().join("error.log")).unwrap_or_default()
    }
}

/// A loopback port that was free a moment ago (nginx binds it itself).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port()
}
