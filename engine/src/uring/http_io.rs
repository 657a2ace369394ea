//! The HTTP phase on an io_uring worker: hyper serves the connection
//! through [`HttpIo`], an adapter onto the loop's connection slot, until it
//! answers a WebSocket upgrade with 101; then the slot becomes a WebSocket
//! that the loop handles itself (`Loop::upgrade`).
//!
//! hyper's `with_upgrades` needs `Send` I/O and this handle is `!Send` (it
//! lives on its worker's loop), so the upgrade is done by hand as on the
//! epoll backend: `serve_connection(...).without_shutdown()` hands the
//! adapter back with any bytes hyper read past the request.
//! Reads stop at the end of each request head, so those are normally none
//! and the first frames stay in the receive buffers, to be echoed in place.

use std::cell::RefCell;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::server::conn::http1;
use hyper::service::service_fn;

use super::event_loop::SharedLoop;
use super::timers::Timers;
use crate::runtime::endpoints::{Accepted, Endpoints};

/// The HTTP endpoints of an io_uring worker, whose `/stats` streams sleep
/// on the worker's own timers.
pub type UringEndpoints = Endpoints<Rc<Timers>>;

/// hyper's I/O handle for one connection slot of the loop.
pub struct HttpIo {
    event_loop: SharedLoop,
    key: usize,
    generation: u32,
    upgraded: bool,
}

impl HttpIo {
    /// The handle for slot `key` (of `generation`).
    pub fn new(event_loop: SharedLoop, key: usize, generation: u32) -> Self {
        Self {
            event_loop,
            key,
            generation,
            upgraded: false,
        }
    }

    /// Hands the connection to the loop as a WebSocket.
    fn upgrade(mut self, accepted: Accepted, prefix: &[u8]) {
        self.upgraded = true;
        self.event_loop.borrow_mut().upgrade(
            self.key,
            self.generation,
            accepted.admission,
            accepted.deflate,
            prefix,
        );
    }
}

impl Read for HttpIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        self.event_loop
            .borrow_mut()
            .http_read(self.key, self.generation, cx.waker(), &mut buf)
    }
}

impl Write for HttpIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.event_loop.borrow_mut().http_write(
            self.key,
            self.generation,
            cx.waker(),
            &[io::IoSlice::new(buf)],
        )
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.event_loop
            .borrow_mut()
            .http_write(self.key, self.generation, cx.waker(), bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are queued in order; the loop sends them.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection closes once its queued bytes are out (see Drop).
        Poll::Ready(Ok(()))
    }
}

impl Drop for HttpIo {
    fn drop(&mut self) {
        if !self.upgraded {
            self.event_loop
                .borrow_mut()
                .http_done(self.key, self.generation);
        }
    }
}

/// Serves HTTP on `io` until it closes or is upgraded.
pub async fn serve(io: HttpIo, endpoints: Rc<UringEndpoints>) {
    let accepted: Rc<RefCell<Option<Accepted>>> = Rc::default();
    let service = {
        let accepted = accepted.clone();
        service_fn(move |request| {
            let response = endpoints.respond(&request, &accepted);
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let served = http1::Builder::new()
        // The loop enforces the handshake timeout (hyper's needs a timer).
        .header_read_timeout(None)
        .max_buf_size(crate::http::MAX_REQUEST_HEAD)
        .serve_connection(io, service)
        .without_shutdown()
        .await;
    match served {
        Ok(parts) => match accepted.take() {
            Some(accepted) => parts.io.upgrade(accepted, &parts.read_buf),
            // A plain HTTP connection that the client closed.
            None => drop(parts),
        },
        Err(e) => tracing::debug!("http connection ended: {e}"),
    }
}
