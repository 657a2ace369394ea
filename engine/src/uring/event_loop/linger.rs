//! The lingering close. When the engine closes a WebSocket itself (an error
//! code, or 1001 at shutdown) while the client may still be sending,
//! closing the socket with unread bytes in its receive queue makes the
//! kernel answer with a reset, and the client's kernel may drop the close
//! frame before the application reads it. So, as nginx's
//! `lingering_close` does, the connection turns [`Phase::Lingering`]: once
//! its close frame has gone out the write side is shut down (the client
//! reads the close frame, then end of stream), and what still arrives is
//! read and discarded, without decoding, until the client's end of stream,
//! `--linger-time` or `--linger-bytes`, whichever comes first; then the
//! connection closes. A client that keeps sending is cut off at the bound.

use std::os::fd::AsRawFd;

use super::Loop;
use crate::uring::conn::{HttpState, LingerState, Phase, RecvState};

impl Loop {
    /// `key`'s close frame is queued and committed: from here on the
    /// connection lingers, or, with lingering off (`--linger-time 0`),
    /// closes once the frame is sent.
    pub(super) fn begin_linger(&mut self, key: usize) {
        let Some(limits) = self.limits.linger else {
            self.begin_close(key);
            return;
        };
        // The loop's clock moves only at its sweeps; a linger reads a fresh
        // one, so that it never ends before its time.
        let until_ms = self.epoch.elapsed().as_millis() as u64 + limits.time_ms;
        let conn = &mut self.conns[key];
        if !matches!(conn.phase, Phase::WebSocket(_)) {
            return;
        }
        // The WebSocket's state goes (the decoder, a message being
        // reassembled); only its connection slot stays with the linger.
        let placeholder = Phase::Http(Box::<HttpState>::default());
        let Phase::WebSocket(ws) = std::mem::replace(&mut conn.phase, placeholder) else {
            unreachable!("matched a WebSocket above");
        };
        conn.phase = Phase::Lingering(LingerState {
            until_ms,
            bytes_left: limits.bytes,
            write_shut: false,
            _admission: ws._admission,
        });
        // What arrives now is discarded as it lands, so backpressure no
        // longer applies: a paused recv resumes, to drain the client.
        conn.over_cap_since_ms = None;
        if conn.recv == RecvState::Paused {
            conn.recv = RecvState::Idle;
            self.arm_recv(key);
        }
        self.shut_write_once_sent(key);
    }

    /// Shuts down lingering `key`'s write side once everything queued (its
    /// close frame last) has gone out: the client then reads end of stream
    /// right after the close frame.
    pub(super) fn shut_write_once_sent(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let all_sent = conn.inflight.is_none()
            && conn.committed == 0
            && conn.queued.as_ref().is_none_or(|queued| queued.is_empty());
        let Phase::Lingering(linger) = &mut conn.phase else {
            return;
        };
        if linger.write_shut || !all_sent {
            return;
        }
        linger.write_shut = true;
        // SAFETY: shutdown(2) on a socket we own; it frees nothing, and no
        // send is in flight on it (checked above).
        unsafe { libc::shutdown(conn.fd.as_raw_fd(), libc::SHUT_WR) };
    }

    /// `len` bytes arrived on lingering `key` and were discarded: they
    /// count against `--linger-bytes`, and a client past it is cut off.
    pub(super) fn discarded(&mut self, key: usize, len: usize) {
        let Some(linger) = self.conns[key].lingering() else {
            return;
        };
        linger.bytes_left = linger.bytes_left.saturating_sub(len as u64);
        if linger.bytes_left == 0 {
            tracing::debug!(key, "lingering close: --linger-bytes read, cutting off");
            self.close_now(key);
        }
    }
}

/// Whether lingering `linger` has run out of time at `now` (loop clock, ms).
pub(super) fn linger_expired(linger: &LingerState, now: u64) -> bool {
    now >= linger.until_ms
}
