//! The command line: invalid values are refused with a message that names
//! the option, `--help` documents every option, and sizes and durations are
//! accepted in their human-readable forms.

mod common;

use common::server::{run_to_exit, Server};
use common::{backend_tests, ws, Backend};
use tokio_tungstenite::tungstenite::Message;

const EVERY_OPTION: [&str; 17] = [
    "--listen",
    "--threads",
    "--no-pin",
    "--io",
    "--keep-alive-interval",
    "--keep-alive-timeout",
    "--receive-buffer-size",
    "--receive-buffers",
    "--socket-receive-buffer",
    "--socket-send-buffer",
    "--allowed-origin",
    "--max-message-size",
    "--max-connections",
    "--max-backpressure",
    "--backpressure-timeout",
    "--handshake-timeout",
    "--shutdown-timeout",
];

#[test]
fn refuses_invalid_values_naming_the_option() {
    for (option, value) in [
        ("--threads", "0"),
        ("--receive-buffers", "3"),
        ("--io", "bogus"),
        ("--keep-alive-interval", "abc"),
        ("--handshake-timeout", "soon"),
        ("--max-backpressure", "1KiB"),
        ("--backpressure-timeout", "later"),
        ("--receive-buffer-size", "4 parsecs"),
        ("--max-message-size", "lots"),
        ("--socket-receive-buffer", "12"),
        ("--socket-send-buffer", "huge"),
        ("--listen", "nowhere"),
    ] {
        let output = run_to_exit(&["--listen", "127.0.0.1:0", option, value]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "`{option} {value}` was accepted; stderr:\n{stderr}"
        );
        assert!(
            stderr.contains(option),
            "the error for `{option} {value}` does not name the option:\n{stderr}"
        );
    }
}

#[test]
fn help_lists_every_option() {
    let output = run_to_exit(&["--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "--help failed: {output:?}");
    let missing: Vec<_> = EVERY_OPTION
        .iter()
        .filter(|option| !help.contains(*option))
        .collect();
    assert!(missing.is_empty(), "--help lacks {missing:?}:\n{help}");
}

async fn accepts_human_readable_sizes_and_durations(backend: Backend) {
    let server = Server::start(
        backend,
        &[
            "--receive-buffer-size",
            "4KiB",
            "--receive-buffers",
            "64",
            "--max-message-size",
            "16384",
            "--keep-alive-interval",
            "2",
            "--keep-alive-timeout",
            "1500ms",
            "--handshake-timeout",
            "2s",
            "--shutdown-timeout",
            "1s",
        ],
    )
    .await;
    let mut socket = ws::connect(server.addr()).await;
    ws::assert_echo(&mut socket, Message::text("configured")).await;
}

backend_tests!(accepts_human_readable_sizes_and_durations);
