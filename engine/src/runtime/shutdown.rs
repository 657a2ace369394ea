//! Graceful shutdown: the process-level signal wait and the worker-local flag
//! that HTTP-phase connections watch.

use std::cell::Cell;

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
