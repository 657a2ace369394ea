//! Echo semantics: every message comes back with its opcode and payload,
//! fragmented messages come back whole, close codes come back as sent.

mod common;

use common::frames::{Frame, OpCode};
use common::raw_ws::RawWebSocket;
use common::server::Server;
use common::{backend_tests, ws, Backend};
use tokio_tungstenite::tungstenite::Message;

/// Payload sizes around every frame-length encoding boundary (7-bit, 16-bit,
/// 64-bit), plus a message far larger than one receive buffer.
const MESSAGE_SIZES: [usize; 7] = [0, 1, 125, 126, 65_535, 65_536, 1 << 20];

/// Valid UTF-8 of exactly `len` bytes, mixing 1- to 4-byte characters.
fn text_of_len(len: usize) -> String {
    const PATTERN: &str = "aé€😀";
    let mut text = PATTERN.repeat(len / PATTERN.len());
    text.push_str(&"a".repeat(len - text.len()));
    text
}

/// `len` bytes covering every byte value.
fn binary_of_len(len: usize) -> Vec<u8> {
    (0..=u8::MAX).cycle().take(len).collect()
}

async fn assert_echoes_each_size(backend: Backend, message_of_len: fn(usize) -> Message) {
    let server = Server::start(backend, &[]).await;
    let mut socket = ws::connect(server.addr()).await;
    for size in MESSAGE_SIZES {
        ws::assert_echo(&mut socket, message_of_len(size)).await;
    }
    ws::close(socket).await;
}

async fn echoes_text_messages_of_every_size(backend: Backend) {
    assert_echoes_each_size(backend, |len| Message::Text(text_of_len(len))).await;
}

async fn echoes_binary_messages_of_every_size(backend: Backend) {
    assert_echoes_each_size(backend, |len| Message::Binary(binary_of_len(len))).await;
}

/// Sends `fragments` as one message of type `opcode` with a ping before every
/// continuation frame, then checks each ping got its pong and the message
/// came back whole.
async fn assert_fragmented_echo(backend: Backend, opcode: OpCode, fragments: &[&[u8]]) {
    let server = Server::start(backend, &[]).await;
    let mut socket = RawWebSocket::connect(server.addr()).await;
    let mut ping_payloads = Vec::new();
    for (index, fragment) in Frame::fragments(opcode, fragments).iter().enumerate() {
        if index > 0 {
            let ping_payload = format!("ping {index}").into_bytes();
            socket.send(&Frame::ping(ping_payload.clone())).await;
            ping_payloads.push(ping_payload);
        }
        socket.send(fragment).await;
    }
    for ping_payload in &ping_payloads {
        socket.expect_pong(ping_payload).await;
    }
    let (echoed_opcode, echoed_payload) = socket.read_message().await;
    assert_eq!(echoed_opcode, opcode, "opcode of the echoed message");
    assert_eq!(
        echoed_payload,
        fragments.concat(),
        "payload of the echoed message"
    );
}

async fn reassembles_fragmented_text_with_interleaved_pings(backend: Backend) {
    // "ö" (C3 B6) and "😀" (F0 9F 98 80) are split across fragments: each
    // fragment alone is not valid UTF-8, the whole message is.
    let fragments: [&[u8]; 5] = [
        "héllo ".as_bytes(),
        b"w\xC3",
        b"\xB6rld ",
        b"\xF0\x9F",
        b"\x98\x80!",
    ];
    assert_fragmented_echo(backend, OpCode::Text, &fragments).await;
}

async fn reassembles_fragmented_binary_with_interleaved_pings(backend: Backend) {
    let payload = binary_of_len(3_000);
    let fragments: Vec<&[u8]> = payload.chunks(1_000).collect();
    assert_fragmented_echo(backend, OpCode::Binary, &fragments).await;
}

async fn echoes_close_code_then_disconnects(backend: Backend) {
    let server = Server::start(backend, &[]).await;
    for (code, reason) in [(1000, ""), (3000, "custom"), (4999, "private use, bye")] {
        let mut socket = RawWebSocket::connect(server.addr()).await;
        socket.send(&Frame::close(code, reason)).await;
        let reply = socket.read_frame().await;
        assert_eq!(
            reply.close_code(),
            Some(code),
            "reply to a close with code {code}: {reply:?}"
        );
        socket.expect_disconnect().await;
    }
}

/// A pipelined burst of large messages, then small messages one at a time,
/// twice over. On io_uring a large recv moves a socket from the
/// provided-buffer ring to direct reads, and a run of small reads moves it
/// back; every byte must still come back in order.
async fn echoes_in_order_across_large_and_small_messages(backend: Backend) {
    let server = Server::start(backend, &[]).await;
    let mut socket = ws::connect(server.addr()).await;
    for round in 0..2u8 {
        let large: Vec<Message> = (0..8u8)
            .map(|i| {
                let mut payload = binary_of_len(64 * 1024 + usize::from(i));
                payload[0] = round;
                payload[1] = i;
                Message::Binary(payload)
            })
            .collect();
        for message in &large {
            ws::send(&mut socket, message.clone()).await;
        }
        for (index, message) in large.into_iter().enumerate() {
            let reply = ws::next_message(&mut socket).await;
            // No assert_eq: a mismatch would print 64 KiB payloads.
            assert!(
                reply == Some(message),
                "round {round}: large echo {index} differs from what was sent"
            );
        }
        for i in 0..40 {
            ws::assert_echo(
                &mut socket,
                Message::Text(format!("round {round} small {i}")),
            )
            .await;
        }
    }
    ws::close(socket).await;
}

backend_tests!(
    echoes_in_order_across_large_and_small_messages,
    echoes_text_messages_of_every_size,
    echoes_binary_messages_of_every_size,
    reassembles_fragmented_text_with_interleaved_pings,
    reassembles_fragmented_binary_with_interleaved_pings,
    echoes_close_code_then_disconnects,
);
