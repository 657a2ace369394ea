//! `tune --quick` end to end against the real (debug) ringecho and loadgen:
//! the sweep runs every point, writes the CSV row by row, the report, three
//! plots and a recommendation; and Ctrl-C keeps what was measured. Only
//! behaviour is checked: debug builds say nothing about speed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bench::harness::{Binaries, Build};

const TUNE: &str = env!("CARGO_BIN_EXE_tune");
/// Generous bound on a quick sweep, so a hang fails the test instead of CI.
const LIMIT: Duration = Duration::from_secs(120);

/// The directory holding debug `ringecho` and `loadgen` (built if needed).
fn bin_dir() -> PathBuf {
    let binaries = Binaries::locate(Build::Debug).expect("build or locate the debug binaries");
    binaries
        .ringecho
        .parent()
        .expect("binaries live in a directory")
        .to_path_buf()
}

/// A small game workload a debug server keeps up with: 20 players at 128 Hz.
fn tune(out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(TUNE);
    command
        .args([
            "--preset",
            "shooter-128hz",
            "--connections",
            "20",
            "--name",
            "quick-shooter",
        ])
        .arg("--quick")
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--out")
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Waits for `child` (killing it past [`LIMIT`]) and returns its output.
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().expect("poll tune").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tune ran longer than {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("collect tune's output")
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(|line| line.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn quick_sweep_writes_every_point_the_report_the_plots_and_a_recommendation() {
    let out = tempfile::tempdir().unwrap();
    // The kernel socket buffers as a second axis: the engine's
    // --socket-receive-buffer/--socket-send-buffer through tune.
    let output = finish(
        tune(out.path(), &["--socket-buffers", "kernel,64KiB"])
            .spawn()
            .expect("start tune"),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tune failed:\n{stdout}\n{stderr}");

    // 2 sizes x 1 count x 2 backends x 2 socket buffers x 1 repeat, each a
    // clean run.
    let rows = csv_rows(&out.path().join("quick-shooter.csv"));
    let mut points: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {} {}", r[2], r[3], r[5]))
        .collect();
    points.sort();
    assert_eq!(
        points,
        [
            "epoll 256 ",
            "epoll 256 65536",
            "epoll 4096 ",
            "epoll 4096 65536",
            "uring 256 ",
            "uring 256 65536",
            "uring 4096 ",
            "uring 4096 65536",
        ]
    );
    for row in &rows {
        let msgs_per_sec: f64 = row[6].parse().unwrap();
        let p99: f64 = row[8].parse().unwrap();
        assert!(msgs_per_sec > 0.0 && p99 > 0.0, "{row:?}");
        assert_eq!(row[14], "20", "connections open: {row:?}");
        assert_eq!(row[15], "0", "errors: {row:?}");
    }

    let md = std::fs::read_to_string(out.path().join("quick-shooter.md")).unwrap();
    assert!(md.contains("Recommended:"), "{md}");
    assert!(md.contains("    ringecho --io "), "{md}");
    assert!(
        md.contains("`--mode open --rate 128 -c 20 -s 18..64"),
        "{md}"
    );
    assert!(md.contains("| uring | 256B | 128 | kernel | 1 |"), "{md}");
    assert!(md.contains("| uring | 256B | 128 | 64KiB | 1 |"), "{md}");
    assert!(md.contains("| epoll | 4KiB | - | kernel | 1 |"), "{md}");
    assert!(!md.contains("Interrupted"));

    for plot in ["p99", "throughput", "memory"] {
        let svg = std::fs::read_to_string(out.path().join(format!("quick-shooter-{plot}.svg")))
            .unwrap_or_else(|e| panic!("{plot} plot: {e}"));
        assert!(svg.starts_with("<svg"), "{plot}");
        assert!(
            svg.contains("uring x128 buffers"),
            "{plot}: one line per backend"
        );
        assert!(svg.contains("epoll (ring knobs unused)"), "{plot}");
        assert!(svg.contains("socket buffers 64KiB"), "{plot}");
    }
    assert!(stdout.contains("Recommended:"), "{stdout}");
    assert!(stdout.contains("Why:"), "{stdout}");
    assert!(
        stderr.contains("[8/8]"),
        "progress lines with an ETA:\n{stderr}"
    );
    assert!(stderr.contains("ETA"), "{stderr}");
}

#[test]
fn ctrl_c_keeps_the_points_already_measured() {
    let out = tempfile::tempdir().unwrap();
    let csv = out.path().join("quick-shooter.csv");
    // 3 repeats: 12 runs, far more than the test waits for.
    let child = tune(out.path(), &["--repeats", "3"])
        .spawn()
        .expect("start tune");
    let deadline = Instant::now() + LIMIT;
    while csv_rows(&csv).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no run finished within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let output = finish(child);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");

    let kept = csv_rows(&csv).len();
    assert!((1..12).contains(&kept), "{kept} rows kept");
    let md = std::fs::read_to_string(out.path().join("quick-shooter.md")).unwrap();
    assert!(
        md.contains(&format!("**Interrupted**: {kept} of 12 runs measured")),
        "{md}"
    );
    assert!(out.path().join("quick-shooter-p99.svg").is_file());
}
