//! The limits and periods the loop enforces, from the configuration.

use std::time::Duration;

use crate::config::Config;
use crate::runtime::keep_alive::{sweep_period, Deadlines};

/// The limits and periods the loop enforces, from the [`Config`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// `--max-message-size`.
    pub(super) max_message: usize,
    /// `--max-backpressure`.
    pub(super) max_backpressure: usize,
    /// Keep-alive and backpressure deadlines, in the loop's milliseconds.
    pub(super) deadlines: Deadlines<u64>,
    /// `--handshake-timeout`, in milliseconds.
    pub(super) handshake_timeout_ms: u64,
    /// How often the loop ticks: the sweep period of every deadline it
    /// checks, the handshake timeout included.
    pub(super) sweep_period: Duration,
    /// A connection the engine closes reads and discards for this long
    /// and this many bytes at most (`--linger-time`, `--linger-bytes`);
    /// `None`: it closes at once.
    pub(super) linger: Option<LingerLimits>,
}

/// The bounds of a lingering close, in the loop's units.
#[derive(Debug, Clone, Copy)]
pub(super) struct LingerLimits {
    pub(super) time_ms: u64,
    pub(super) bytes: u64,
}

impl Limits {
    /// The limits `config` sets.
    pub(super) fn new(config: &Config) -> Self {
        let deadlines = Deadlines::new(config);
        let shortest = deadlines.shortest().map_or(config.handshake_timeout, |d| {
            d.min(config.handshake_timeout)
        });
        Self {
            max_message: config.max_message_size,
            max_backpressure: config.max_backpressure,
            deadlines: deadlines.in_millis(),
            handshake_timeout_ms: config.handshake_timeout.as_millis() as u64,
            sweep_period: sweep_period(shortest),
            linger: config.linger.map(|linger| LingerLimits {
                time_ms: linger.time.as_millis() as u64,
                bytes: linger.bytes as u64,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_covers_the_handshake_timeout_too() {
        let config = Config {
            keep_alive_interval: None,
            backpressure_timeout: None,
            handshake_timeout: Duration::from_millis(200),
            ..Config::default()
        };
        let limits = Limits::new(&config);
        assert_eq!(limits.sweep_period, Duration::from_millis(50));
        assert_eq!(limits.handshake_timeout_ms, 200);
        let config = Config {
            keep_alive_interval: Some(Duration::from_secs(120)),
            handshake_timeout: Duration::from_secs(10),
            ..Config::default()
        };
        let limits = Limits::new(&config);
        assert_eq!(limits.sweep_period, Duration::from_millis(100));
        assert_eq!(limits.deadlines.interval, Some(120_000));
    }
}
