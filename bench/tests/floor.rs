//! The project's C floor (`bench/floor/floor.c`), both builds on both
//! backends, against an independent client (tokio-tungstenite) and loadgen:
//! every message comes back whole, pings get pongs, a close is echoed,
//! SIGTERM ends it with exit 0. Behaviour only: the comparison with other
//! floors is `scripts/floor-check.py`, in `results/floor-check.md`.

use std::time::Duration;

use bench::floor;
use bench::harness::{Binaries, Build, Loadgen, RunningServer};
use futures_util::{SinkExt, StreamExt};
use ringecho::IoBackend;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// Sizes around every header form and buffer boundary: 7-bit, 16-bit and
/// 64-bit lengths, a 4 KiB and a 32 KiB buffer, frames spanning many.
const SIZES: [usize; 10] = [0, 20, 125, 126, 4086, 4096, 16_384, 65_535, 65_536, 300_000];

async fn exchange(url: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    for size in SIZES {
        let binary: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
        let text: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        for message in [Message::binary(binary.clone()), Message::text(text.clone())] {
            ws.send(message.clone()).await.unwrap();
            let echo = ws.next().await.expect("an echo").unwrap();
            assert_eq!(echo, message, "{url}: echo of {size} B");
        }
    }
    // Several messages in flight at once: several frames in one receive.
    for i in 0..50u8 {
        ws.feed(Message::binary(vec![i; 20])).await.unwrap();
    }
    ws.flush().await.unwrap();
    for i in 0..50u8 {
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(vec![i; 20])
        );
    }
    ws.send(Message::Ping(b"tick".to_vec())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Pong(b"tick".to_vec())
    );
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Normal);
            assert_eq!(frame.reason, "bye");
        }
        other => panic!("{url}: wanted the close echoed, got {other:?}"),
    }
}

#[test]
fn both_builds_echo_on_both_backends() {
    let floors = floor::build().expect("build the C floor (needs gcc and liburing-dev)");
    let binaries = Binaries::locate(Build::Debug).expect("the debug binaries");
    let loadgen = Loadgen::new(&binaries.loadgen, 0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for binary in [&floors.default, &floors.big] {
        for backend in IoBackend::ALL {
            let what = format!("{} {backend}", binary.display());
            let server = RunningServer::start(&floor::spec(binary, backend, 1))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            runtime.block_on(exchange(&server.ws_url()));
            for args in [
                "-c 8 -s 16..70000 --mode closed -k 4",
                "-c 20 -s 20 --mode open --rate 200",
            ] {
                let args: Vec<String> = args.split(' ').map(String::from).collect();
                let report = loadgen
                    .run(
                        &server.ws_url(),
                        &args,
                        Duration::from_millis(700),
                        Duration::from_millis(200),
                    )
                    .unwrap_or_else(|e| panic!("{what} {args:?}: {e}"));
                assert!(report.messages > 0, "{what} {args:?}: {report:?}");
                assert_eq!(report.errors.total, 0, "{what} {args:?}: bad echoes");
                assert_eq!(
                    report.exit.code, 0,
                    "{what} {args:?}: {}",
                    report.exit.message
                );
            }
            let tail = server.stderr_tail();
            let status = server.stop().unwrap();
            assert!(status.success(), "{what}: exit {status:?}");
            assert!(
                tail.contains("listening on http://127.0.0.1:"),
                "{what}: {tail}"
            );
        }
    }
}

#[test]
fn a_bad_command_line_exits_2() {
    let floors = floor::build().expect("build the C floor");
    for args in [
        &[][..],
        &["kqueue", "0"][..],
        &["uring", "port"][..],
        &["epoll", "70000"][..],
    ] {
        let out = std::process::Command::new(&floors.default)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("usage: floor uring|epoll PORT"),
            "{args:?}"
        );
    }
}
