//! Typed errors of the library part. `main.rs` wraps them in `anyhow`.

use std::io;
use std::path::PathBuf;

/// Everything that can stop a run before or after the load itself.
///
/// Failures *during* the load (refused connections, bad echoes) are not
/// errors of this type: they are counted and reported, and they decide the
/// exit code (see [`crate::report::ExitStatus`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target is not a usable `ws://host:port/path` URL.
    #[error("invalid target URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The options contradict each other or are out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The host name of the target did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// Host and port that were looked up.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// A file (JSON report, hlog) could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An HdrHistogram interval log could not be parsed or encoded.
    #[error("hlog {path}: {reason}")]
    Hlog {
        /// The log file concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A JSON report given to `loadgen merge` cannot be merged.
    #[error("report {path}: {reason}")]
    Report {
        /// The report file concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The Ctrl-C handler could not be installed.
    #[error("cannot handle Ctrl-C (SIGINT): {0}")]
    Signal(io::Error),
    /// The I/O driver asked for (`--io uring`) cannot run here.
    #[error("io_uring is not usable here: {0}")]
    Driver(io::Error),
    /// A worker thread failed (its event loop hit an I/O error it cannot survive).
    #[error("worker {worker}: {source}")]
    Worker {
        /// Index of the worker.
        worker: usize,
        /// The underlying error.
        source: io::Error,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
