//! The stream adapter: a tokio `AsyncRead`/`AsyncWrite` over a reactor socket.
//!
//! hyper (through `TokioIo`) and fastwebsockets both speak tokio's I/O traits,
//! so this is the seam between them and the ring. Reads copy out of the
//! provided buffers the ring already filled; writes append to the socket's
//! pending bytes, which the reactor sends at the end of the loop turn. The
//! handle is `!Send` on purpose: the socket lives on its worker's ring.

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::reactor::Reactor;

/// An accepted TCP connection driven by a worker's io_uring [`Reactor`].
pub struct UringStream {
    reactor: Rc<Reactor>,
    key: usize,
}

impl UringStream {
    /// Hands `fd` to `reactor` and starts receiving on it.
    pub fn new(reactor: Rc<Reactor>, fd: OwnedFd) -> Self {
        let key = reactor.register(fd);
        Self { reactor, key }
    }
}

impl AsyncRead for UringStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.reactor.poll_read(self.key, cx, buf)
    }
}

impl AsyncWrite for UringStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.reactor
            .poll_write(self.key, cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.reactor.poll_write(self.key, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.reactor.poll_flush(self.key, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.reactor.poll_shutdown(self.key, cx)
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        self.reactor.release(self.key);
    }
}
