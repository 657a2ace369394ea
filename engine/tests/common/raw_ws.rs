//! A hand-driven WebSocket client over raw TCP: it sends whatever frames a
//! test builds (valid or not) and checks every frame the server sends back
//! is unmasked, as RFC 6455 section 5.1 requires.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::frames::{decode, Frame, OpCode};
use super::http::{read_response, Request, SAMPLE_ACCEPT};
use super::within;

/// The masking key for every frame this client sends. Any key is valid; a
/// fixed one keeps the wire bytes reproducible.
const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

/// A WebSocket connection whose frames the test writes and reads one by one.
pub struct RawWebSocket {
    stream: TcpStream,
    /// Bytes read from the server and not yet decoded.
    received: Vec<u8>,
}

impl RawWebSocket {
    /// Opens a TCP connection to `addr` and completes a WebSocket handshake
    /// on `/ws`, checking the 101 response and its `Sec-WebSocket-Accept`.
    pub async fn connect(addr: SocketAddr) -> RawWebSocket {
        RawWebSocket::connect_with(addr, Request::upgrade("/ws"))
            .await
            .0
    }

    /// [`RawWebSocket::connect`] offering `offer` in
    /// `Sec-WebSocket-Extensions`; also returns the server's answer in that
    /// header, if any.
    #[allow(dead_code)]
    pub async fn connect_offering(addr: SocketAddr, offer: &str) -> (RawWebSocket, Option<String>) {
        let request = Request::upgrade("/ws").header("Sec-WebSocket-Extensions", offer);
        RawWebSocket::connect_with(addr, request).await
    }

    async fn connect_with(addr: SocketAddr, request: Request) -> (RawWebSocket, Option<String>) {
        let mut stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect to the server");
        let request = request.to_bytes(addr);
        within("sending the upgrade request", stream.write_all(&request))
            .await
            .expect("send the upgrade request");
        let mut received = Vec::new();
        let response = read_response(&mut stream, &mut received).await;
        assert_eq!(response.status, 101, "upgrade refused: {response:?}");
        assert_eq!(
            response.header("Sec-WebSocket-Accept"),
            Some(SAMPLE_ACCEPT),
            "wrong accept key in {response:?}"
        );
        let extensions = response
            .header("Sec-WebSocket-Extensions")
            .map(str::to_owned);
        (RawWebSocket { stream, received }, extensions)
    }

    /// Sends `frame`, masked. Fails the test if the write fails.
    pub async fn send(&mut self, frame: &Frame) {
        self.try_send(frame)
            .await
            .unwrap_or_else(|error| panic!("sending {frame:?}: {error}"));
    }

    /// Sends `frame`, masked, reporting a write error instead of failing: for
    /// frames the server may refuse to read before they are complete.
    pub async fn try_send(&mut self, frame: &Frame) -> io::Result<()> {
        let wire = frame.encode_masked(MASK);
        within("sending a frame", self.stream.write_all(&wire)).await
    }

    /// `frame` as this client puts it on the wire (masked).
    pub fn wire(frame: &Frame) -> Vec<u8> {
        frame.encode_masked(MASK)
    }

    /// Writes raw wire bytes, e.g. the first part of a frame.
    pub async fn send_bytes(&mut self, wire: &[u8]) {
        within("sending bytes", self.stream.write_all(wire))
            .await
            .expect("send bytes");
    }

    /// The next frame from the server, or `None` once the server has closed
    /// the connection (EOF or reset). Fails the test on a masked frame.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(decoded) = decode(&self.received) {
                self.received.drain(..decoded.wire_len);
                assert!(
                    !decoded.masked,
                    "the server sent a masked frame: {:?}",
                    decoded.frame
                );
                return Some(decoded.frame);
            }
            let read = within(
                "a frame from the server",
                self.stream.read_buf(&mut self.received),
            )
            .await;
            match read {
                Ok(0) => return None,
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::ConnectionReset => return None,
                Err(error) => panic!("reading from the server: {error}"),
            }
        }
    }

    /// The next frame from the server; fails the test if the connection
    /// closed instead.
    pub async fn read_frame(&mut self) -> Frame {
        self.next_frame()
            .await
            .expect("the server closed the connection while a frame was expected")
    }

    /// Reads one whole data message, joining its fragments, and returns its
    /// opcode and payload. Any control frame in between fails the test.
    pub async fn read_message(&mut self) -> (OpCode, Vec<u8>) {
        let first = self.read_frame().await;
        assert!(
            matches!(first.opcode, OpCode::Text | OpCode::Binary),
            "expected a data message, got {first:?}"
        );
        let mut payload = first.payload;
        let mut complete = first.fin;
        while !complete {
            let next = self.read_frame().await;
            assert_eq!(
                next.opcode,
                OpCode::Continuation,
                "expected the next fragment, got {next:?}"
            );
            payload.extend(next.payload);
            complete = next.fin;
        }
        (first.opcode, payload)
    }

    /// Reads the next frame and checks it is a pong carrying `payload`.
    pub async fn expect_pong(&mut self, payload: &[u8]) {
        let frame = self.read_frame().await;
        assert_eq!(frame.opcode, OpCode::Pong, "expected a pong, got {frame:?}");
        assert_eq!(frame.payload, payload, "pong payload");
    }

    /// Expects the server to fail the connection with close `code`: reads a
    /// close frame with that code, answers it, and waits for the server to
    /// close the TCP connection.
    pub async fn expect_close(&mut self, code: u16) {
        let frame = self.read_frame().await;
        assert_eq!(
            frame.close_code(),
            Some(code),
            "expected a close frame with code {code}, got {frame:?}"
        );
        // The server may already have dropped the connection, which is fine.
        let _ = self.try_send(&Frame::close(code, "")).await;
        self.expect_disconnect().await;
    }

    /// Writes raw wire bytes for at most `limit`, for a peer that may stop
    /// reading; returns whether all of them went out.
    pub async fn send_bytes_for(&mut self, wire: &[u8], limit: std::time::Duration) -> bool {
        matches!(
            tokio::time::timeout(limit, self.stream.write_all(wire)).await,
            Ok(Ok(()))
        )
    }

    /// Vanishes: closes the connection with a TCP reset (`SO_LINGER` 0),
    /// as a client that crashes or loses its network does, mid-frame or
    /// mid-close.
    pub fn reset(self) {
        reset(self.stream);
    }

    /// Shuts down the client's write side (the server reads EOF) and keeps
    /// reading: a half-close.
    pub async fn shutdown_write(&mut self) {
        within("shutting down the write side", self.stream.shutdown())
            .await
            .expect("shut down the write side");
    }

    /// Reads until the server closes the connection and returns the bytes
    /// that came before the end (undecoded) and how it ended: `Ok(())` for
    /// EOF, the error for a reset.
    pub async fn read_to_end(&mut self) -> (Vec<u8>, io::Result<()>) {
        loop {
            match within(
                "the server to end the connection",
                self.stream.read_buf(&mut self.received),
            )
            .await
            {
                Ok(0) => return (std::mem::take(&mut self.received), Ok(())),
                Ok(_) => {}
                Err(error) => return (std::mem::take(&mut self.received), Err(error)),
            }
        }
    }

    /// The TCP stream and the bytes already read from it but not decoded,
    /// for a test that reads and writes at the same time.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.received)
    }

    /// Waits for the server to close the TCP connection, failing the test if
    /// it sends any frame before that.
    pub async fn expect_disconnect(&mut self) {
        if let Some(frame) = self.next_frame().await {
            panic!("expected the connection to close, got {frame:?}");
        }
    }
}

/// Closes `stream` with a TCP reset instead of a FIN: `SO_LINGER` with a
/// zero timeout, then close. The peer's next read or write fails with
/// `ECONNRESET`, and no FIN handshake takes place.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(std::time::Duration::ZERO))
        .expect("set SO_LINGER 0");
    drop(stream);
}
