//! `compare --quick` end to end, as CI runs it: every server in every
//! scenario produces a row with traffic (or open idle connections) behind
//! it, and the Markdown, CSV and charts are written. Debug builds, short
//! windows: this proves the runner works, never how fast anything is.

use std::collections::BTreeSet;
use std::process::Command;

use bench::compare::plan::{scenarios, ScenarioKind, ServerKind};
use bench::harness::{Binaries, Build};

#[test]
fn quick_run_covers_every_server_and_scenario() {
    let bins = Binaries::locate(Build::Debug).expect("build or locate the debug binaries");
    let bin_dir = bins.ringecho.parent().expect("target dir").to_path_buf();
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_compare"))
        .args(["--quick", "--bin-dir"])
        .arg(&bin_dir)
        .arg("--out-dir")
        .arg(out.path())
        .status()
        .expect("run compare");
    assert!(status.success(), "compare --quick failed: {status}");

    let mut reader = csv::Reader::from_path(out.path().join("compare.csv")).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (scenario, server, msgs, messages, idle_open, error) = (
        col("scenario"),
        col("server"),
        col("msgs_per_sec"),
        col("messages"),
        col("idle_open"),
        col("error"),
    );
    let (server_cpu, client_cpu) = (col("server_cpu_percent"), col("client_cpu_percent"));
    // loadgen's own ceiling warning has a column (empty unless it warned).
    col("loadgen_warning");
    let mut seen = BTreeSet::new();
    for row in reader.records() {
        let row = row.unwrap();
        let id = row[scenario].to_string();
        assert!(
            row[error].is_empty(),
            "{id} {}: {}",
            &row[server],
            &row[error]
        );
        if id.starts_with("idle-") {
            let open: usize = row[idle_open].parse().unwrap();
            assert!(open > 0, "{id} {}: no idle connection open", &row[server]);
        } else {
            let rate: f64 = row[msgs].parse().unwrap();
            let n: u64 = row[messages].parse().unwrap();
            assert!(rate > 0.0 && n > 0, "{id} {}: no echoes", &row[server]);
            // Every load row reports the client's CPU beside the server's.
            for column in [server_cpu, client_cpu] {
                let percent: f64 = row[column].parse().unwrap_or(-1.0);
                assert!(
                    percent >= 0.0,
                    "{id} {}: no CPU share in column {column}",
                    &row[server]
                );
            }
        }
        seen.insert((id, row[server].to_string()));
    }
    let all = [
        ScenarioKind::Closed,
        ScenarioKind::Cpu,
        ScenarioKind::Latency,
        ScenarioKind::Idle,
    ];
    for s in scenarios(&all, 200, Some(10)) {
        for server in ServerKind::ALL {
            assert!(
                seen.contains(&(s.id(), server.name().to_string())),
                "no row for {} / {}",
                s.id(),
                server.name()
            );
        }
    }

    let md = std::fs::read_to_string(out.path().join("compare.md")).unwrap();
    for heading in [
        "Closed loop",
        "fixed offered rate",
        "Game presets",
        "idle WebSocket",
    ] {
        assert!(md.contains(heading), "compare.md lacks {heading:?}");
    }
    assert!(md.contains("kernel") && md.contains("commit") && md.contains("--quick"));
    assert!(
        md.contains("held to 40% of its core") && md.contains("Server / client CPU"),
        "compare.md does not say how the closed loop was held"
    );
    let charts = std::fs::read_dir(out.path().join("compare"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "svg"))
        })
        .count();
    assert_eq!(charts, 5, "one chart per published case");
}
