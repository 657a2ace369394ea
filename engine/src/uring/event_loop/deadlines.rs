//! Deadlines and shutdown: the periodic sweep over every connection
//! (handshake timeout, keep-alive pings and pong timeout, backpressure
//! timeout) and the start of a graceful shutdown.

use std::time::Instant;

use super::linger::linger_expired;
use super::ops::{user_data, Op};
use super::Loop;
use crate::metrics::RejectReason;
use crate::runtime::keep_alive::Due;
use crate::uring::conn::Phase;

/// A connection deadline the sweep found passed.
pub(super) enum Deadline {
    None,
    Backpressure,
    Handshake,
    Pong,
    Ping,
    /// A lingering close ran out of `--linger-time`.
    Linger,
}

impl Loop {
    /// Checks every connection's deadlines: handshake timeout, keep-alive
    /// pings and pong timeout, backpressure timeout, the end of a lingering
    /// close; and re-arms accept.
    pub(crate) fn sweep(&mut self, now: Instant) {
        let now = now.duration_since(self.epoch).as_millis() as u64;
        self.now_ms = now;
        self.buffers.decay();
        self.accept_backing_off = false;
        self.arm_accept();
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            match self.deadline_passed(key, now) {
                Deadline::None => {}
                Deadline::Backpressure => {
                    self.stats.backpressure_closed();
                    tracing::debug!(key, "backpressure timeout: closing");
                    self.close_now(key);
                    self.maybe_remove(key);
                }
                Deadline::Handshake => {
                    self.stats.handshake_rejected(RejectReason::Timeout);
                    tracing::debug!("handshake timeout: no request, or an idle HTTP connection");
                    if let Some(http) = self.conns[key].http() {
                        http.task = None;
                    }
                    self.begin_close(key);
                }
                Deadline::Pong => {
                    self.stats.keep_alive_timed_out();
                    self.close_now(key);
                    self.maybe_remove(key);
                }
                Deadline::Ping => self.send_due_control(key),
                Deadline::Linger => {
                    tracing::debug!(key, "lingering close: --linger-time passed, closing");
                    self.close_now(key);
                    self.maybe_remove(key);
                }
            }
        }
    }

    /// Which deadline of `key`, if any, has passed at `now`
    /// ([`Deadlines::check`](crate::runtime::keep_alive::Deadlines::check)
    /// for a WebSocket, the handshake timeout in the HTTP phase). A due
    /// ping is marked (and its next one scheduled) here.
    pub(super) fn deadline_passed(&mut self, key: usize, now: u64) -> Deadline {
        let limits = self.limits;
        let conn = &mut self.conns[key];
        if conn.closing {
            return Deadline::None;
        }
        if let Phase::Lingering(linger) = &conn.phase {
            return if linger_expired(linger, now) {
                Deadline::Linger
            } else {
                Deadline::None
            };
        }
        let backlogged_since = conn.over_cap_since_ms;
        match &mut conn.phase {
            Phase::WebSocket(ws) => {
                match limits
                    .deadlines
                    .check(now, backlogged_since, &mut ws.keep_alive)
                {
                    Due::Nothing => Deadline::None,
                    Due::BackpressureTimeout => Deadline::Backpressure,
                    Due::PongTimeout => Deadline::Pong,
                    Due::Ping => {
                        ws.owed.ping();
                        Deadline::Ping
                    }
                }
            }
            Phase::Http(_) if limits.deadlines.backpressure_expired(now, backlogged_since) => {
                Deadline::Backpressure
            }
            Phase::Http(_) if now >= conn.handshake_deadline_ms => Deadline::Handshake,
            Phase::Http(_) => Deadline::None,
            // Checked above: a lingering close has only its own deadline.
            Phase::Lingering(_) => Deadline::None,
        }
    }

    /// Stops accepting, cancels the HTTP phases and sends close 1001 to
    /// every WebSocket (at its next frame boundary).
    pub(crate) fn begin_shutdown(&mut self) {
        self.stopping = true;
        if self.accept_armed {
            self.cancel(user_data(0, Op::Accept));
        } else {
            self.listener = None;
        }
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        for key in keys {
            match &mut self.conns[key].phase {
                Phase::Http(http) => {
                    http.task = None;
                    self.begin_close(key);
                }
                Phase::WebSocket(ws) => {
                    ws.owed.going_away();
                    self.send_due_control(key);
                }
                // Closing already: its lingering ends by itself.
                Phase::Lingering(_) => {}
            }
        }
    }

    /// Cancels every HTTP-phase task (at exit).
    pub(crate) fn cancel_http_tasks(&mut self) {
        for (_, conn) in self.conns.iter_mut() {
            if let Some(http) = conn.http() {
                http.task = None;
            }
        }
    }
}
