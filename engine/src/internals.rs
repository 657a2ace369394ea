//! The engine's internals that the fuzz targets (`engine/fuzz`) and the
//! micro-benchmarks (`bench/benches`) drive directly, exactly as the
//! workers do, without a socket in between.
//!
//! Everything else in the crate is `pub(crate)`: the public API is the
//! configuration ([`crate::config`]) and starting the engine
//! ([`crate::run`], [`crate::Server`]). This module is not a stable API;
//! it changes with the engine, and lists exactly what code outside the
//! crate reaches, so that a refactor knows what it must keep.

/// The sans-IO WebSocket protocol: frame headers and our own frames, the
/// in-place decoder, the echo planning of the io_uring loop, and
/// permessage-deflate.
pub mod protocol {
    pub use crate::protocol::{deflate, frame, plan, DataFrame, Decoder, Event};
}

/// The HTTP side: the router both backends use, the handshake key, and
/// the request-head scan that stops hyper's reads.
pub mod http {
    pub use crate::http::{accept_key, request_head, route, Body, Observe, Route};
}

/// The counters the echo paths update and the reasons an upgrade is refused.
pub mod metrics {
    pub use crate::metrics::{RejectReason, WorkerStats};
}

/// The epoll backend's echo loop and the session stream under its codec.
pub mod epoll {
    pub use crate::epoll::{echo, session};
}
