//! The HTTP response path both backends share: one request in, one response
//! out, with the WebSocket slot taken when an upgrade is accepted.

use std::cell::RefCell;
use std::sync::Arc;

use crate::http::{self, Observe, Route};
use crate::runtime::shared::{Admission, Shared};

/// Answers one request for worker `worker` on either backend: routes it,
/// takes a WebSocket slot into `admission` when an upgrade is accepted, and
/// counts refused upgrades.
pub fn respond<B>(
    request: &hyper::Request<B>,
    shared: &Arc<Shared>,
    worker: usize,
    admission: &RefCell<Option<Admission>>,
    observe: &impl Observe,
) -> http::HttpResponse {
    let routed = http::route(
        request,
        &shared.config,
        || {
            let granted = shared.admit(worker);
            let ok = granted.is_some();
            *admission.borrow_mut() = granted;
            ok
        },
        observe,
    );
    match routed {
        Route::Respond(response) | Route::Upgrade(response) => response,
        Route::Reject(rejection, response) => {
            shared.workers[worker].handshake_rejected(rejection);
            tracing::debug!(
                ?rejection,
                path = request.uri().path(),
                "websocket upgrade refused"
            );
            response
        }
    }
}
