//! permessage-deflate (RFC 7692) on both backends, over real sockets: the
//! negotiation, the compressed echo, and the close code of every kind of
//! bad compressed input.
//!
//! The client compresses with flate2 (raw DEFLATE, sync flush, the
//! `00 00 ff ff` tail left off) and checks the echoes by inflating them.
//! Autobahn's sections 12 and 13 (`autobahn.rs`) run the extension
//! against an independent implementation, and loadgen
//! `--permessage-deflate` drives compressed load through both echoes.

mod common;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use common::frames::{Frame, OpCode};
use common::raw_ws::RawWebSocket;
use common::server::Server;
use common::{backend_tests, Backend};

const RSV1: u8 = 0b100;
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// `message` as a client without context takeover compresses it.
fn compress(message: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(message).expect("deflate");
    // A flush of the encoder is a sync flush.
    encoder.flush().expect("sync flush");
    let mut out = std::mem::take(encoder.get_mut());
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - TAIL.len());
    out
}

/// Inflates a compressed message's payload (with its tail put back).
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut inflater = Decompress::new_with_window_bits(false, 15);
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut out = Vec::with_capacity(1 << 20);
    let status = inflater
        .decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .expect("the echo inflates");
    assert!(matches!(status, Status::Ok | Status::StreamEnd));
    out
}

/// A JSON-like state snapshot of about `len` bytes.
fn snapshot(len: usize) -> Vec<u8> {
    let mut text = String::new();
    let mut i = 0;
    while text.len() < len {
        text.push_str(&format!(
            "{{\"id\":{i},\"x\":{},\"state\":\"running\"}},",
            i * 7 % 100
        ));
        i += 1;
    }
    text.truncate(len);
    text.into_bytes()
}

async fn deflating(backend: Backend, extra: &[&str]) -> Server {
    let mut args = vec!["--permessage-deflate"];
    args.extend_from_slice(extra);
    Server::start(backend, &args).await
}

async fn negotiates_and_echoes_the_compressed_bytes(backend: Backend) {
    let server = deflating(backend, &[]).await;
    let (mut ws, answer) =
        RawWebSocket::connect_offering(server.addr(), "permessage-deflate; client_max_window_bits")
            .await;
    assert_eq!(
        answer.as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             client_max_window_bits=15"
        )
    );
    for len in [0, 1, 200, 1024, 70_000] {
        let message = snapshot(len);
        let payload = compress(&message);
        ws.send(&Frame::text(payload.clone()).with_rsv(RSV1)).await;
        let echo = ws.read_frame().await;
        assert_eq!(
            (echo.opcode, echo.rsv, echo.fin),
            (OpCode::Text, RSV1, true),
            "{len}"
        );
        assert_eq!(
            echo.payload, payload,
            "passthrough: the client's own bytes ({len} B)"
        );
        // Uncompressed messages still work on the same connection.
        ws.send(&Frame::binary(message.clone())).await;
        let echo = ws.read_frame().await;
        assert_eq!((echo.rsv, echo.payload.len()), (0, message.len()));
    }
    // A fragmented compressed message comes back as one frame.
    let message = snapshot(5000);
    let payload = compress(&message);
    let (a, b) = payload.split_at(payload.len() / 2);
    ws.send(&Frame::binary(a.to_vec()).with_rsv(RSV1).not_final())
        .await;
    ws.send(&Frame::ping(b"between".to_vec())).await;
    ws.send(&Frame::continuation(b.to_vec())).await;
    ws.expect_pong(b"between").await;
    let echo = ws.read_frame().await;
    assert_eq!(
        (echo.opcode, echo.rsv, echo.fin),
        (OpCode::Binary, RSV1, true)
    );
    assert_eq!(inflate(&echo.payload), message);
}

async fn a_smaller_server_window_gets_a_recompressed_echo(backend: Backend) {
    let server = deflating(backend, &[]).await;
    let (mut ws, answer) = RawWebSocket::connect_offering(
        server.addr(),
        "permessage-deflate; server_max_window_bits=9",
    )
    .await;
    assert_eq!(
        answer.as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=9"
        )
    );
    let message = snapshot(20_000);
    ws.send(&Frame::text(compress(&message)).with_rsv(RSV1))
        .await;
    let echo = ws.read_frame().await;
    assert_eq!(echo.rsv, RSV1);
    assert_eq!(inflate(&echo.payload), message);
}

async fn declines_what_it_cannot_honour_without_failing_the_handshake(backend: Backend) {
    let server = deflating(backend, &[]).await;
    for offer in [
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; unknown=1",
        "x-webkit-deflate-frame",
        "permessage-deflate; server_max_window_bits=\"1",
    ] {
        let (mut ws, answer) = RawWebSocket::connect_offering(server.addr(), offer).await;
        assert_eq!(answer, None, "{offer}");
        ws.send(&Frame::text(b"plain".to_vec())).await;
        assert_eq!(ws.read_frame().await.payload, b"plain");
    }
    // Off by default: the offer is ignored, and RSV1 is a protocol error.
    let plain = Server::start(backend, &[]).await;
    let (mut ws, answer) = RawWebSocket::connect_offering(plain.addr(), "permessage-deflate").await;
    assert_eq!(answer, None);
    ws.send(&Frame::text(compress(b"hello")).with_rsv(RSV1))
        .await;
    ws.expect_close(1002).await;
}

async fn bad_compressed_input_gets_its_close_code(backend: Backend) {
    let server = deflating(backend, &["--max-message-size", "64KiB"]).await;
    let mut bad_utf8 = snapshot(3000);
    bad_utf8[1500] = 0xff;
    let cases: Vec<(&str, Vec<Frame>, u16)> = vec![
        (
            "undecodable",
            vec![Frame::binary(vec![0xff, 0xff, 0xff]).with_rsv(RSV1)],
            1007,
        ),
        (
            "text that inflates to invalid UTF-8",
            vec![Frame::text(compress(&bad_utf8)).with_rsv(RSV1)],
            1007,
        ),
        (
            "a bomb: 16 MiB of zeros",
            vec![Frame::binary(compress(&vec![0; 16 << 20])).with_rsv(RSV1)],
            1009,
        ),
        (
            "RSV1 on a continuation",
            vec![
                Frame::binary(compress(b"hello")).with_rsv(RSV1).not_final(),
                Frame::continuation(b"x".to_vec()).with_rsv(RSV1),
            ],
            1002,
        ),
        (
            "RSV1 on a ping",
            vec![Frame::ping(b"p".to_vec()).with_rsv(RSV1)],
            1002,
        ),
        (
            "RSV2",
            vec![Frame::binary(b"x".to_vec()).with_rsv(0b010)],
            1002,
        ),
    ];
    for (case, frames, code) in cases {
        let (mut ws, answer) =
            RawWebSocket::connect_offering(server.addr(), "permessage-deflate").await;
        assert!(answer.is_some());
        for frame in &frames {
            ws.send(frame).await;
        }
        ws.expect_close(code).await;
        eprintln!("passed: {case}");
    }
}

async fn context_takeover_when_asked_for(backend: Backend) {
    let server = deflating(backend, &["--deflate-context-takeover"]).await;
    let (mut ws, answer) =
        RawWebSocket::connect_offering(server.addr(), "permessage-deflate; client_max_window_bits")
            .await;
    assert_eq!(
        answer.as_deref(),
        Some("permessage-deflate; client_max_window_bits=15")
    );
    // The client compresses both messages in one stream; so does the server.
    let mut client = Compress::new_with_window_bits(Compression::default(), false, 15);
    let mut server_side = Decompress::new_with_window_bits(false, 15);
    let message = snapshot(2000);
    for round in 0..3 {
        let mut payload = Vec::with_capacity(4096);
        client
            .compress_vec(&message, &mut payload, FlushCompress::Sync)
            .unwrap();
        payload.truncate(payload.len() - TAIL.len());
        ws.send(&Frame::text(payload).with_rsv(RSV1)).await;
        let echo = ws.read_frame().await;
        assert_eq!(echo.rsv, RSV1);
        let mut input = echo.payload.clone();
        input.extend_from_slice(&TAIL);
        let mut out = Vec::with_capacity(8192);
        server_side
            .decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, message, "round {round}");
    }
}

/// Runs loadgen against `server` with `args` for a second; returns its
/// exit code and JSON report.
fn run_loadgen(server: &Server, args: &[&str]) -> (i32, serde_json::Value) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("report.json");
    let output = std::process::Command::new(common::loadgen::binary())
        .arg(format!("ws://{}/ws", server.addr()))
        .args(["-c", "10", "--rate", "50", "-s", "200..1400", "--snapshots"])
        .args(["--duration", "1s", "--warmup", "300ms", "--quiet", "--json"])
        .arg(&json)
        .args(args)
        .output()
        .expect("run loadgen");
    let report = std::fs::read(&json).unwrap_or_else(|_| {
        panic!(
            "loadgen wrote no report: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let report = serde_json::from_slice(&report).expect("loadgen's report is JSON");
    (output.status.code().unwrap_or(-1), report)
}

async fn loadgen_drives_compressed_echoes(backend: Backend) {
    let server = deflating(backend, &[]).await;
    let default = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    for (offer, answer) in [
        // The passthrough echo: the client's own compressed bytes.
        (None, default.to_owned()),
        // A server window smaller than the client's: inflate and deflate.
        (
            Some(
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
                 server_max_window_bits=10",
            ),
            format!("{default}; server_max_window_bits=10"),
        ),
    ] {
        let args = match offer {
            None => vec!["--permessage-deflate"],
            Some(offer) => vec!["--deflate-offer", offer],
        };
        let (code, report) = run_loadgen(&server, &args);
        assert_eq!(code, 0, "{offer:?}: {}", report["exit"]);
        assert_eq!(report["errors"]["total"], 0, "{offer:?}");
        assert!(report["messages"].as_u64().unwrap() > 0, "{offer:?}");
        assert_eq!(
            report["connections"]["extensions"][&answer], 10,
            "{offer:?}: {}",
            report["connections"]
        );
    }
    // A server that does not take the extension: every connection fails.
    let plain = Server::start(backend, &[]).await;
    let (code, report) = run_loadgen(&plain, &["--permessage-deflate"]);
    assert_eq!(code, 3, "{}", report["exit"]);
    assert_eq!(
        report["connections"]["failures"]["deflate_not_agreed"], 10,
        "{}",
        report["connections"]
    );
}

backend_tests!(
    negotiates_and_echoes_the_compressed_bytes,
    a_smaller_server_window_gets_a_recompressed_echo,
    declines_what_it_cannot_honour_without_failing_the_handshake,
    bad_compressed_input_gets_its_close_code,
    context_takeover_when_asked_for,
    loadgen_drives_compressed_echoes
);
