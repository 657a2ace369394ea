//! The side-by-side comparison runner behind `compare`: ringecho on
//! io_uring and on epoll against the servers a user would otherwise pick
//! (the fastwebsockets example, tokio-tungstenite), each pinned to its own
//! CPU with loadgen on another, every point repeated and reported as the
//! median.
//!
//! * [`plan`]: the servers and the scenarios, and how long each point takes;
//! * [`run`]: runs every point in an interleaved order, with a progress bar;
//! * [`stats`]: medians and ratios over the repeats;
//! * [`output`]: `compare.md` and `compare.csv`;
//! * [`chart`]: one SVG bar chart per published case;

pub mod chart;
pub mod output;
pub mod plan;
pub mod run;
pub mod stats;
