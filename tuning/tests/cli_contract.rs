//! The command-line contract of `tune` (the one `loadgen::usage` states),
//! case by case against the real binary: usage errors exit 2 with one line
//! and no backtrace, the output directory is checked before any run, the
//! default output is outside `results/`, `--plan` opens with a header, and
//! a flag means what it means to loadgen (`--rate` alone is the open loop).

use std::path::Path;
use std::process::{Command, Output};

const TUNE: &str = env!("CARGO_BIN_EXE_tune");

/// A directory with stand-in `ringecho` and `loadgen` files: enough for
/// the checks that run before any measurement, which never start them.
fn fake_bin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["ringecho", "loadgen"] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    dir
}

fn tune(args: &[&str], bin_dir: &Path) -> Output {
    Command::new(TUNE)
        .args(args)
        .arg("--bin-dir")
        .arg(bin_dir)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn assert_usage_error(args: &[&str], what: &str) {
    let bins = fake_bin_dir();
    let out = tune(args, bins.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line, got:\n{err}");
    assert!(err.starts_with("tune: error: "), "{args:?}: {err}");
    assert!(err.contains(what), "{args:?}: wanted {what:?} in {err}");
    assert!(!err.contains("backtrace"), "{args:?}: {err}");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    assert_usage_error(&["--preset", "nope"], "unknown preset");
    assert_usage_error(&[], "give --preset NAME");
    assert_usage_error(
        &["-c", "10", "-s", "20", "--mode", "open"],
        "--mode open needs --rate",
    );
    assert_usage_error(
        &["-c", "10", "-s", "20", "--mode", "closed", "--rate", "10"],
        "contradicts --mode closed",
    );
    assert_usage_error(&["-c", "10", "-s", "20", "--rate", "0"], "--rate 0");
    assert_usage_error(
        &["--preset", "shooter-128hz", "--buffer-sizes", "300..4KiB"],
        "--buffer-sizes",
    );
    assert_usage_error(
        &["--preset", "shooter-128hz", "--repeats", "0"],
        "--repeats",
    );
    assert_usage_error(
        &["--preset", "shooter-128hz", "--budget", "1s"],
        "--budget 1s",
    );
    assert_usage_error(&["--replot", "/nonexistent/sweep.csv"], "--replot");
}

#[test]
fn the_output_directory_is_checked_before_any_run() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let under_a_file = file.join("tuning");
    assert_usage_error(
        &[
            "--preset",
            "shooter-128hz",
            "--out-dir",
            under_a_file.to_str().unwrap(),
        ],
        "--out-dir",
    );
}

fn plan(args: &[&str]) -> String {
    let bins = fake_bin_dir();
    let out = tune(&[args, &["--plan"]].concat(), bins.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_plan_opens_with_a_header_and_writes_outside_results_by_default() {
    let text = plan(&["--preset", "shooter-128hz"]);
    let header: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    let field = |name: &str| {
        header
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name:?} line in the header:\n{text}"))
            .to_string()
    };
    assert!(field("workload").contains("shooter-128hz: 200 connections x 128 Hz"));
    assert!(field("runs").contains("= 108 runs"), "{text}");
    assert!(field("per run").contains("about"), "{text}");
    assert!(field("total").contains("about"), "{text}");
    let outputs = field("outputs");
    assert!(outputs.ends_with("target/tuning"), "{outputs}");
    assert!(text.contains("target/tuning/shooter-128hz.csv"), "{text}");
    assert!(
        text.contains("target/tuning/shooter-128hz-p99.svg"),
        "{text}"
    );
    assert!(
        !text.contains("results/"),
        "never results/ unless asked:\n{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("repeat 1: ")), "{text}");

    let published = plan(&["--preset", "shooter-128hz", "--out-dir", "results/tuning"]);
    assert!(
        published.contains("results/tuning/shooter-128hz.md"),
        "{published}"
    );
}

#[test]
fn rate_alone_selects_the_open_loop_as_in_loadgen() {
    let text = plan(&["-c", "10", "-s", "100", "--rate", "20"]);
    assert!(
        text.contains("10 connections x 20 Hz, 100 B messages, open loop"),
        "{text}"
    );
    assert!(text.contains("--mode open --rate 20"), "{text}");
    let closed = plan(&["-c", "10", "-s", "100", "--mode", "closed"]);
    assert!(closed.contains("closed loop"), "{closed}");
}

#[test]
fn help_lists_the_exit_codes() {
    let out = Command::new(TUNE).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for code in [
        "Exit codes:",
        "0 every run measured",
        "1 a runtime error",
        "2 usage error",
        "130",
    ] {
        assert!(help.contains(code), "--help lacks {code:?}:\n{help}");
    }
}
