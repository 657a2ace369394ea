//! The open-loop driver: every connection sends on a fixed tick, like a
//! game client sending its input each frame.
//!
//! Connection `i` of `N` ticks at `phase_i + k * period`, with
//! `phase_i = i * period / N`, so the sends of all connections are spread
//! evenly across a tick instead of bursting at its start. Ticks are on the
//! run's clock, so a connection that opens late joins the schedule at its
//! next tick instead of shifting it.
//!
//! # Coordinated omission
//!
//! A connection has at most `--in-flight` messages outstanding. When a
//! tick finds the window full (the server is slow), the message is not
//! dropped and the schedule does not slip: the message is sent as soon as an
//! echo frees a slot, and its latency still counts from the tick that
//! wanted it (its *intended* time). That is wrk2's correction: a 500 ms
//! stall shows up as ~500 ms, ~492 ms, ... for every tick it swallowed,
//! instead of as one slow sample. The uncorrected latency (from the actual
//! send) is recorded alongside, to show what a naive tool would report.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::conn::Conn;
use crate::pacing::SendCtx;

/// Open-loop pacing for the connections of one worker.
#[derive(Debug)]
pub struct OpenLoop {
    period_ns: u64,
    connections: u64,
    in_flight: usize,
    /// (next tick, slot) of every connection that is waiting for a tick.
    ticks: BinaryHeap<Reverse<(u64, usize)>>,
}

impl OpenLoop {
    /// A driver for `rate_hz` ticks per second per connection, over
    /// `connections` connections in the whole run.
    pub fn new(rate_hz: f64, connections: usize, in_flight: usize) -> OpenLoop {
        OpenLoop {
            period_ns: ((1e9 / rate_hz).round() as u64).max(1),
            connections: connections.max(1) as u64,
            in_flight,
            ticks: BinaryHeap::new(),
        }
    }

    /// The tick period in ns.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// Phase of connection `id` within the tick, in ns.
    pub fn phase_ns(&self, id: usize) -> u64 {
        ((id as u128 * self.period_ns as u128) / self.connections as u128) as u64
    }

    /// Joins a freshly opened connection to the schedule at its next tick.
    pub fn on_open(&mut self, slot: usize, conn: &mut Conn, ctx: &mut SendCtx<'_>, now_ns: u64) {
        let phase = self.phase_ns(conn.id);
        let k = if now_ns > phase {
            (now_ns - phase).div_ceil(self.period_ns)
        } else {
            0
        };
        conn.next_tick_ns = phase + k * self.period_ns;
        self.send_due(slot, conn, ctx, now_ns);
    }

    /// Earliest tick waiting in the queue (ns since run start).
    pub fn next_deadline(&self) -> Option<u64> {
        self.ticks.peek().map(|Reverse((t, _))| *t)
    }

    /// Pops one connection whose tick has come, if any.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<usize> {
        match self.ticks.peek() {
            Some(Reverse((t, _))) if *t <= now_ns => self.ticks.pop().map(|Reverse((_, s))| s),
            _ => None,
        }
    }

    /// After echoes freed window slots: sends ticks that are overdue.
    #[inline]
    pub fn on_echo(&mut self, slot: usize, conn: &mut Conn, ctx: &mut SendCtx<'_>, now_ns: u64) {
        if !conn.scheduled {
            self.send_due(slot, conn, ctx, now_ns);
        }
    }

    /// A connection that was dropped is open again (`--reconnect`): it
    /// keeps its schedule, so the ticks it missed are sent now (as far as
    /// the window allows), late, with latency from their tick.
    pub fn on_reopen(&mut self, slot: usize, conn: &mut Conn, ctx: &mut SendCtx<'_>, now_ns: u64) {
        if conn.scheduled {
            // Its entry is still queued and keeps the schedule going.
            self.send_overdue(conn, ctx, now_ns);
        } else {
            self.send_due(slot, conn, ctx, now_ns);
        }
    }

    /// Sends every tick that is due and fits the window, then either queues
    /// the connection for its next tick or, if the window is full and ticks
    /// are overdue, leaves it to [`on_echo`](Self::on_echo).
    pub fn send_due(&mut self, slot: usize, conn: &mut Conn, ctx: &mut SendCtx<'_>, now_ns: u64) {
        conn.scheduled = false;
        self.send_overdue(conn, ctx, now_ns);
        if conn.next_tick_ns > now_ns && conn.next_tick_ns < ctx.end_ns {
            self.ticks.push(Reverse((conn.next_tick_ns, slot)));
            conn.scheduled = true;
        }
    }

    /// Sends the ticks that are due, as far as the window allows.
    fn send_overdue(&self, conn: &mut Conn, ctx: &mut SendCtx<'_>, now_ns: u64) {
        while conn.next_tick_ns <= now_ns
            && conn.next_tick_ns < ctx.end_ns
            && conn.inflight.len() < self.in_flight
        {
            let len = ctx.pick_size();
            let intended = conn.next_tick_ns;
            conn.queue_message(ctx.tmpl, ctx.rng, len, now_ns, intended);
            *ctx.sent += 1;
            conn.next_tick_ns += self.period_ns;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_spread_across_the_tick() {
        let o = OpenLoop::new(100.0, 4, 1);
        assert_eq!(o.period_ns(), 10_000_000);
        let phases: Vec<u64> = (0..4).map(|i| o.phase_ns(i)).collect();
        assert_eq!(phases, vec![0, 2_500_000, 5_000_000, 7_500_000]);
    }
}
