//! The command-line contract of `loadgen` (see `loadgen::usage`), case by
//! case against the real binary: every usage error exits 2 with one line
//! and no backtrace, output paths are checked before any load, a dead port
//! fails fast, `-q` is quiet, `--rate` alone selects the open loop, and
//! `--help` lists the exit codes.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn loadgen(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        // A user error must not print a backtrace even when they are on.
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    (out, started.elapsed())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A port on 127.0.0.1 that nothing listens on.
fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Exit 2, and stderr is exactly one line: `loadgen: error: ...` naming `what`.
fn assert_usage_error(args: &[&str], what: &str) {
    let (out, took) = loadgen(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line, got:\n{err}");
    assert!(err.starts_with("loadgen: error: "), "{args:?}: {err}");
    assert!(err.contains(what), "{args:?}: wanted {what:?} in {err}");
    assert!(!err.contains("backtrace"), "{args:?}: {err}");
    assert!(took < Duration::from_secs(5), "{args:?}: took {took:?}");
}

#[test]
fn usage_errors_found_after_parsing_exit_2_with_one_line() {
    let url = format!("ws://127.0.0.1:{}/ws", dead_port());
    assert_usage_error(&["http://127.0.0.1:1/ws"], "invalid target URL");
    assert_usage_error(&["ws://127.0.0.1:notaport/ws"], "invalid target URL");
    assert_usage_error(&[], "missing target URL");
    assert_usage_error(&[&url, "--mode", "open"], "--mode open needs --rate");
    assert_usage_error(
        &[&url, "--mode", "closed", "--rate", "10"],
        "contradicts --mode closed",
    );
    assert_usage_error(&[&url, "--preset", "nope"], "unknown preset");
    assert_usage_error(&[&url, "--size", "8"], "--size must be at least 16 B");
    assert_usage_error(
        &[&url, "--connections", "0"],
        "--connections must be at least 1",
    );
    assert_usage_error(
        &["soak", "ws://127.0.0.1:1/nope", "--players", "0", "-c", "0"],
        "",
    );
}

#[test]
fn output_paths_are_checked_before_any_load() {
    let url = format!("ws://127.0.0.1:{}/ws", dead_port());
    let missing = scratch("no/such/dir/x.json");
    let missing = missing.to_str().unwrap();
    for option in ["--json", "--hlog"] {
        // A 30 s run: the check must refuse it at once, not after the load.
        let args = [url.as_str(), "-d", "30", option, missing];
        assert_usage_error(&args, &format!("{option} {missing}: cannot write there"));
        let (out, _) = loadgen(&args);
        let err = stderr(&out);
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "the cause once: {err}"
        );
    }
    assert_usage_error(
        &["soak", &url, "-c", "300", "-d", "30", "--csv", missing],
        "--csv",
    );
    assert_usage_error(&["merge", "a.hlog", "--json", missing], "--json");
    assert!(!scratch("no").exists(), "nothing created on the way");
}

#[test]
fn a_dead_port_fails_fast_and_quietly() {
    let url = format!("ws://127.0.0.1:{}/ws", dead_port());
    let json = scratch("dead.json");
    let (out, took) = loadgen(&[
        &url,
        "-c",
        "100",
        "-d",
        "10",
        "-w",
        "1",
        "--rate",
        "20",
        "-q",
        "--json",
        json.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        took < Duration::from_secs(4),
        "a refused port is reported in {took:?}, not after the 11 s run"
    );
    assert_eq!(
        err.trim_end(),
        "loadgen: all 100 connections failed: 100 x connection refused",
        "-q leaves only the outcome on stderr"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("latency"), "no table of zeros:\n{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["exit"]["status"], "all_connections_failed");
    // --rate alone selected the open loop, as in tune.
    assert_eq!(report["config"]["mode"], "open", "{report}");
}

#[test]
fn help_lists_the_exit_codes() {
    for args in [&["--help"][..], &["soak", "--help"][..]] {
        let (out, _) = loadgen(args);
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        for code in [
            "Exit codes:",
            "0 ",
            "1 runtime error",
            "2 usage error",
            "3 every connection failed",
            "130",
        ] {
            assert!(
                help.contains(code),
                "{args:?} --help lacks {code:?}:\n{help}"
            );
        }
    }
}
