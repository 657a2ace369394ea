//! One accepted connection on the epoll backend: HTTP with hyper until a
//! WebSocket upgrade, then the echo loop.
//!
//! hyper's `with_upgrades` needs `Send` I/O, and io_uring streams are
//! per-thread, so the upgrade is done by hand: the service answers 101,
//! `without_shutdown()` hands back the transport and any bytes hyper read past
//! the request, and both go to fastwebsockets.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::rc::Rc;

use bytes::Bytes;
use fastwebsockets::{Role, WebSocket};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::epoll::context::WorkerContext;
use crate::epoll::echo::{self, EchoEnd};
use crate::epoll::linger::linger;
use crate::epoll::session::SessionStream;
use crate::http;
use crate::metrics::RejectReason;
use crate::runtime::endpoints::Accepted;

/// Serves `io` until it closes, the handshake times out or the worker stops.
pub async fn serve<S>(io: S, ctx: Rc<WorkerContext>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    // Boxed so that everything the HTTP phase holds (hyper's buffers and
    // state, the deadline) is freed once the connection is a WebSocket,
    // instead of sizing this task for the connection's whole life.
    let Some(upgraded) = Box::pin(http_phase(io, &ctx)).await else {
        return;
    };
    let guard = ctx.sessions.open();
    let session = guard.session().clone();
    let deflate = upgraded.accepted.deflate;
    let stream = SessionStream::new(
        upgraded.io,
        upgraded.prefix,
        session.clone(),
        deflate.is_some(),
    );
    let mut websocket = WebSocket::after_handshake(stream, Role::Server);
    let end = echo::run(
        &mut websocket,
        session.clone(),
        &ctx.stats,
        ctx.shared.config.max_message_size,
        deflate.map(|agreed| echo::Compression::new(agreed, &ctx.deflate)),
    )
    .await;
    tracing::debug!(?end, "websocket ended");
    drop(guard);
    // The engine sent a close frame of its own (an error, or 1001 at
    // shutdown): the client may still be sending, so linger rather than
    // reset it. The slot under --max-connections is held meanwhile.
    let engine_closed = matches!(end, EchoEnd::Failed(_)) || session.close_sent();
    if let Some(limits) = ctx.shared.config.linger.filter(|_| engine_closed) {
        let mut stream = websocket.into_inner();
        if stream.flush().await.is_ok() {
            // Boxed: an idle WebSocket's task does not carry its state.
            let ended = Box::pin(linger(stream.into_inner(), limits)).await;
            tracing::debug!(?ended, "lingering close ended");
        }
    }
    drop(upgraded.accepted);
}

/// A connection whose upgrade was accepted.
struct Upgraded<S> {
    io: S,
    /// Bytes the client sent after the upgrade request.
    prefix: Bytes,
    accepted: Accepted,
}

/// Serves HTTP until a WebSocket upgrade is accepted (`Some`) or the
/// connection ends, times out or the worker stops (`None`).
async fn http_phase<S>(io: S, ctx: &Rc<WorkerContext>) -> Option<Upgraded<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    // Set by the service when it answers 101: the WebSocket's connection slot.
    let accepted: Rc<RefCell<Option<Accepted>>> = Rc::default();
    let seen_request = Rc::new(Cell::new(false));
    let service = {
        let (ctx, accepted, seen_request) = (ctx.clone(), accepted.clone(), seen_request.clone());
        service_fn(move |request| {
            seen_request.set(true);
            let response = ctx.endpoints.respond(&request, &accepted);
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let timeout = ctx.shared.config.handshake_timeout;
    let mut connection = std::pin::pin!(http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .max_buf_size(http::MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(io), service)
        .without_shutdown());
    // The first request must arrive whole within the handshake timeout;
    // later requests on a keep-alive connection fall under hyper's header
    // read timeout.
    let mut deadline = std::pin::pin!(tokio::time::sleep(timeout));
    let mut deadline_armed = true;
    let parts = loop {
        tokio::select! {
            result = &mut connection => match result {
                Ok(parts) => break parts,
                Err(e) => {
                    if e.is_timeout() {
                        // hyper's header read timeout (the same duration)
                        // may fire before our deadline does.
                        ctx.stats.handshake_rejected(RejectReason::Timeout);
                    }
                    tracing::debug!("http connection ended: {e}");
                    return None;
                }
            },
            _ = &mut deadline, if deadline_armed => {
                if !seen_request.get() {
                    tracing::debug!("handshake timeout: no complete request in {timeout:?}");
                    ctx.stats.handshake_rejected(RejectReason::Timeout);
                    return None;
                }
                deadline_armed = false;
            }
            _ = ctx.shutdown.wait() => return None,
        }
    };
    // None: a plain HTTP connection that the client closed.
    let accepted = accepted.take()?;
    Some(Upgraded {
        io: parts.io.into_inner(),
        // `read_buf` is a view into hyper's whole read buffer; keep only the
        // bytes (usually none) and let the buffer go.
        prefix: Bytes::copy_from_slice(&parts.read_buf),
        accepted,
    })
}
