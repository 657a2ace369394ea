//! `tune`: which receive-buffer settings give a game workload the best tail
//! latency, and what they cost in memory.
//!
//! The sweep runs the real `ringecho` (pinned to one core) against the real
//! `loadgen` (pinned to another) through the shared measurement harness of
//! the `bench` crate, for every point of a grid of receive-buffer sizes,
//! ring counts, io backends and optionally kernel socket buffers, each
//! repeated. It writes a CSV row per run as soon as it is measured, then a
//! Markdown report, three SVG plots and a recommendation.
//!
//! Modules, in the order a sweep uses them:
//! - [`workload`]: the traffic (a loadgen preset or explicit values);
//! - [`plan`]: the settings, the run order and the time estimate;
//! - [`measure`]: one run of one setting on the harness;
//! - [`sample`]: a run's figures and the CSV they go to;
//! - [`summary`]: medians and repeat spread per setting;
//! - [`recommend`]: the rule that picks a setting, and its reasons;
//! - [`report`] and [`plot`]: the Markdown file and the SVG plots;
//! - [`progress`], [`interrupt`], [`priority`] and [`provenance`]: progress
//!   with an ETA, Ctrl-C, the niceness of the measured processes, and the
//!   commit and machine a result came from;
//! - [`sweep`]: the loop that ties them together.

pub mod cli;
pub mod interrupt;
pub mod measure;
pub mod plan;
pub mod plot;
pub mod priority;
pub mod progress;
pub mod provenance;
pub mod recommend;
pub mod report;
pub mod sample;
pub mod summary;
pub mod sweep;
pub mod workload;
