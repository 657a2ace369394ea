//! The epoll backend: tokio's reactor and the fastwebsockets echo loop, the
//! reference every test and the differential test hold the io_uring
//! backend to.
//!
//! Each worker runs one tokio current-thread runtime ([`run`]):
//! - [`worker`]: accepting, one task per connection, the drain at shutdown;
//! - [`context`]: what a worker's tasks share;
//! - [`connection`]: hyper's HTTP phase, then the upgrade by hand;
//! - [`echo`]: the fastwebsockets echo loop, and close frames;
//! - [`linger`]: the lingering close once the engine has sent its close
//!   frame (end of stream after it, never a reset);
//! - [`message`]: reassembly of fragmented messages, with their checks;
//! - [`session`]: keep-alive pings, pong and backpressure deadlines and
//!   the shutdown close, written below the codec;
//! - [`text_watch`]: fail-fast UTF-8 and the unmasked-frame check, in the
//!   byte stream under the codec.

pub mod connection;
pub mod context;
pub mod echo;
pub mod linger;
pub mod message;
pub mod session;
pub mod text_watch;
pub mod worker;

use tokio::task::LocalSet;

use crate::runtime::worker::WorkerSpec;

/// Runs one epoll worker on the calling thread until the server stops: a
/// tokio current-thread runtime with its tasks on a [`LocalSet`].
pub fn run(spec: WorkerSpec) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = spec
                .ready
                .send(Err(format!("worker {}: runtime: {e}", spec.index)));
            return;
        }
    };
    LocalSet::new().block_on(&runtime, worker::run(spec));
}
