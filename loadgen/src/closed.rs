//! The closed-loop driver: every connection keeps `in_flight` messages
//! outstanding and sends the next one the moment an echo returns.
//!
//! This is the traffic of uWebSockets' `load_test` (with `in_flight = 1`),
//! the driver behind the fastwebsockets published table. Its throughput is
//! bounded by round-trip time x connections x window, so it measures how
//! fast the server (or the client) can turn messages around, not latency
//! under a given load: for that use the open loop.

use crate::conn::Conn;
use crate::pacing::SendCtx;

/// Closed-loop pacing.
#[derive(Debug, Clone, Copy)]
pub struct ClosedLoop {
    /// Messages to keep outstanding per connection.
    pub in_flight: usize,
}

impl ClosedLoop {
    /// Tops the connection's window up to `in_flight` messages. Called when
    /// the connection opens and after each batch of echoes, so K echoes that
    /// arrive in one read produce K sends in one write.
    #[inline]
    pub fn fill(&self, conn: &mut Conn, ctx: &mut SendCtx<'_>, now_ns: u64) {
        if now_ns >= ctx.end_ns {
            return;
        }
        while conn.inflight.len() < self.in_flight {
            let len = ctx.pick_size();
            conn.queue_message(ctx.tmpl, ctx.rng, len, now_ns, now_ns);
            *ctx.sent += 1;
        }
    }
}
