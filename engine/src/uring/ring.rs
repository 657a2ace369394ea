//! Creating a worker's ring with the flags that decide how completions reach
//! us, shared by the loop and the start-up probe so both ask the kernel for
//! the same thing.
//!
//! Preferred: `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG` (Linux 6.1+).
//! With `DEFER_TASKRUN` the kernel queues completion work on a list that
//! only our own `io_uring_enter(GETEVENTS)` runs: the worker is never
//! interrupted by task work, and its one enter per turn both submits and
//! collects (see [`super::event_loop`]).
//!
//! Fallback: `SINGLE_ISSUER | COOP_TASKRUN | TASKRUN_FLAG` for kernels
//! that refuse `DEFER_TASKRUN` (`EINVAL`).
//!
//! `TASKRUN_FLAG` makes the kernel raise `IORING_SQ_TASKRUN` whenever
//! completion work is waiting, so a turn that must not wait can skip
//! `io_uring_enter` when there is nothing to submit and nothing flagged.

use std::io;

use io_uring::IoUring;

/// How the kernel runs a ring's completion work (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskRun {
    /// `DEFER_TASKRUN`: only our own `io_uring_enter(GETEVENTS)` runs it.
    Deferred,
    /// `COOP_TASKRUN`: it runs when the thread next enters or leaves the kernel.
    Cooperative,
}

/// Builds a ring with `sq_entries` submission entries and `cq_entries`
/// completion entries, deferred task work if the kernel has it.
pub fn build(sq_entries: u32, cq_entries: u32) -> io::Result<IoUring> {
    match build_with(sq_entries, cq_entries, TaskRun::Deferred) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::debug!("io_uring: DEFER_TASKRUN refused ({e}); using COOP_TASKRUN");
            build_with(sq_entries, cq_entries, TaskRun::Cooperative)
        }
        other => other,
    }
}

/// Builds a ring with the given task-run mode and no fallback.
pub fn build_with(sq_entries: u32, cq_entries: u32, mode: TaskRun) -> io::Result<IoUring> {
    let mut builder = IoUring::builder();
    builder
        .setup_single_issuer()
        .setup_taskrun_flag()
        .setup_cqsize(cq_entries);
    match mode {
        TaskRun::Deferred => builder.setup_defer_taskrun(),
        TaskRun::Cooperative => builder.setup_coop_taskrun(),
    };
    builder.build(sq_entries)
}
