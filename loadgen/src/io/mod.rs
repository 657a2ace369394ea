//! The I/O drivers a worker runs on: io_uring, or epoll as the fallback.
//!
//! A worker's logic (connects, pacing, checks, intervals) is written once,
//! over the small [`Driver`] trait; each driver owns the sockets and turns
//! what the kernel did into [`Event`]s:
//!
//! * [`uring`]: one io_uring per worker. Connects are ring operations,
//!   every open socket has one multishot recv into a provided-buffer ring,
//!   the sends of a turn go to the kernel in the same `io_uring_enter` that
//!   waits for the next completions, and the next deadline (a tick, a
//!   connect timeout, an interval end) is a ring timeout. Received bytes are
//!   checked where the kernel put them.
//! * [`epoll`]: `mio` (edge-triggered epoll), non-blocking `recv`/`send`
//!   on each socket into one worker-wide buffer, and a `timerfd` for the
//!   deadline.
//!
//! `--io auto` (the default) takes io_uring when [`probe`] finds it
//! working, and epoll otherwise, with a line on stderr saying why. The
//! report names the driver that ran.

pub mod epoll;
pub mod socket;
pub mod uring;

use std::io;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::interrupt::StopSignal;

/// What the kernel did, as a driver reports it.
#[derive(Debug)]
pub enum Event {
    /// The connect of `slot` completed; the socket is ready to send.
    Connected(usize),
    /// The connect of `slot` failed.
    ConnectFailed(usize, io::Error),
    /// Bytes arrived on `slot` at `at_ns` (monotonic): read them with
    /// [`Driver::received`] before the next call to [`Driver::next_event`].
    Received(usize, u64),
    /// The stream of `slot` ended: an orderly end of stream (`None`) or an
    /// error, from receiving or sending.
    Closed(usize, Option<io::Error>),
    /// Ctrl-C: the stop signal fired.
    Stop,
}

/// A worker's I/O: sockets by the worker's slot number, and its waits.
///
/// A slot holds at most one socket at a time; after [`Driver::close`] the
/// slot may be connected again at once, and no event of the old socket is
/// reported any more.
pub trait Driver: Sized {
    /// Which driver this is.
    const KIND: IoKind;

    /// A driver for one worker thread (created on that thread) with room
    /// for about `connections` sockets; it watches `stop`.
    fn new(connections: usize, stop: &StopSignal) -> io::Result<Self>;

    /// Starts connecting `slot` to `addr`, from `source` when given.
    /// Completes later with [`Event::Connected`] or [`Event::ConnectFailed`].
    fn connect(&mut self, slot: usize, addr: SocketAddr, source: Option<IpAddr>) -> io::Result<()>;

    /// Sends `bytes` on `slot` after anything sent before, and leaves
    /// `bytes` empty (keeping a buffer's capacity, not necessarily its
    /// own). An error here, or later as [`Event::Closed`], ends the stream.
    fn send(&mut self, slot: usize, bytes: &mut Vec<u8>) -> io::Result<()>;

    /// Closes the socket of `slot`, if it has one.
    fn close(&mut self, slot: usize);

    /// Waits until something happened or until `deadline_ns` (monotonic),
    /// whichever is first; then [`Driver::next_event`] reports what happened.
    fn wait(&mut self, deadline_ns: u64) -> io::Result<()>;

    /// The next event of the last wait, if any.
    fn next_event(&mut self) -> Option<Event>;

    /// The bytes of the last [`Event::Received`].
    fn received(&self) -> &[u8];
}

/// The I/O driver a run asks for (`--io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IoChoice {
    /// io_uring when it works here, else epoll.
    #[default]
    Auto,
    /// io_uring, or fail.
    Uring,
    /// epoll.
    Epoll,
}

/// The I/O driver that runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoKind {
    /// io_uring ([`uring`]).
    Uring,
    /// epoll ([`epoll`]).
    Epoll,
}

impl IoKind {
    /// `uring` or `epoll`.
    pub fn name(self) -> &'static str {
        match self {
            IoKind::Uring => "uring",
            IoKind::Epoll => "epoll",
        }
    }
}

/// Picks the driver for `choice`: for `auto`, io_uring if [`probe`]
/// succeeds, else epoll and the reason io_uring was passed over.
pub fn resolve(choice: IoChoice) -> io::Result<(IoKind, Option<String>)> {
    match choice {
        IoChoice::Epoll => Ok((IoKind::Epoll, None)),
        IoChoice::Uring => probe().map(|()| (IoKind::Uring, None)),
        IoChoice::Auto => match probe() {
            Ok(()) => Ok((IoKind::Uring, None)),
            Err(e) => Ok((IoKind::Epoll, Some(e.to_string()))),
        },
    }
}

/// Checks that io_uring does here what the [`uring`] driver needs: a ring
/// with its set-up flags, a provided-buffer ring, and a multishot recv
/// that delivers into it.
pub fn probe() -> io::Result<()> {
    uring::probe()
}
