//! Graceful shutdown: the process-level signal wait, the worker-local flag
//! that HTTP-phase connections watch, and the bound on a worker's drain.

use std::cell::Cell;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// A worker-local, one-shot "stop now" flag that tasks can await.
#[derive(Debug, Default)]
pub struct ShutdownSignal {
    triggered: Cell<bool>,
    notify: Notify,
}

impl ShutdownSignal {
    /// Raises the flag and wakes every waiter.
    pub fn trigger(&self) {
        self.triggered.set(true);
        self.notify.notify_waiters();
    }

    /// Completes once the flag is raised (at once if it already is).
    pub async fn wait(&self) {
        let notified = self.notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if self.triggered.get() {
            return;
        }
        notified.await;
    }
}

/// A worker's graceful shutdown, bounded by `--shutdown-timeout`: when it
/// gives up on connections that did not close, and what it says then.
#[derive(Debug, Clone, Copy)]
pub struct Drain {
    deadline: Instant,
}

impl Drain {
    /// A drain that began at `now` and may last `timeout`.
    pub fn start(now: Instant, timeout: Duration) -> Self {
        Self {
            deadline: now + timeout,
        }
    }

    /// When the drain gives up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the drain's time is up at `now`.
    pub fn is_over(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// Logs that worker `worker` drops its `open` connections that did not
    /// close in time.
    pub fn give_up(&self, worker: usize, open: usize) {
        tracing::warn!(
            worker,
            open,
            "shutdown timeout: dropping connections that did not close"
        );
    }
}

/// SIGINT and SIGTERM, caught from the moment this is created (so a signal
/// sent right after the start-up line is never fatal).
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers. Must run inside a tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
