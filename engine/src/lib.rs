//! ringecho: a thread-per-core io_uring WebSocket echo engine for Linux.
//!
//! One worker per core, each pinned, each with its own `SO_REUSEPORT`
//! listener and its own io_uring ring (or tokio's epoll reactor with
//! `--io epoll`). HTTP runs on hyper, WebSockets on fastwebsockets.
//!
//! The layers, bottom up:
//! - [`uring`]: the io_uring reactor and its tokio stream adapter;
//! - [`listener`]: the `SO_REUSEPORT` listeners;
//! - [`session`]: keep-alive pings and the shutdown close, below the codec;
//! - [`text_watch`]: fail-fast UTF-8 checks of text frames as bytes arrive;
//! - [`http`] and [`connection`]: routing, the handshake, the upgrade;
//! - [`echo`] and [`message`]: the echo loop and fragment reassembly;
//! - [`worker`] and [`server`]: threads, pinning, start and shutdown;
//! - [`config`], [`metrics`], [`shutdown`]: options, counters, signals.

pub mod config;
pub mod connection;
pub mod echo;
pub mod http;
pub mod listener;
pub mod message;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod text_watch;
pub mod uring;
pub mod worker;

pub use config::{Config, IoBackend, IoChoice, Options, SocketBuffers};
pub use server::{run, Server, ServerError};
