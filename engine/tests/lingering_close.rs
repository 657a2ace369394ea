//! A connection the engine fails while its client is still sending ends with
//! the close frame and then end of stream, never a reset. Closing a socket
//! with unread bytes in its receive queue makes the kernel answer with a
//! reset, and the client's kernel may then drop the close frame before the
//! application reads it (a browser reports 1006 instead of 1009 or 1007).
//! So, as nginx's `lingering_close` does, the engine sends its close frame,
//! shuts down its write side, and reads and discards what still arrives,
//! for a bounded time and byte count, before it closes.
//!
//! Each case runs [`RUNS`] times on each backend: the client writes the
//! whole case in one `write_all` while it reads, and must read the close
//! code, then end of stream; its write must succeed.

mod common;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::frames::{decode, Frame, OpCode};
use common::raw_ws::RawWebSocket;
use common::server::Server;
use common::{backend_tests, within, Backend};

/// Runs of each case on each backend.
const RUNS: usize = 20;
const PROTOCOL_ERROR: u16 = 1002;
const INVALID_PAYLOAD: u16 = 1007;
const MESSAGE_TOO_BIG: u16 = 1009;
const MIB: usize = 1024 * 1024;
/// How late past its bound a lingering client may be cut off.
const CUT_OFF_SLACK: Duration = Duration::from_secs(5);

/// The engine's options in every case: a 1 MiB message cap.
const SERVER_ARGS: &[&str] = &["--max-message-size", "1MiB"];

/// What the client's single write holds, and the close code it must read.
struct Case {
    name: &'static str,
    wire: Vec<u8>,
    code: u16,
}

/// A 2 MiB binary message over the 1 MiB cap, in one frame.
fn message_over_the_cap() -> Case {
    Case {
        name: "2 MiB message over a 1 MiB cap",
        wire: RawWebSocket::wire(&Frame::binary(vec![b'x'; 2 * MIB])),
        code: MESSAGE_TOO_BIG,
    }
}

/// A 1 MiB text message whose 100th byte can start no UTF-8 sequence.
fn invalid_utf8_early() -> Case {
    let mut text = vec![b'a'; MIB];
    text[100] = 0xFF;
    Case {
        name: "invalid UTF-8 early in a 1 MiB text message",
        wire: RawWebSocket::wire(&Frame::text(text)),
        code: INVALID_PAYLOAD,
    }
}

/// An unmasked frame (a protocol error from a client), then 1 MiB more.
fn unmasked_then_more() -> Case {
    let mut wire = Frame::binary(b"unmasked".to_vec()).encode_unmasked();
    wire.extend(RawWebSocket::wire(&Frame::binary(vec![b'y'; MIB])));
    Case {
        name: "an unmasked frame followed by 1 MiB more",
        wire,
        code: PROTOCOL_ERROR,
    }
}

/// How one run ended, as the client saw it.
#[derive(Debug)]
struct Ending {
    /// Every frame the server sent.
    frames: Vec<Frame>,
    /// How reading ended: `Ok` for end of stream.
    read: io::Result<()>,
    /// How the client's one write of the case ended.
    write: io::Result<()>,
}

/// Writes `wire` in one `write_all` while reading everything the server
/// sends until end of stream or an error. Once its write is done, the
/// client answers the close as RFC 6455 asks (a close frame, then its FIN).
async fn run_once(addr: SocketAddr, wire: Vec<u8>) -> Ending {
    let (stream, mut received) = RawWebSocket::connect(addr).await.into_parts();
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        let result = writer.write_all(&wire).await;
        if result.is_ok() {
            let close = RawWebSocket::wire(&Frame::close(1000, ""));
            // The server's answer was already sent; its read side discards this.
            let _ = writer.write_all(&close).await;
            let _ = writer.shutdown().await;
        }
        (result, writer)
    });
    let read = within("the server to end the connection", async {
        loop {
            match reader.read_buf(&mut received).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
    })
    .await;
    let (write, _writer) = within("the client's write to end", write)
        .await
        .expect("the writer task panicked");
    let mut frames = Vec::new();
    while let Some(decoded) = decode(&received) {
        received.drain(..decoded.wire_len);
        frames.push(decoded.frame);
    }
    Ending {
        frames,
        read,
        write,
    }
}

/// Runs `case` [`RUNS`] times and fails with every run that did not end
/// with the close code, then end of stream, and a whole write.
async fn lingers(backend: Backend, case: Case) {
    let server = Server::start(backend, SERVER_ARGS).await;
    let mut failures = Vec::new();
    for run in 1..=RUNS {
        let ending = run_once(server.addr(), case.wire.clone()).await;
        let close_then_eof = matches!(
            ending.frames.as_slice(),
            [only] if only.opcode == OpCode::Close && only.close_code() == Some(case.code)
        ) && ending.read.is_ok();
        if !close_then_eof || ending.write.is_err() {
            failures.push(format!("run {run}: {ending:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} of {RUNS} runs did not end with close {} then end of stream \
         and a whole write on {backend:?}:\n{}",
        case.name,
        failures.len(),
        case.code,
        failures.join("\n")
    );
}

async fn close_1009_reaches_the_client(backend: Backend) {
    lingers(backend, message_over_the_cap()).await;
}

async fn close_1007_reaches_the_client(backend: Backend) {
    lingers(backend, invalid_utf8_early()).await;
}

async fn close_1002_reaches_the_client(backend: Backend) {
    lingers(backend, unmasked_then_more()).await;
}

/// A client that keeps sending after the close is cut off at the bound:
/// `--linger-time`, or `--linger-bytes`, whichever comes first. It still
/// reads the close frame and then end of stream (the write side was shut
/// down after the frame); only its writes fail, once the engine closes.
async fn a_client_that_never_stops_is_cut_off_at_the_bound(backend: Backend) {
    let bounds: [(&[&str], Duration); 2] = [
        // The time bound.
        (
            &["--linger-time", "300ms", "--linger-bytes", "1GiB"],
            Duration::from_millis(300),
        ),
        // The byte bound, long before the time bound.
        (
            &["--linger-time", "60s", "--linger-bytes", "256KiB"],
            Duration::ZERO,
        ),
    ];
    for (args, time_bound) in bounds {
        let server = Server::start(backend, args).await;
        let (stream, mut received) = RawWebSocket::connect(server.addr()).await.into_parts();
        let (mut reader, mut writer) = stream.into_split();
        let started = Instant::now();
        let flood = tokio::spawn(async move {
            let mut wire = Frame::binary(b"unmasked".to_vec()).encode_unmasked();
            let chunk = vec![b'z'; 64 * 1024];
            loop {
                if let Err(error) = writer.write_all(&wire).await {
                    return (error, started.elapsed());
                }
                wire.clone_from(&chunk);
            }
        });
        let read = within("the close frame and end of stream", async {
            loop {
                match reader.read_buf(&mut received).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(error) => return Err(error),
                }
            }
        })
        .await;
        let frame = decode(&received).expect("a whole frame before the end of stream");
        assert_eq!(frame.frame.close_code(), Some(PROTOCOL_ERROR), "{args:?}");
        assert!(
            read.is_ok(),
            "{args:?}: reading ended with {read:?}, not end of stream"
        );
        let (error, cut_after) = within("the engine to cut the client off", flood)
            .await
            .expect("the flooding task panicked");
        assert!(
            matches!(
                error.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{args:?}: the client's write failed with {error}"
        );
        // Generous above: a sweep is at most 100 ms, but CI shares two busy
        // cores; the other bound (60 s, or 1 GiB) is far beyond it.
        assert!(
            cut_after >= time_bound && cut_after < time_bound + CUT_OFF_SLACK,
            "{args:?}: cut off after {cut_after:?}, expected {time_bound:?} plus a sweep"
        );
    }
}

/// At shutdown a client in the middle of a large message gets close 1001,
/// then end of stream, and its write completes: the engine lingers until
/// the client is done, well inside `--shutdown-timeout`.
async fn close_1001_at_shutdown_reaches_a_client_mid_message(backend: Backend) {
    let mut server = Server::start(backend, &["--shutdown-timeout", "10s"]).await;
    let (stream, mut received) = RawWebSocket::connect(server.addr()).await.into_parts();
    let (mut reader, mut writer) = stream.into_split();
    // The header and the first half of a 4 MiB message: the engine is
    // inside a frame when it is told to stop.
    let wire = RawWebSocket::wire(&Frame::binary(vec![b'q'; 4 * MIB]));
    let (first, second) = wire.split_at(wire.len() / 2);
    writer.write_all(first).await.expect("the first half");
    server.send_signal(libc::SIGTERM);
    let second = second.to_vec();
    let write = tokio::spawn(async move {
        let result = writer.write_all(&second).await;
        if result.is_ok() {
            let close = RawWebSocket::wire(&Frame::close(1001, ""));
            let _ = writer.write_all(&close).await;
            let _ = writer.shutdown().await;
        }
        (result, writer)
    });
    let read = within("the engine to end the connection", async {
        loop {
            match reader.read_buf(&mut received).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
    })
    .await;
    let (write, _writer) = within("the client's write to end", write)
        .await
        .expect("the writer task panicked");
    let mut frames = Vec::new();
    while let Some(decoded) = decode(&received) {
        received.drain(..decoded.wire_len);
        frames.push(decoded.frame);
    }
    assert!(
        matches!(frames.last(), Some(last) if last.close_code() == Some(1001)),
        "the last frame before the end of stream is not close 1001: {frames:?}"
    );
    assert!(
        read.is_ok(),
        "reading ended with {read:?}, not end of stream"
    );
    assert!(write.is_ok(), "the client's write failed: {write:?}");
    let status = server.wait_for_exit(Duration::from_secs(9)).await;
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

backend_tests!(
    close_1009_reaches_the_client,
    close_1007_reaches_the_client,
    close_1002_reaches_the_client,
    a_client_that_never_stops_is_cut_off_at_the_bound,
    close_1001_at_shutdown_reaches_a_client_mid_message,
);
