//! The io_uring backend: ring mechanics only. Each worker thread runs
//! [`run()`]: its own ring and loop ([`event_loop`]), the provided-buffer
//! ring its connections share ([`buf_ring`]), connection slots ([`conn`]),
//! sends from those buffers ([`outbox`]), and, for the HTTP phase only, a
//! small executor ([`executor`], [`timers`], [`http_io`]). The WebSocket
//! protocol itself is [`crate::protocol`], which has no I/O in it, and so
//! is what each decoded event asks of a connection
//! ([`crate::protocol::plan`]) and where hyper's reads stop
//! ([`crate::http::request_head`]).
//!
//! Why not tokio-uring: it re-arms a poll for every recv (no multishot, no
//! provided-buffer rings), which made it slower than plain tokio here
//! (`results/history.md`, "Why not tokio-uring"). This backend uses the
//! `io-uring` crate directly, as uWebSockets does.

mod buf_ring;
mod conn;
mod event_loop;
mod executor;
mod http_io;
mod outbox;
mod ring;
mod run;
mod timers;

pub use run::run;

/// Checks that this kernel lets us create a ring with the flags and the
/// provided-buffer ring the loop needs (io_uring may be disabled by
/// `kernel.io_uring_disabled`, seccomp in containers, or an old kernel).
pub fn probe() -> std::io::Result<()> {
    let ring = ring::build(8, 16)?;
    let buffers = buf_ring::ProvidedBuffers::new(1, crate::config::MIN_RECEIVE_BUFFER_SIZE)?;
    buffers.register(&ring.submitter())?;
    // The ring closes before the buffers unmap (drop order: ring first).
    drop(ring);
    drop(buffers);
    Ok(())
}
