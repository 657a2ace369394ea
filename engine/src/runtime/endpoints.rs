//! One worker's HTTP side, on either backend: answering a request (routing,
//! the WebSocket slot when an upgrade is accepted, counting refusals), and
//! the read-only endpoints (`/healthz`, `/metrics`, `/stats`).
//!
//! The backends differ only in how a `/stats` stream sleeps between
//! events: on tokio's timer (epoll) or on the io_uring loop's own timers.
//! That is the one thing a backend supplies ([`WorkerTimer`]).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::http::{self, stats_stream, Observe, Route};
use crate::protocol::deflate::Agreed;
use crate::runtime::shared::{Admission, Shared};
use crate::runtime::shutdown::ShutdownSignal;

/// How a worker's futures sleep.
pub trait WorkerTimer: Clone + 'static {
    /// A future that completes `period` from now.
    fn sleep(&self, period: Duration) -> Pin<Box<dyn Future<Output = ()>>>;
}

/// An upgrade the router accepted: the WebSocket's connection slot and the
/// permessage-deflate parameters the handshake agreed on, if any.
pub struct Accepted {
    /// The slot under `--max-connections`, given back when dropped.
    pub admission: Admission,
    /// permessage-deflate, when agreed.
    pub deflate: Option<Agreed>,
}

/// One worker's HTTP endpoints.
pub struct Endpoints<T> {
    shared: Arc<Shared>,
    worker: usize,
    /// Raised when the worker stops: it ends the `/stats` streams.
    shutdown: Rc<ShutdownSignal>,
    timer: T,
}

impl<T: WorkerTimer> Endpoints<T> {
    /// The endpoints of worker `worker`, whose streams end when `shutdown`
    /// is raised and sleep on `timer`.
    pub fn new(shared: Arc<Shared>, worker: usize, shutdown: Rc<ShutdownSignal>, timer: T) -> Self {
        Self {
            shared,
            worker,
            shutdown,
            timer,
        }
    }

    /// Answers one request: routes it, fills `accepted` (the WebSocket's
    /// slot and its compression) when an upgrade is accepted, and counts
    /// refused upgrades.
    pub fn respond<B>(
        &self,
        request: &hyper::Request<B>,
        accepted: &RefCell<Option<Accepted>>,
    ) -> http::HttpResponse {
        let shared = &self.shared;
        let admission = RefCell::new(None);
        let routed = http::route(
            request,
            &shared.config,
            || {
                let granted = shared.admit(self.worker);
                let ok = granted.is_some();
                *admission.borrow_mut() = granted;
                ok
            },
            self,
        );
        match routed {
            Route::Respond(response) => response,
            Route::Upgrade(response, deflate) => {
                let admission = admission.take().expect("an accepted upgrade was admitted");
                *accepted.borrow_mut() = Some(Accepted { admission, deflate });
                response
            }
            Route::Reject(rejection, response) => {
                shared.workers[self.worker].handshake_rejected(rejection);
                tracing::debug!(
                    ?rejection,
                    path = request.uri().path(),
                    "websocket upgrade refused"
                );
                response
            }
        }
    }
}

/// The read-only endpoints, answered by whichever worker got the request.
impl<T: WorkerTimer> Observe for Endpoints<T> {
    fn health(&self) -> String {
        self.shared.health_json()
    }

    fn metrics(&self) -> String {
        self.shared.metrics_text()
    }

    fn stats(&self) -> http::Body {
        let shared = self.shared.clone();
        let shutdown = self.shutdown.clone();
        let timer = self.timer.clone();
        stats_stream::body(
            move || shared.snapshot(),
            async move { shutdown.wait().await },
            move |period| timer.sleep(period),
        )
    }
}
