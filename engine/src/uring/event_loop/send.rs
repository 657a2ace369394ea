//! Sending and closing: one send in flight per connection carrying what it
//! has committed, partial sends resumed from a copy, and a connection
//! removed (its fd closed) only once nothing names it any more.

use std::os::fd::AsRawFd;

use io_uring::types;

use super::ops::{user_data, Op};
use super::Loop;
use crate::uring::conn::{Phase, RecvState};

impl Loop {
    /// Submits one send carrying `key`'s committed pieces.
    pub(super) fn start_send(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.inflight.is_some() || conn.committed == 0 {
            return;
        }
        let Some(mut queued) = conn.queued.take() else {
            return;
        };
        let mut sending = if conn.committed as usize == queued.len() {
            queued
        } else {
            // Keep the uncommitted tail (a text frame still arriving) queued.
            let mut rest = self.outboxes.take();
            queued.split_off_into(conn.committed as usize, &mut rest);
            conn.queued = Some(rest);
            queued
        };
        conn.committed = 0;
        conn.committed_bytes = 0;
        if conn.peer_slow {
            sending.spill(usize::MAX, &mut self.buffers);
        }
        let entry = sending
            .send_entry(types::Fd(conn.fd.as_raw_fd()), &self.buffers)
            .user_data(user_data(key, Op::Send));
        conn.inflight = Some(sending);
        conn.ops += 1;
        self.push(entry);
    }

    pub(super) fn complete_send(&mut self, key: usize, result: i32) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.ops -= 1;
        let mut sent = conn
            .inflight
            .take()
            .expect("a send completion has its outbox");
        if result > 0 && !self.exiting {
            sent.advance(result as usize, &mut self.buffers);
        } else {
            // A failed (or zero-byte) send: the connection is gone.
            sent.clear(&mut self.buffers);
            self.outboxes.give(sent);
            self.close_now(key);
            self.maybe_remove(key);
            return;
        }
        if sent.is_empty() {
            self.conns[key].peer_slow = false;
            self.outboxes.give(sent);
            self.commit_if_listed(key);
        } else {
            // A partial send: the peer's window is full. The rest goes first,
            // at once, from a copy, so the receive ring is not held by a
            // peer that does not read.
            let conn = &mut self.conns[key];
            conn.peer_slow = true;
            sent.spill(usize::MAX, &mut self.buffers);
            let committed = conn.committed as usize;
            if let Some(queued) = conn.queued.as_mut() {
                if queued.spill(committed, &mut self.buffers) {
                    conn.committed = 1;
                }
            }
            let entry = sent
                .send_entry(types::Fd(conn.fd.as_raw_fd()), &self.buffers)
                .user_data(user_data(key, Op::Send));
            conn.inflight = Some(sent);
            conn.ops += 1;
            self.push(entry);
        }
        let max = self.limits.max_backpressure;
        let conn = &mut self.conns[key];
        if conn.unsent() <= max / 2 {
            conn.over_cap_since_ms = None;
            self.resume_if_drained(key);
        }
        if let Phase::Http(http) = &mut self.conns[key].phase {
            if let Some(writer) = http.writer.take() {
                writer.wake();
            }
        }
        self.shut_write_once_sent(key);
        self.maybe_remove(key);
    }

    /// After a send completed: list the connection again if it has
    /// committed output waiting.
    pub(super) fn commit_if_listed(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.committed > 0 {
            self.to_send.list(key, &mut conn.send_listed);
        }
    }

    /// Stops receiving; the connection closes once its output is sent.
    pub(super) fn begin_close(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.closing {
            return;
        }
        conn.closing = true;
        if conn.recv == RecvState::Armed {
            conn.recv = RecvState::Cancelling;
            self.cancel(user_data(key, Op::Recv));
        }
    }

    /// Drops the connection without sending what is queued (EOF, errors,
    /// keep-alive timeout, backpressure timeout).
    pub(super) fn close_now(&mut self, key: usize) {
        self.begin_close(key);
        let conn = &mut self.conns[key];
        if let Some(mut queued) = conn.queued.take() {
            queued.clear(&mut self.buffers);
            self.outboxes.give(queued);
        }
        conn.committed = 0;
        conn.committed_bytes = 0;
        if conn.inflight.is_some() {
            // Make the stuck send fail now rather than when the peer reads.
            // SAFETY: shutdown(2) on a socket we own; it frees nothing.
            unsafe { libc::shutdown(conn.fd.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }

    /// Removes a closing connection once nothing is queued or in flight.
    pub(super) fn maybe_remove(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let http_alive = matches!(&conn.phase, Phase::Http(http) if http.io_alive);
        if !conn.closing
            || conn.ops > 0
            || conn.inflight.is_some()
            || conn.committed > 0
            || http_alive
        {
            return;
        }
        let mut conn = self.conns.remove(key);
        if let Some(mut queued) = conn.queued.take() {
            queued.clear(&mut self.buffers);
            self.outboxes.give(queued);
        }
        if let Phase::Http(http) = &mut conn.phase {
            for unread in http.unread.drain(..) {
                self.buffers.release(unread.id);
            }
        }
        // Dropping `conn` closes the fd and releases the admission.
    }
}
