//! `--reconnect`: a connection the server drops during the run is opened
//! again, and the messages it had in flight are sent again on the new one.
//!
//! This is what a game client does when a server host goes away behind a
//! load balancer (a rolling restart: the engine sends close 1001, the
//! balancer sends the new connection to another host). It lets a load test
//! show that such a restart loses no message: every message still gets
//! exactly one checked echo, and the report counts the reconnects.
//!
//! # What happens to a dropped connection
//!
//! * It is *parked*: its socket is deregistered, and a reconnect attempt is
//!   scheduled after a short random delay ([`first_delay_ns`], 0-50 ms, so
//!   the clients of one host don't all arrive at the same instant).
//! * An attempt that fails (refused, reset, an HTTP error such as 502/503,
//!   the connect timeout) is retried with a doubling delay, capped at
//!   [`MAX_DELAY_NS`], until the load ends.
//! * When the new handshake completes, the messages that were outstanding
//!   on the old connection are sent again first, in order and with their
//!   sequence numbers, then the load goes on. Their latency still counts
//!   from the time the schedule wanted them sent, so the reconnect shows in
//!   the corrected latency as the player would feel it. In open mode the
//!   ticks missed while disconnected are sent too, late, and counted the
//!   same way.
//! * A connection that is still not back when the load ends counts as
//!   lost (exit code 5), and its outstanding messages as lost echoes.
//!
//! Without `--reconnect`, a dropped connection is lost at once, as before,
//! and the messages it had outstanding count as lost echoes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::reasons::ReasonCounts;

/// The longest wait between two reconnect attempts of one connection.
pub const MAX_DELAY_NS: u64 = 1_000_000_000;
/// The first attempt comes after a random delay of up to this long.
pub const FIRST_DELAY_MAX_NS: u64 = 50_000_000;

/// The random delay before the first reconnect attempt.
pub fn first_delay_ns(rng: &mut impl Rng) -> u64 {
    rng.gen_range(0..=FIRST_DELAY_MAX_NS)
}

/// The delay before attempt number `attempt` (1 = the first retry after a
/// failed attempt): 100 ms, 200 ms, 400 ms, ... up to [`MAX_DELAY_NS`],
/// each with up to 25% random jitter.
pub fn retry_delay_ns(attempt: u32, rng: &mut impl Rng) -> u64 {
    let base = (100_000_000u64 << attempt.saturating_sub(1).min(10)).min(MAX_DELAY_NS);
    base - rng.gen_range(0..=base / 4)
}

/// Reconnect attempts waiting for their time, one worker's.
#[derive(Debug, Default)]
pub struct ReconnectQueue {
    /// (due time in ns since run start, slot).
    due: BinaryHeap<Reverse<(u64, usize)>>,
}

impl ReconnectQueue {
    /// Schedules an attempt for `slot` at `at_ns`.
    pub fn schedule(&mut self, slot: usize, at_ns: u64) {
        self.due.push(Reverse((at_ns, slot)));
    }

    /// Takes one slot whose attempt is due at `now_ns`, if any.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<usize> {
        match self.due.peek() {
            Some(Reverse((t, _))) if *t <= now_ns => self.due.pop().map(|Reverse((_, s))| s),
            _ => None,
        }
    }

    /// The earliest scheduled attempt (ns since run start).
    pub fn next_deadline(&self) -> Option<u64> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }
}

/// What reconnecting did, counted per interval and added up like the
/// other counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconnectCounts {
    /// Open connections the server dropped while `--reconnect` was on, by
    /// reason (`closed_by_server`, `eof`, `reset`, ...).
    pub dropped: ReasonCounts,
    /// Reconnect attempts that completed the handshake.
    pub reconnects: u64,
    /// Reconnect attempts that failed (and were retried), by reason.
    pub failures: ReasonCounts,
    /// Messages sent again on a new connection because the old one was
    /// dropped before their echo came.
    pub resent: u64,
    /// Messages that never got an echo because their connection was lost
    /// for good (no `--reconnect`, or not back before the end).
    pub echoes_lost: u64,
}

impl ReconnectCounts {
    /// Adds another set of counts.
    pub fn add(&mut self, o: &ReconnectCounts) {
        self.dropped.add(&o.dropped);
        self.reconnects += o.reconnects;
        self.failures.add(&o.failures);
        self.resent += o.resent;
        self.echoes_lost += o.echoes_lost;
    }
}

/// The reconnect part of the JSON report (`"reconnect"`), whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconnectReport {
    /// `--reconnect` was on.
    pub enabled: bool,
    /// Connections dropped by the server and then reconnected (or retried),
    /// by reason key.
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Successful reconnects.
    pub reconnects: u64,
    /// Failed reconnect attempts (each was retried), by reason key.
    pub failed_attempts: std::collections::BTreeMap<String, u64>,
    /// Messages sent again after a reconnect.
    pub resent: u64,
    /// Messages whose connection was lost for good before their echo came.
    pub echoes_lost: u64,
}

impl ReconnectReport {
    /// The report of `counts`, with `enabled` saying whether `--reconnect` was on.
    pub fn from_counts(enabled: bool, counts: &ReconnectCounts) -> ReconnectReport {
        ReconnectReport {
            enabled,
            dropped: counts.dropped.counts.clone(),
            reconnects: counts.reconnects,
            failed_attempts: counts.failures.counts.clone(),
            resent: counts.resent,
            echoes_lost: counts.echoes_lost,
        }
    }

    /// Adds another run's figures (for `loadgen merge` of reports).
    pub fn add(&mut self, o: &ReconnectReport) {
        self.enabled |= o.enabled;
        for (k, v) in &o.dropped {
            *self.dropped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.failed_attempts {
            *self.failed_attempts.entry(k.clone()).or_default() += v;
        }
        self.reconnects += o.reconnects;
        self.resent += o.resent;
        self.echoes_lost += o.echoes_lost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn delays_double_up_to_the_cap_with_bounded_jitter() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..100 {
            assert!(first_delay_ns(&mut rng) <= FIRST_DELAY_MAX_NS);
            let d1 = retry_delay_ns(1, &mut rng);
            assert!((75_000_000..=100_000_000).contains(&d1), "{d1}");
            let d3 = retry_delay_ns(3, &mut rng);
            assert!((300_000_000..=400_000_000).contains(&d3), "{d3}");
            let d20 = retry_delay_ns(20, &mut rng);
            assert!((750_000_000..=MAX_DELAY_NS).contains(&d20), "{d20}");
        }
    }

    #[test]
    fn queue_pops_in_time_order_when_due() {
        let mut q = ReconnectQueue::default();
        q.schedule(3, 300);
        q.schedule(1, 100);
        assert_eq!(q.next_deadline(), Some(100));
        assert_eq!(q.pop_due(99), None);
        assert_eq!(q.pop_due(100), Some(1));
        assert_eq!(q.pop_due(1000), Some(3));
        assert_eq!(q.pop_due(1000), None);
    }
}
