//! Engine counters shared between workers and the HTTP endpoints.
//!
//! Each worker writes only its own [`WorkerStats`] (cache-line aligned, so
//! workers never contend on a line); readers such as `/healthz` sum them.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::config::IoBackend;

/// Counters one worker owns.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerStats {
    /// The core this worker is pinned to, if pinned.
    pub cpu: Option<usize>,
    open_websockets: AtomicUsize,
}

impl WorkerStats {
    /// Stats for a worker pinned to `cpu` (or unpinned).
    pub fn new(cpu: Option<usize>) -> Self {
        Self {
            cpu,
            open_websockets: AtomicUsize::new(0),
        }
    }

    /// WebSockets currently open on this worker.
    pub fn open_websockets(&self) -> usize {
        self.open_websockets.load(Ordering::Relaxed)
    }

    /// Called by the owning worker when a WebSocket opens.
    pub fn websocket_opened(&self) {
        self.open_websockets.fetch_add(1, Ordering::Relaxed);
    }

    /// Called by the owning worker when a WebSocket closes.
    pub fn websocket_closed(&self) {
        self.open_websockets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One worker's line in the `/healthz` report.
#[derive(Debug, Serialize)]
pub struct WorkerHealth {
    /// Worker index.
    pub worker: usize,
    /// Pinned core, if any.
    pub cpu: Option<usize>,
    /// Open WebSockets.
    pub connections: usize,
}

/// The `/healthz` body.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always "ok" while the engine serves requests.
    pub status: &'static str,
    /// The io backend in use.
    pub io: IoBackend,
    /// Per-worker state.
    pub workers: Vec<WorkerHealth>,
}

impl Health {
    /// Snapshot of all workers.
    pub fn collect(io: IoBackend, workers: &[WorkerStats]) -> Self {
        Self {
            status: "ok",
            io,
            workers: workers
                .iter()
                .enumerate()
                .map(|(worker, stats)| WorkerHealth {
                    worker,
                    cpu: stats.cpu,
                    connections: stats.open_websockets(),
                })
                .collect(),
        }
    }
}
