//! The `deploy/` folder is real: the systemd unit's command line starts the
//! engine and `systemd-analyze verify` accepts the unit; the nginx site
//! passes `nginx -t`; and the unit's keep-alive interval is below the site's
//! `proxy_read_timeout`, so idle WebSockets survive the proxy. (The location
//! snippet itself carries traffic in `proxy_nginx.rs`.)

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::http::health;
use common::nginx::{self, deploy_dir};
use common::server::{Server, BINARY};

/// The unit file.
fn unit_path() -> PathBuf {
    deploy_dir().join("systemd/ringecho.service")
}

/// The value of the first `key=` line of a unit file.
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
        .trim()
        .to_owned()
}

/// ExecStart split into words. The unit uses no quoting, so whitespace
/// splitting is exactly what systemd does with it.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit_value(unit, "ExecStart");
    assert!(
        !line.contains(['"', '\'', '\\', '$', '%']),
        "ExecStart uses quoting or specifiers this test does not parse: {line}"
    );
    line.split_whitespace().map(str::to_owned).collect()
}

/// The value following `option` in `args`.
fn option_value<'a>(args: &'a [String], option: &str) -> &'a str {
    let at = args
        .iter()
        .position(|arg| arg == option)
        .unwrap_or_else(|| panic!("{option} is not in {args:?}"));
    &args[at + 1]
}

fn duration(text: &str) -> Duration {
    humantime::parse_duration(text).unwrap_or_else(|e| panic!("duration {text:?}: {e}"))
}

#[tokio::test]
async fn systemd_unit_command_line_starts_the_engine() {
    let unit = std::fs::read_to_string(unit_path()).expect("read the unit");
    let command = exec_start(&unit);
    assert_eq!(command[0], "/usr/local/bin/ringecho", "installed path");
    assert_eq!(option_value(&command, "--listen"), "127.0.0.1:5000");

    // The same arguments, on a free port instead of 5000.
    let args: Vec<&str> = command[1..]
        .iter()
        .map(|arg| match arg.as_str() {
            "127.0.0.1:5000" => "127.0.0.1:0",
            other => other,
        })
        .collect();
    let mut server = Server::start_with_args(&args).await;
    let report = health(server.addr()).await;
    assert_eq!(report["status"], "ok", "{report}");

    // systemd stops the service with KillSignal and waits TimeoutStopSec,
    // which must leave room for the graceful --shutdown-timeout.
    assert_eq!(unit_value(&unit, "KillSignal"), "SIGTERM");
    let stop_timeout = duration(&unit_value(&unit, "TimeoutStopSec"));
    let shutdown_timeout = duration(option_value(&command, "--shutdown-timeout"));
    assert!(
        shutdown_timeout < stop_timeout,
        "--shutdown-timeout {shutdown_timeout:?} must be below TimeoutStopSec {stop_timeout:?}"
    );
    server.send_signal(libc::SIGTERM);
    let status = server.wait_for_exit(stop_timeout).await;
    assert!(status.success(), "ringecho exited with {status} on SIGTERM");
}

#[test]
fn systemd_analyze_accepts_the_unit() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        // systemd-analyze ships with systemd; the other deploy tests still
        // check the unit's command line for real.
        eprintln!("systemd-analyze not installed; unit syntax not verified");
        return;
    };
    assert!(version.status.success(), "systemd-analyze --version failed");
    let unit = std::fs::read_to_string(unit_path()).expect("read the unit");
    // verify checks that ExecStart's program exists: point it at the binary
    // under test.
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("ringecho.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/ringecho", BINARY)).expect("write unit");
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .stdin(Stdio::null())
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("ringecho.service"),
        "systemd-analyze verify complains ({}):\n{stderr}",
        output.status
    );
}

#[test]
fn nginx_site_passes_nginx_t() {
    let site = std::fs::read_to_string(deploy_dir().join("nginx/ringecho.conf"))
        .expect("read the nginx site");
    let installed = "/etc/nginx/snippets/ringecho-locations.conf";
    assert_eq!(
        site.matches(installed).count(),
        1,
        "the site includes the snippet"
    );
    // Test the site with the snippet from this repository instead of its
    // installed copy.
    let snippet = nginx::locations_snippet();
    let site = site.replace(installed, &snippet.display().to_string());
    let prefix = tempfile::tempdir().expect("nginx prefix");
    let output = nginx::check_config(prefix.path(), &nginx::config(prefix.path(), &site));
    assert!(
        output.status.success(),
        "nginx -t rejects deploy/nginx/ringecho.conf:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn unit_keep_alive_interval_is_below_the_site_proxy_read_timeout() {
    let unit = std::fs::read_to_string(unit_path()).expect("read the unit");
    let interval = duration(option_value(&exec_start(&unit), "--keep-alive-interval"));
    let site = std::fs::read_to_string(deploy_dir().join("nginx/ringecho.conf"))
        .expect("read the nginx site");
    let timeout = site
        .lines()
        .find_map(|line| line.trim().strip_prefix("proxy_read_timeout "))
        .map(|value| duration(value.trim_end_matches(';')))
        .expect("the site sets proxy_read_timeout");
    assert!(
        interval < timeout,
        "--keep-alive-interval {interval:?} must be below proxy_read_timeout {timeout:?}"
    );
}
