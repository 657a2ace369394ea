//! The io_uring backend: a per-worker [`Reactor`] and the [`UringStream`]
//! adapter that lets hyper and fastwebsockets run on it.
//!
//! Why not tokio-uring: it re-arms a poll for every recv (no multishot, no
//! provided-buffer rings) and measured 0.75x plain tokio here (DESIGN.md).
//! This backend uses the `io-uring` crate directly, as uWebSockets does.

mod buf_ring;
mod conn;
mod event_loop;
mod executor;
mod http_io;
mod outbox;
mod reactor;
mod ring;
mod run;
mod stream;
mod timers;
mod wakeup;

pub use reactor::Reactor;
pub use run::run;
pub use stream::UringStream;

/// Checks that this kernel lets us create a ring with the flags and the
/// provided-buffer ring the reactor needs (io_uring may be disabled by
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
