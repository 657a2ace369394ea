//! Failing the connection with the right close code: 1007 for invalid UTF-8,
//! 1009 for messages over `--max-message-size`, 1002 for protocol errors
//! (including an unmasked client frame).

mod common;

use std::net::SocketAddr;

use common::frames::{Frame, OpCode};
use common::raw_ws::RawWebSocket;
use common::server::Server;
use common::{backend_tests, Backend};

const INVALID_PAYLOAD: u16 = 1007;
const PROTOCOL_ERROR: u16 = 1002;
const MESSAGE_TOO_BIG: u16 = 1009;

/// The `--max-message-size` the 1009 tests run with, and its value in bytes.
const MESSAGE_LIMIT_ARG: &str = "64KiB";
const MESSAGE_LIMIT: usize = 64 * 1024;

/// Valid UTF-8 ("κόσμε"), then an encoded UTF-16 surrogate (ED A0 80), which
/// UTF-8 forbids, then valid text again (Autobahn case 6.x style).
const SURROGATE_IN_TEXT: &[u8] = b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80edited";

/// Sends `frames` on a fresh connection and expects the server to fail the
/// connection with close `code`. Sending stops at the first write error:
/// the server may close before it has read everything. `case` is printed
/// first, so a failure's captured output names the case.
async fn assert_closes_with(addr: SocketAddr, case: &str, frames: &[Frame], code: u16) {
    println!("checking: {case}, expecting close code {code}");
    let mut socket = RawWebSocket::connect(addr).await;
    for frame in frames {
        if socket.try_send(frame).await.is_err() {
            break;
        }
    }
    socket.expect_close(code).await;
}

async fn closes_1007_on_invalid_utf8_in_one_frame(backend: Backend) {
    let server = Server::start(backend, &[]).await;
    let frames = [Frame::text(SURROGATE_IN_TEXT)];
    assert_closes_with(server.addr(), "surrogate in text", &frames, INVALID_PAYLOAD).await;
}

/// Only the start of one text frame is sent, up to and including an invalid
/// sequence: the server must refuse it without waiting for the frame's end
/// (Autobahn 6.4.3/6.4.4 fail-fast). A valid text frame sent just before it,
/// in the same write, still comes back.
async fn closes_1007_inside_a_frame_before_it_is_complete(backend: Backend) {
    let server = Server::start(backend, &[]).await;
    let mut socket = RawWebSocket::connect(server.addr()).await;
    let mut payload = SURROGATE_IN_TEXT.to_vec();
    payload.extend_from_slice(&[b'x'; 1000]);
    let bad = RawWebSocket::wire(&Frame::text(payload));
    let header_len = 2 + 2 + 4; // 16-bit length, mask
    let surrogate_end = SURROGATE_IN_TEXT.len() - b"edited".len();
    let mut wire = RawWebSocket::wire(&Frame::text("before"));
    wire.extend_from_slice(&bad[..header_len + surrogate_end]);
    socket.send_bytes(&wire).await;
    assert_eq!(
        socket.read_message().await,
        (OpCode::Text, b"before".to_vec())
    );
    socket.expect_close(INVALID_PAYLOAD).await;
}

/// The final fragment is never sent: the server must fail the message at the
/// first fragment that cannot be part of valid UTF-8.
async fn closes_1007_at_the_first_invalid_fragment(backend: Backend) {
    let server = Server::start(backend, &[]).await;
    let cases: [(&str, [&[u8]; 2]); 2] = [
        ("0xFF inside a fragment", [b"valid start ", b"then \xFF"]),
        // F4 starts a 4-byte sequence; F4 90 would be above U+10FFFF.
        (
            "sequence invalid across the boundary",
            [b"valid start \xF4", b"\x90\x80\x80"],
        ),
    ];
    for (case, [first, second]) in cases {
        let frames = [
            Frame::text(first).not_final(),
            Frame::continuation(second).not_final(),
        ];
        assert_closes_with(server.addr(), case, &frames, INVALID_PAYLOAD).await;
    }
}

async fn closes_1009_on_a_frame_over_the_limit(backend: Backend) {
    let server = Server::start(backend, &["--max-message-size", MESSAGE_LIMIT_ARG]).await;
    let frames = [Frame::binary(vec![b'x'; MESSAGE_LIMIT + 1])];
    assert_closes_with(server.addr(), "one big frame", &frames, MESSAGE_TOO_BIG).await;
}

async fn closes_1009_when_fragments_add_up_past_the_limit(backend: Backend) {
    let server = Server::start(backend, &["--max-message-size", MESSAGE_LIMIT_ARG]).await;
    let fragment = vec![b'x'; MESSAGE_LIMIT / 2 - 1_000];
    let frames = Frame::fragments(OpCode::Binary, &[&fragment, &fragment, &fragment]);
    assert_closes_with(server.addr(), "fragments", &frames, MESSAGE_TOO_BIG).await;
}

async fn closes_1002_on_protocol_errors(backend: Backend) {
    let server = Server::start(backend, &[]).await;
    let cases = [
        (
            "continuation without a start",
            vec![Frame::continuation("orphan")],
        ),
        (
            "new data frame inside a fragmented message",
            vec![Frame::text("first").not_final(), Frame::text("second")],
        ),
        (
            "RSV2 set",
            vec![Frame::text("reserved bits").with_rsv(0b010)],
        ),
        (
            "ping payload over 125 bytes",
            vec![Frame::ping(vec![b'p'; 126])],
        ),
        ("fragmented ping", vec![Frame::ping("half").not_final()]),
        (
            "reserved data opcode",
            vec![Frame::new(OpCode::Reserved(0x3), "?")],
        ),
        (
            "reserved control opcode",
            vec![Frame::new(OpCode::Reserved(0xB), "?")],
        ),
    ];
    for (case, frames) in cases {
        assert_closes_with(server.addr(), case, &frames, PROTOCOL_ERROR).await;
    }
}

/// Every client frame must be masked (RFC 6455 §5.1). Each unmasked frame
/// follows a valid masked message in the same write: that message still
/// comes back, then the server closes with 1002 instead of echoing the
/// unmasked one.
async fn closes_1002_on_an_unmasked_frame(backend: Backend) {
    let server = Server::start(backend, &[]).await;
    let cases = [
        ("unmasked text", Frame::text("in the clear")),
        ("unmasked empty binary", Frame::binary("")),
        ("unmasked 16-bit length", Frame::binary(vec![b'u'; 300])),
        ("unmasked ping", Frame::ping("are you there")),
        ("unmasked close", Frame::close(1000, "bye")),
    ];
    for (case, unmasked) in cases {
        println!("checking: {case}, expecting close code {PROTOCOL_ERROR}");
        let mut socket = RawWebSocket::connect(server.addr()).await;
        let mut wire = RawWebSocket::wire(&Frame::binary("masked first"));
        wire.extend(unmasked.encode_unmasked());
        socket.send_bytes(&wire).await;
        assert_eq!(
            socket.read_message().await,
            (OpCode::Binary, b"masked first".to_vec()),
            "{case}: the masked message before it"
        );
        socket.expect_close(PROTOCOL_ERROR).await;
    }
    let mut socket = RawWebSocket::connect(server.addr()).await;
    println!("checking: unmasked continuation, expecting close code {PROTOCOL_ERROR}");
    socket.send(&Frame::text("first half").not_final()).await;
    socket
        .send_bytes(&Frame::continuation("second half").encode_unmasked())
        .await;
    socket.expect_close(PROTOCOL_ERROR).await;
}

backend_tests!(
    closes_1007_on_invalid_utf8_in_one_frame,
    closes_1007_inside_a_frame_before_it_is_complete,
    closes_1007_at_the_first_invalid_fragment,
    closes_1009_on_a_frame_over_the_limit,
    closes_1009_when_fragments_add_up_past_the_limit,
    closes_1002_on_protocol_errors,
    closes_1002_on_an_unmasked_frame,
);
