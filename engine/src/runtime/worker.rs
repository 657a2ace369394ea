//! Starting a worker thread, on either backend: its name, its core, and
//! what it is handed ([`WorkerSpec`]). What runs on the thread is the
//! backend's own loop, chosen by the server.

use std::io;
use std::sync::Arc;

use socket2::Socket;
use tokio::sync::watch;

use crate::runtime::shared::Shared;

/// Everything a worker thread needs to start.
pub struct WorkerSpec {
    /// Worker index (also its slot in `Shared::workers`).
    pub index: usize,
    /// The core to pin to, if pinning.
    pub core: Option<core_affinity::CoreId>,
    /// This worker's `SO_REUSEPORT` listener.
    pub listener: Socket,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Flips to `true` when the server stops.
    pub stop: watch::Receiver<bool>,
    /// Told once the worker accepts, or why it could not start.
    pub ready: std::sync::mpsc::Sender<Result<(), String>>,
}

/// Starts the worker thread `ringecho-w{index}`, pins it to its core, and
/// runs `worker` (a backend's worker loop) on it until the server stops.
pub fn spawn(spec: WorkerSpec, worker: fn(WorkerSpec)) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("ringecho-w{}", spec.index))
        .spawn(move || {
            if let Some(core) = spec.core {
                if !core_affinity::set_for_current(core) {
                    tracing::warn!(worker = spec.index, core = core.id, "could not pin worker");
                }
            }
            worker(spec);
        })
}
