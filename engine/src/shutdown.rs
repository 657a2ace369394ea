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

    /// Whether the flag is raised.
    pub fn is_triggered(&self) -> bool {
        self.triggered.get()
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

/// Waits for SIGINT or SIGTERM and returns the signal's name.
pub async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    })
}
