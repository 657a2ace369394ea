//! Shared harness for the integration tests: they all run the real
//! `ringecho` binary and talk to it over loopback TCP.
//!
//! - [`server`] starts the binary and finds its address in the log.
//! - [`http`] speaks just enough raw HTTP/1.1 to check status lines and headers.
//! - [`frames`] and [`raw_ws`] build and parse WebSocket frames by hand, for
//!   the protocol cases a well-behaved client library refuses to produce.
//! - [`ws`] wraps tokio-tungstenite for the ordinary, well-behaved cases.
//! - [`loadgen`] builds and finds the load generator.
//! - [`metrics`] scrapes and parses `/metrics`.
//! - [`procfs`] reads the server's open fds, CPU time and memory from `/proc`.
//! - [`nginx`] runs a real nginx in front of the server.
//! - [`haproxy`] runs a real HAProxy with `deploy/haproxy/ringecho.cfg`;
//!   [`tls`] makes the certificates for its `wss://`; [`netns`] builds
//!   private networks of namespaces for the multi-host test.
//!
//! Every network wait goes through [`within`], so a misbehaving server fails
//! a test instead of hanging it.

// Each test binary compiles its own copy of this module and uses only part
// of it; what one binary leaves unused another one needs.
#![allow(dead_code)]

pub mod frames;
pub mod haproxy;
pub mod http;
pub mod loadgen;
pub mod metrics;
pub mod netns;
pub mod nginx;
pub mod process;
pub mod procfs;
pub mod raw_ws;
pub mod server;
pub mod tls;
pub mod ws;

use std::future::Future;
use std::time::Duration;

/// The longest any single network wait may take before the test fails.
pub const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

/// The I/O backend the server is asked to use (`--io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// io_uring: multishot accept and recv with provided buffers.
    Uring,
    /// Plain epoll, the fallback when io_uring is unavailable.
    Epoll,
}

impl Backend {
    /// The value for `--io`, which is also the name the server reports in its
    /// startup line (`io=...`) and in `/healthz`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }
}

/// Awaits `future`, failing the test if it takes longer than
/// [`NETWORK_TIMEOUT`]. `what` names the awaited event in the failure message.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(NETWORK_TIMEOUT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {NETWORK_TIMEOUT:?} waiting for {what}"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or fails the test after
/// [`NETWORK_TIMEOUT`]. For state the server updates asynchronously, such as
/// connection counts.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Declares one `#[tokio::test]` per backend for each listed
/// `async fn name(backend: Backend)`. The generated tests are named
/// `name::uring` and `name::epoll`, so `cargo test epoll` selects a backend.
#[allow(unused_macros)] // not every test binary runs per backend
macro_rules! backend_tests {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn uring() {
                super::$test($crate::common::Backend::Uring).await;
            }

            #[tokio::test]
            async fn epoll() {
                super::$test($crate::common::Backend::Epoll).await;
            }
        }
    )+};
}
#[allow(unused_imports)]
pub(crate) use backend_tests;
