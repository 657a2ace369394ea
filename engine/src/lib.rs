//! ringecho: a thread-per-core io_uring WebSocket echo engine for Linux.
//!
//! One worker per core, each pinned, each with its own `SO_REUSEPORT`
//! listener and its own io_uring ring (or tokio's epoll reactor with
//! `--io epoll`). HTTP runs on hyper on both backends. On io_uring a worker
//! owns its loop and echoes WebSocket frames in place in the receive
//! buffers ([`protocol`] decodes them, with fastwebsockets' `unmask` and
//! frame types); the epoll backend runs the fastwebsockets echo loop and is
//! the reference the io_uring path is held to.
//!
//! The layers, bottom up; each imports only the layers below it:
//! - no I/O: [`protocol`] (frames, the in-place decoder, UTF-8, close
//!   codes, echo planning), [`http`] (routing, the handshake, the page,
//!   `/stats`, the request-head scan), [`metrics`] and [`config`];
//! - [`runtime`]: what both backends share (the shared state and
//!   admission, worker threads and pinning, the HTTP response path,
//!   listeners, file-descriptor limits, signals);
//! - the two backends, side by side, neither importing the other:
//!   [`uring`] (the ring, the buffer ring, connection slots, the event
//!   loop) and [`epoll`] (tokio and the fastwebsockets echo loop);
//! - [`server`]: bind, choose the backend, spawn the workers, signals and
//!   shutdown.
//!
//! The public API is [`config`] and [`run`] (or [`Server`]); every other
//! module is `pub(crate)`. The fuzz targets and the micro-benchmarks reach
//! the few internals they drive through [`internals`].

pub mod config;
pub(crate) mod epoll;
pub(crate) mod http;
pub mod internals;
pub(crate) mod metrics;
pub(crate) mod protocol;
pub(crate) mod runtime;
pub(crate) mod server;
pub(crate) mod uring;

pub use config::{Config, IoBackend, IoChoice, Options, SocketBuffers};
pub use server::{run, Server, ServerError};
