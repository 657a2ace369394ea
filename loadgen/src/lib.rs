//! `loadgen`: a WebSocket load generator for echo servers, built to measure
//! what a real-time game would feel.
//!
//! In the tradition of wrk2 and tcpkali: closed-loop throughput runs that
//! reproduce the fastwebsockets/uWebSockets published numbers, and open-loop
//! runs at game tick rates whose latency is corrected for coordinated
//! omission. Every echo is checked. Latency goes into HdrHistograms,
//! reported as percentiles and optionally logged as a standard interval
//! log that `loadgen merge` (or any HdrHistogram tool) can combine.
//!
//! Layers, top to bottom:
//!
//! * [`cli`] turns options (and a [`presets`] entry) into a [`config::RunConfig`];
//!   [`usage`] is the command-line contract (exit codes, one-line errors,
//!   output paths checked first) that `tune` and the bench binaries share.
//! * [`run`] is the coordinator: picks the I/O driver, spawns the
//!   [`worker`]s, adds up their [`stats`] each interval, shows
//!   [`progress`], and writes the [`report`] (with loadgen's own
//!   [`ceiling`]) and the [`hlog`]; [`interrupt`] turns Ctrl-C into an
//!   early, orderly end.
//! * [`worker`] is one pinned thread over its own I/O driver; it paces
//!   messages with the [`closed`] or [`open`] loop over its [`conn`]s; both
//!   queue messages through a [`pacing::SendCtx`].
//! * [`io`] holds the drivers behind one small trait: io_uring
//!   ([`io::uring`], the default) and epoll ([`io::epoll`], the fallback).
//!   A driver owns the sockets and hands received bytes over where they
//!   landed.
//! * [`conn`] is a connection's WebSocket side, with no I/O: the
//!   [`handshake`], the masked frames out ([`codec`]), and the frames in,
//!   read as they land ([`frames`]) and checked in place against the
//!   worker's payload template ([`payload`]), inflated first when the
//!   server compressed them ([`deflate`]). [`clock`] gives time and a
//!   precise timer, [`sys`] the raw `send`/`recv`.
//! * For loads from several hosts: [`reconnect`] (`--reconnect`),
//!   [`start_at`] (a start barrier), and [`report_merge`], which combines
//!   JSON reports through the histograms they carry ([`histogram_b64`]).
//!   [`reasons`] counts failures, losses and drops by reason.
//!
//! [`soak`] (`loadgen soak`) is the long-run mode built on the same
//! drivers, [`conn`]s and [`stats`]: thousands of WebSockets with a game
//! host's traffic mix and churn, every echo and every close checked,
//! latency over time. [`nofile`] raises the open-files limit at start.

pub mod ceiling;
pub mod cli;
pub mod clock;
pub mod closed;
pub mod codec;
pub mod config;
pub mod conn;
pub mod deflate;
pub mod error;
pub mod frames;
pub mod handshake;
pub mod histogram_b64;
pub mod hlog;
pub mod interrupt;
pub mod io;
pub mod nofile;
pub mod open;
pub mod pacing;
pub mod payload;
pub mod presets;
pub mod progress;
pub mod reasons;
pub mod reconnect;
pub mod report;
pub mod report_merge;
pub mod run;
pub mod soak;
pub mod start_at;
pub mod stats;
pub mod sys;
pub mod target;
pub mod usage;
pub mod worker;

pub use error::{Error, Result};
