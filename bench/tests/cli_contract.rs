//! The command-line contract (the one `loadgen::usage` states) of the bench
//! binaries, case by case against the real binaries: a usage error exits 2
//! with one line and no backtrace, output directories are checked before
//! anything runs or builds, a runtime failure exits 1 with one line, and
//! `--help` lists the exit codes.

use std::net::TcpListener;
use std::process::{Command, Output};

fn run(binary: &str, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

/// Exit `code`, one line on stderr `TOOL: error: ...` containing `what`.
fn assert_error(binary: &str, tool: &str, args: &[&str], code: i32, what: &str) {
    let out = run(binary, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{tool} {args:?}: {err}");
    assert_eq!(
        err.lines().count(),
        1,
        "{tool} {args:?}: one line, got:\n{err}"
    );
    assert!(
        err.starts_with(&format!("{tool}: error: ")),
        "{tool} {args:?}: {err}"
    );
    assert!(
        err.contains(what),
        "{tool} {args:?}: wanted {what:?} in {err}"
    );
    assert!(!err.contains("backtrace"), "{tool} {args:?}: {err}");
}

/// A path under a regular file: no directory can be made there.
fn unwritable_dir(scratch: &tempfile::TempDir) -> String {
    let file = scratch.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    file.join("out").to_str().unwrap().to_string()
}

#[test]
fn output_paths_are_refused_before_anything_runs() {
    let scratch = tempfile::tempdir().unwrap();
    let bad = unwritable_dir(&scratch);
    let compare = env!("CARGO_BIN_EXE_compare");
    assert_error(compare, "compare", &["--out-dir", &bad], 2, "--out-dir");
    let soak = env!("CARGO_BIN_EXE_soak");
    assert_error(
        soak,
        "soak",
        &["--quick", "--out-dir", &bad],
        2,
        "--out-dir",
    );
    let table = env!("CARGO_BIN_EXE_microbench_table");
    let bad_file = format!("{bad}/microbench.md");
    assert_error(table, "microbench_table", &["--out", &bad_file], 2, "--out");
}

#[test]
fn bad_options_found_after_parsing_exit_2() {
    let soak = env!("CARGO_BIN_EXE_soak");
    assert_error(soak, "soak", &["--backends", "kqueue"], 2, "--backends");
    assert_error(
        soak,
        "soak",
        &["--connections", "10", "--players", "20"],
        2,
        "exceed --connections",
    );
}

#[test]
fn a_peer_on_a_taken_port_exits_1_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for (binary, tool) in [
        (env!("CARGO_BIN_EXE_fws_echo"), "fws_echo"),
        (env!("CARGO_BIN_EXE_tungstenite_echo"), "tungstenite_echo"),
    ] {
        assert_error(
            binary,
            tool,
            &["--listen", &addr],
            1,
            "Address already in use",
        );
        let out = run(binary, &["--listen", "not-an-address"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{tool}: the parser's own usage error"
        );
    }
}

#[test]
fn help_opens_with_what_the_binary_is() {
    for (binary, first_line) in [
        (
            env!("CARGO_BIN_EXE_compare"),
            "Side-by-side WebSocket echo benchmark",
        ),
        (env!("CARGO_BIN_EXE_soak"), "The engine soak"),
        (
            env!("CARGO_BIN_EXE_microbench_table"),
            "Summarise criterion results",
        ),
        (env!("CARGO_BIN_EXE_fws_echo"), "The fastwebsockets peer"),
        (
            env!("CARGO_BIN_EXE_tungstenite_echo"),
            "The tokio-tungstenite peer",
        ),
    ] {
        let out = run(binary, &["--help"]);
        assert!(out.status.success(), "{binary}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.starts_with(first_line),
            "{binary} --help should open with {first_line:?}:\n{help}"
        );
    }
}

#[test]
fn help_lists_the_exit_codes() {
    for binary in [
        env!("CARGO_BIN_EXE_compare"),
        env!("CARGO_BIN_EXE_soak"),
        env!("CARGO_BIN_EXE_microbench_table"),
        env!("CARGO_BIN_EXE_fws_echo"),
        env!("CARGO_BIN_EXE_tungstenite_echo"),
    ] {
        let out = run(binary, &["--help"]);
        assert!(out.status.success(), "{binary}");
        let help = String::from_utf8_lossy(&out.stdout);
        for code in ["Exit codes:", "0 ", "1 ", "2 usage error"] {
            assert!(
                help.contains(code),
                "{binary} --help lacks {code:?}:\n{help}"
            );
        }
    }
}
