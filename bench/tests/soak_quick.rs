//! The quick soak, as the test suite runs it: 1,000 WebSockets for 30 s on
//! each backend (the real engine and the real `loadgen soak`, debug
//! builds), with the full soak's criteria: no echo lost or corrupted, no
//! unexpected close, engine RSS flat after the warm-up, open fds back to
//! the baseline, p99 reported. The numbers in `summary.json` are checked
//! here again, independently of the runner's own verdict.

use std::process::Command;

use bench::harness::{Binaries, Build};
use bench::soak::run::BackendSummary;
use ringecho::IoBackend;

#[test]
fn quick_soak_passes_on_both_backends() {
    let bins = Binaries::locate(Build::Debug).expect("build or locate the debug binaries");
    let bin_dir = bins.ringecho.parent().expect("target dir").to_path_buf();
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["--quick", "--bin-dir"])
        .arg(&bin_dir)
        .arg("--out-dir")
        .arg(out.path())
        .status()
        .expect("run soak --quick");

    let summary = std::fs::read_to_string(out.path().join("soak/summary.json"))
        .expect("the runner writes summary.json");
    let runs: Vec<BackendSummary> = serde_json::from_str(&summary).unwrap();
    let backends: Vec<IoBackend> = runs.iter().map(|r| r.backend).collect();
    assert_eq!(backends, IoBackend::ALL);
    for r in &runs {
        let b = &r.backend;
        let failed: Vec<String> = r
            .checks
            .iter()
            .filter(|c| !c.pass)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        assert!(failed.is_empty(), "{b}: {failed:?}");
        assert_eq!((r.lost, r.corrupted), (0, 0), "{b}: lost, corrupted");
        assert_eq!(r.unexpected_closes, 0, "{b}");
        assert_eq!(r.connect_failures, 0, "{b}");
        assert_eq!(r.connections, 1_000);
        assert!(r.least_open_in_hold >= 990, "{b}: {}", r.least_open_in_hold);
        // 20 closes and reconnects a second for 30 s.
        assert!(r.closes_in_hold >= 570, "{b}: churn {}", r.closes_in_hold);
        assert_eq!(r.closed_clean, r.closes, "{b}: every close clean");
        assert_eq!(r.echoes, r.sent, "{b}: every message echoed");
        let rss = r.rss.expect("RSS sampled over the window");
        assert!(
            rss.growth < 0.02,
            "{b}: RSS grew {:.2}%",
            rss.growth * 100.0
        );
        assert_eq!(r.fds_before, r.fds_after, "{b}: fds back to the baseline");
        assert!(r.fds_before > 0);
        for class in &r.latency_us {
            assert!(
                class.corrected.count > 0 && class.corrected.p99 > 0.0,
                "{b}: {} p99 reported",
                class.class
            );
        }
        assert_eq!(r.engine_exit, "exit status: 0", "{b}");
    }
    assert!(status.success(), "soak --quick failed: {status}");

    let md = std::fs::read_to_string(out.path().join("soak.md")).unwrap();
    assert!(
        md.contains("Verdict: uring **PASS**, epoll **PASS**"),
        "{md}"
    );
    for file in [
        "rss.svg",
        "fds.svg",
        "connections.svg",
        "p99.svg",
        "uring-engine.csv",
        "uring-loadgen.csv",
        "epoll-engine.csv",
        "epoll-loadgen.csv",
    ] {
        let path = out.path().join("soak").join(file);
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 100),
            "{}",
            path.display()
        );
        assert!(
            md.contains(file) || file.ends_with(".csv"),
            "soak.md links {file}"
        );
    }
}
