//! The traffic of a soak: three classes of connections that behave like
//! the clients of a game host.
//!
//! * **player**: in a match, sending input every tick (shooter-128hz:
//!   18-64 B binary at 128 Hz). The expensive class: every message is a
//!   wake-up on both sides, so their number is what a machine can carry.
//! * **burst**: connections that now and then send a burst of large
//!   messages back to back (16 KiB binary, e.g. a replay or map upload).
//! * **lobby**: everyone else: connected, waiting, sending a small text
//!   message (presence, chat, matchmaking) every few seconds.
//!
//! Connection `i` of the initial set belongs to the players while
//! `i < players`, then to the bursts, then to the lobby. A connection
//! closed by churn is replaced by one of the same class, so the mix holds
//! for the whole run.

use serde::Serialize;

use crate::config::SizeRange;
use crate::payload::PayloadKind;

/// Number of traffic classes.
pub const CLASSES: usize = 3;
/// Index of the player class.
pub const PLAYER: usize = 0;
/// Index of the burst class.
pub const BURST: usize = 1;
/// Index of the lobby class.
pub const LOBBY: usize = 2;

/// How the connections of one class send.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassSpec {
    /// `player`, `burst` or `lobby`.
    pub name: &'static str,
    /// Connections of this class held at once.
    pub connections: usize,
    /// Ticks per second per connection.
    pub rate_hz: f64,
    /// Messages sent back to back on each tick.
    pub per_tick: usize,
    /// Payload sizes, uniform in the range.
    pub size: SizeRange,
    /// Text or binary.
    pub payload: PayloadKind,
    /// Most messages a connection may have in flight; a tick that finds
    /// the window full is sent as soon as an echo frees room, and its
    /// latency still counts from the tick (coordinated-omission correction).
    pub window: usize,
}

impl ClassSpec {
    /// The tick period in nanoseconds.
    pub fn period_ns(&self) -> u64 {
        ((1e9 / self.rate_hz).round() as u64).max(1)
    }

    /// Messages per second the whole class offers.
    pub fn messages_per_sec(&self) -> f64 {
        self.connections as f64 * self.rate_hz * self.per_tick as f64
    }

    /// One line for people: `200 x 128 Hz x 18..64 B binary`.
    pub fn describe(&self) -> String {
        let burst = if self.per_tick > 1 {
            format!(" x {} per tick", self.per_tick)
        } else {
            String::new()
        };
        format!(
            "{} x {} Hz x {} {}{burst}",
            self.connections,
            self.rate_hz,
            self.size,
            self.payload.name()
        )
    }
}

/// The three classes of a soak, indexed by [`PLAYER`], [`BURST`], [`LOBBY`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Mix {
    /// The classes.
    pub classes: [ClassSpec; CLASSES],
}

impl Mix {
    /// All connections held at once.
    pub fn total(&self) -> usize {
        self.classes.iter().map(|c| c.connections).sum()
    }

    /// The class of initial connection `index`.
    pub fn class_of(&self, index: usize) -> usize {
        let mut end = 0;
        for (c, spec) in self.classes.iter().enumerate() {
            end += spec.connections;
            if index < end {
                return c;
            }
        }
        LOBBY
    }

    /// Messages per second the whole mix offers.
    pub fn messages_per_sec(&self) -> f64 {
        self.classes.iter().map(ClassSpec::messages_per_sec).sum()
    }
}

/// Where in its class's tick connection `serial` sends: spread by the
/// golden ratio, so any number of connections, started and replaced in
/// any order, stay spread evenly across the tick instead of bunching.
pub fn phase_ns(serial: u64, period_ns: u64) -> u64 {
    const GOLDEN: f64 = 0.618_033_988_749_894_9;
    ((serial as f64 * GOLDEN).fract() * period_ns as f64) as u64
}

/// The first tick at or after `now_ns` of a connection with `phase` in a
/// schedule of `period` (ticks at `phase + k * period`).
pub fn first_tick(now_ns: u64, phase: u64, period: u64) -> u64 {
    if now_ns > phase {
        phase + (now_ns - phase).div_ceil(period) * period
    } else {
        phase
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &'static str, connections: usize) -> ClassSpec {
        ClassSpec {
            name,
            connections,
            rate_hz: 128.0,
            per_tick: 1,
            size: SizeRange { min: 18, max: 64 },
            payload: PayloadKind::Binary,
            window: 8,
        }
    }

    #[test]
    fn initial_connections_fill_classes_in_order() {
        let mix = Mix {
            classes: [spec("player", 2), spec("burst", 1), spec("lobby", 3)],
        };
        let classes: Vec<usize> = (0..6).map(|i| mix.class_of(i)).collect();
        assert_eq!(classes, [PLAYER, PLAYER, BURST, LOBBY, LOBBY, LOBBY]);
        assert_eq!(mix.total(), 6);
        assert_eq!(mix.messages_per_sec(), 6.0 * 128.0);
    }

    #[test]
    fn phases_spread_and_ticks_land_on_the_schedule() {
        let period = 1_000_000;
        let mut phases: Vec<u64> = (0..100).map(|s| phase_ns(s, period)).collect();
        phases.sort_unstable();
        // 100 golden-ratio points leave no gap wider than a few slots.
        let widest = phases.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(widest < 3 * period / 100, "widest gap {widest}");
        assert!(phases.iter().all(|&p| p < period));
        assert_eq!(first_tick(0, 300, 1000), 300);
        assert_eq!(first_tick(300, 300, 1000), 300);
        assert_eq!(first_tick(301, 300, 1000), 1300);
        assert_eq!(first_tick(5_250, 300, 1000), 5_300);
    }
}
