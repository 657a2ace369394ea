//! What one epoll worker's tasks share.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::epoll::session::Sessions;
use crate::metrics::WorkerStats;
use crate::protocol::deflate::WorkerDeflate;
use crate::runtime::endpoints::{Endpoints, WorkerTimer};
use crate::runtime::shared::Shared;
use crate::runtime::shutdown::ShutdownSignal;

/// What one worker's tasks share.
pub struct WorkerContext {
    /// Worker index (also its slot in `Shared::workers`).
    pub index: usize,
    /// State shared with the other workers.
    pub shared: Arc<Shared>,
    /// Open WebSockets of this worker.
    pub sessions: Rc<Sessions>,
    /// This worker's counters (the worker is their only writer).
    pub stats: Arc<WorkerStats>,
    /// Raised when the worker stops.
    pub shutdown: Rc<ShutdownSignal>,
    /// The HTTP endpoints this worker answers.
    pub endpoints: Endpoints<TokioTimer>,
    /// The worker's inflater and deflaters for permessage-deflate, made
    /// when the first connection agrees on it.
    pub deflate: RefCell<Option<Box<WorkerDeflate>>>,
}

/// tokio's timer, for the worker's `/stats` streams.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

impl WorkerTimer for TokioTimer {
    fn sleep(&self, period: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(tokio::time::sleep(period))
    }
}
