//! The limits and periods the loop enforces, from the configuration.

use std::time::Duration;

/// The longest the loop sleeps without looking at its stop flag and
/// connection deadlines.
const MAX_SWEEP_PERIOD: Duration = Duration::from_millis(100);
/// The shortest sweep period.
const MIN_SWEEP_PERIOD: Duration = Duration::from_millis(10);

/// The limits and periods the loop enforces, from the [`Config`](crate::config::Config).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_message: usize,
    pub(super) max_backpressure: usize,
    pub(super) backpressure_timeout_ms: Option<u64>,
    pub(super) keep_alive_interval_ms: Option<u64>,
    pub(super) keep_alive_timeout_ms: Option<u64>,
    pub(super) handshake_timeout_ms: u64,
    pub(super) sweep_period: Duration,
}

impl Limits {
    pub(super) fn new(config: &crate::config::Config) -> Self {
        let ms = |d: Duration| d.as_millis() as u64;
        let periods = [
            config.keep_alive_interval,
            config.keep_alive_timeout,
            config.backpressure_timeout,
            Some(config.handshake_timeout),
        ];
        let shortest = periods
            .iter()
            .flatten()
            .min()
            .copied()
            .unwrap_or(MAX_SWEEP_PERIOD);
        Self {
            max_message: config.max_message_size,
            max_backpressure: config.max_backpressure,
            backpressure_timeout_ms: config.backpressure_timeout.map(ms),
            keep_alive_interval_ms: config.keep_alive_interval.map(ms),
            keep_alive_timeout_ms: config.keep_alive_timeout.map(ms),
            handshake_timeout_ms: ms(config.handshake_timeout),
            sweep_period: (shortest / 4).clamp(MIN_SWEEP_PERIOD, MAX_SWEEP_PERIOD),
        }
    }
}
