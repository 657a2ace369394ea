//! Accepting: the multishot accept on the worker's listener, and what a
//! failed accept does (running out of descriptors backs off to the next tick).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{cqueue, opcode, types};

use super::ops::{user_data, Op};
use super::Loop;
use crate::runtime::fd_limit;
use crate::uring::conn::Conn;

impl Loop {
    pub(super) fn arm_accept(&mut self) {
        let Some(listener) = self.listener.as_ref() else {
            return;
        };
        if self.accept_armed || self.accept_backing_off || self.stopping || self.exiting {
            return;
        }
        let entry = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
            .build()
            .user_data(user_data(0, Op::Accept));
        self.accept_armed = true;
        self.push(entry);
    }

    pub(super) fn complete_accept(&mut self, result: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.accept_armed = false;
        }
        if result >= 0 {
            // SAFETY: a non-negative accept result is a new fd nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(result) };
            if self.stopping || self.listener.is_none() {
                return;
            }
            if let Err(e) = socket2::SockRef::from(&fd).set_nodelay(true) {
                tracing::debug!("TCP_NODELAY: {e}");
            }
            let deadline = self.now_ms + self.limits.handshake_timeout_ms;
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1);
            let key = self.conns.insert(Conn::new(fd, deadline, generation));
            self.accepted.push((key, generation));
            self.arm_recv(key);
        } else if -result == libc::ECANCELED {
            self.listener = None;
        } else {
            self.accept_failed(io::Error::from_raw_os_error(-result));
        }
    }

    /// A failed accept. The kernel takes the new connection's descriptor
    /// before it looks for a connection, so out of descriptors the
    /// multishot ends with `EMFILE` even when none is pending, and a
    /// re-armed one fails at once: it is re-armed on the next tick, after
    /// the pending connections have been dropped (see [`crate::runtime::fd_limit`]).
    /// Other errors re-arm at once (a connection reset in the backlog) or
    /// on the next tick.
    pub(super) fn accept_failed(&mut self, error: io::Error) {
        if fd_limit::is_exhaustion(&error) {
            let dropped = self.shared.out_of_fds.shed_pending(self.worker, &error);
            self.stats.connections_dropped(dropped);
            self.accept_backing_off = true;
        } else if fd_limit::is_per_connection(&error) {
            tracing::debug!("accept: {error}");
            self.arm_accept();
        } else {
            tracing::warn!("accept failed: {error}; retrying on the next tick");
            self.accept_backing_off = true;
        }
    }
}
