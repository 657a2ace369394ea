//! What every worker of the engine shares, on either backend: the
//! configuration, the per-worker counters, the file-descriptor reserve, and
//! the admission of WebSockets under `--max-connections`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{Config, IoBackend};
use crate::metrics::{self, EngineInfo, EngineSnapshot, Health, WorkerStats};
use crate::runtime::fd_limit::OutOfFds;

/// State every worker can read.
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The backend all workers run.
    pub backend: IoBackend,
    /// One entry per worker, written only by that worker.
    pub workers: Vec<Arc<WorkerStats>>,
    /// The engine's facts for `/metrics` and `/stats`.
    pub info: EngineInfo,
    /// The reserve descriptors and the warning for running out of file
    /// descriptors, shared by all workers.
    pub out_of_fds: OutOfFds,
    /// Open WebSockets across workers (touched once per connection).
    open_websockets: AtomicUsize,
    /// Set before the workers are told to stop, so that no worker admits a
    /// new WebSocket once shutdown has begun, however late it notices.
    stopping: AtomicBool,
}

impl Shared {
    /// The shared state of an engine about to start its workers, one
    /// [`WorkerStats`] block per entry of `workers`.
    pub fn new(
        config: Config,
        backend: IoBackend,
        workers: Vec<Arc<WorkerStats>>,
        out_of_fds: OutOfFds,
    ) -> Self {
        Self {
            info: EngineInfo::new(&config, backend),
            config,
            backend,
            workers,
            out_of_fds,
            open_websockets: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
        }
    }

    /// From now on no WebSocket is admitted (shutdown has begun).
    pub fn stop_admitting(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Takes a WebSocket slot under `--max-connections` for worker `worker`;
    /// `None` (answered with 503) when full or shutting down.
    pub fn admit(self: &Arc<Self>, worker: usize) -> Option<Admission> {
        if self.stopping.load(Ordering::Acquire) {
            return None;
        }
        let previous = self.open_websockets.fetch_add(1, Ordering::AcqRel);
        if self
            .config
            .max_connections
            .is_some_and(|max| previous >= max)
        {
            self.open_websockets.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.workers[worker].websocket_opened();
        Some(Admission {
            shared: self.clone(),
            worker,
        })
    }

    /// The `/healthz` JSON body.
    pub fn health_json(&self) -> String {
        serde_json::to_string(&Health::collect(self.backend, &self.workers))
            .expect("health serialises")
    }

    /// Every worker's counters now.
    pub fn snapshot(&self) -> EngineSnapshot {
        EngineSnapshot::take(&self.info, &self.workers)
    }

    /// The `/metrics` body (OpenMetrics text).
    pub fn metrics_text(&self) -> String {
        metrics::prometheus::encode(self.snapshot())
    }
}

/// An open WebSocket's slot; released on drop.
pub struct Admission {
    shared: Arc<Shared>,
    worker: usize,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.shared.workers[self.worker].websocket_closed();
        self.shared.open_websockets.fetch_sub(1, Ordering::AcqRel);
    }
}
