//! `bench`: how ringecho is measured against the servers a user would
//! otherwise pick.
//!
//! * [`harness`]: start a pinned echo server, drive it with a pinned
//!   `loadgen`, read the server's CPU time, RSS and open connections from
//!   `/proc`. Shared by the `compare` binary and the `tune` sweep.
//! * [`peer`]: what the peer servers (`fws_echo`, `tungstenite_echo`) share:
//!   options, the start-up line, SIGTERM handling.

pub mod harness;
pub mod peer;

pub use harness::{
    measure_closed, measure_fixed_rate_cpu, measure_idle_rss, measure_latency, Binaries, Build,
    HarnessError, Loadgen, Measurement, RunningServer, ServerSpec, Window,
};
