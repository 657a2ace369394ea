//! A well-behaved WebSocket client (tokio-tungstenite) for the tests that
//! need ordinary connections: echo round trips, many connections at once, the
//! server-initiated close at shutdown.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::within;

/// A tokio-tungstenite client connection.
pub type WebSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The URL of the echo endpoint of the server at `addr`.
pub fn echo_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// Connects to the echo endpoint of the server at `addr`, or returns the
/// handshake error (for example an HTTP 503 answer).
pub async fn try_connect(addr: SocketAddr) -> Result<WebSocket, tungstenite::Error> {
    let (socket, _response) = within(
        "the WebSocket handshake",
        tokio_tungstenite::connect_async(echo_url(addr)),
    )
    .await?;
    Ok(socket)
}

/// Connects to the echo endpoint of the server at `addr`.
pub async fn connect(addr: SocketAddr) -> WebSocket {
    try_connect(addr)
        .await
        .unwrap_or_else(|error| panic!("WebSocket handshake with {addr} failed: {error}"))
}

/// Sends `message`.
pub async fn send(socket: &mut WebSocket, message: Message) {
    within("sending a message", socket.send(message))
        .await
        .expect("send a message");
}

/// The next message other than ping or pong (tungstenite answers pings by
/// itself), or `None` when the connection has ended.
pub async fn next_message(socket: &mut WebSocket) -> Option<Message> {
    loop {
        match within("a message from the server", socket.next()).await {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(message)) => return Some(message),
            Some(Err(tungstenite::Error::ConnectionClosed)) | None => return None,
            Some(Err(error)) => panic!("reading from the server: {error}"),
        }
    }
}

/// Sends `message` and checks that the same message comes back.
pub async fn assert_echo(socket: &mut WebSocket, message: Message) {
    send(socket, message.clone()).await;
    let reply = next_message(socket)
        .await
        .expect("the connection closed before the echo arrived");
    // Compare the kind and length first so a mismatch on a large message
    // does not print megabytes.
    let describe = |message: &Message| (std::mem::discriminant(message), message.len());
    assert_eq!(describe(&reply), describe(&message), "echo kind and length");
    assert!(reply == message, "echo payload differs from what was sent");
}

/// Closes the connection with code 1000 and waits until the server has
/// answered the close and ended the connection.
pub async fn close(mut socket: WebSocket) {
    within("sending a close frame", socket.close(None))
        .await
        .expect("send a close frame");
    drain_until_closed(&mut socket).await;
}

/// Reads (and discards) until the connection has ended, which also sends
/// tungstenite's automatic reply to a close frame from the server.
pub async fn drain_until_closed(socket: &mut WebSocket) {
    while let Some(message) = next_message(socket).await {
        if !message.is_close() {
            panic!("expected the connection to close, got {message:?}");
        }
    }
}
