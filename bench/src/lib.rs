//! `bench`: how ringecho is measured against the servers a user would
//! otherwise pick.
//!
//! * [`harness`]: start a pinned echo server, drive it with a pinned
//!   `loadgen`, read the server's CPU time, RSS and open connections from
//!   `/proc`. Shared by the `compare` binary and the `tune` sweep.
//! * [`compare`]: the side-by-side runner behind the `compare` binary.
//! * [`floor`]: the project's C floor server: its source and its build.
//! * [`held_core`]: holding a server to a share of its core (a cgroup v1
//!   CPU quota), so closed-loop msg/s ranks capacity, not the client.
//! * [`machine`]: the machine, kernel and commit every results file names
//!   (`compare`, `microbench_table` and `tune` all use it).
//! * [`micro`]: replayed client frames for the criterion micro-benchmarks.
//! * [`peer`]: what the peer servers (`fws_echo`, `tungstenite_echo`) share:
//!   options, the start-up line, SIGTERM handling.
//! * [`priority`]: the niceness of measured processes on a shared machine.
//! * [`provenance`]: the commit stamped into the CSV, SVG and JSON files a
//!   measurement writes beside its report.
//! * [`soak`]: the soak runner behind the `soak` binary (many WebSockets
//!   for a long time on both backends; nothing lost, nothing leaked).

pub mod compare;
pub mod floor;
pub mod harness;
pub mod held_core;
pub mod log_axis;
pub mod machine;
pub mod micro;
pub mod peer;
pub mod priority;
pub mod provenance;
pub mod soak;

pub use harness::{
    measure_closed, measure_fixed_rate_cpu, measure_idle_rss, measure_latency, measure_preset,
    Binaries, Build, HarnessError, IdleRss, Loadgen, LoadgenRun, Measurement, RunningServer,
    ServerSpec, Window,
};
