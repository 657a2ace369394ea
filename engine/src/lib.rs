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
//! The layers, bottom up:
//! - [`protocol`]: the WebSocket protocol with no I/O in it (in-place decoding);
//! - [`uring`]: the io_uring workers' own loops, which echo in place;
//! - [`listener`]: the `SO_REUSEPORT` listeners;
//! - [`http`] and [`connection`]: routing, the handshake, the upgrade;
//! - the epoll reference: [`echo`] and [`message`] (the fastwebsockets echo
//!   loop and fragment reassembly), [`session`] (keep-alive pings and the
//!   shutdown close, below the codec), [`text_watch`] (fail-fast UTF-8);
//! - [`worker`] and [`server`]: threads, pinning, start and shutdown;
//! - [`config`], [`metrics`], [`shutdown`], [`process`]: options, counters,
//!   signals, process-wide settings; [`fd_limit`]: the file-descriptor
//!   limit, and accepting at it.

pub mod allocator;
pub mod config;
pub mod connection;
pub mod echo;
pub mod fd_limit;
pub mod http;
pub mod listener;
pub mod message;
pub mod metrics;
pub mod process;
pub mod protocol;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod text_watch;
pub mod uring;
pub mod worker;

pub use config::{Config, IoBackend, IoChoice, Options, SocketBuffers};
pub use server::{run, Server, ServerError};
