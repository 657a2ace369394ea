//! `--start-at UNIX_TIME`: a start barrier for several loadgens.
//!
//! Load generators on several hosts measure the same window when they all
//! start at the same wall-clock instant with the same `--warmup` and
//! `--duration`: each one waits until `UNIX_TIME` (seconds since the epoch,
//! fractions allowed), then opens its connections, warms up and measures.
//! The hosts' clocks must agree (NTP keeps them within milliseconds). The
//! measured window's start is in the JSON report (`measured_from_unix_s`)
//! and in the interval log's `StartTime`, so `loadgen merge` can check that
//! the windows line up.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// How far ahead a start time may be: more is almost surely a typo (or a
/// time in milliseconds).
pub const MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// Parses `UNIX_TIME`: seconds since the epoch, e.g. `1767225600` or
/// `1767225600.25`.
pub fn parse(s: &str) -> Result<SystemTime> {
    let secs: f64 = s.trim().parse().map_err(|_| {
        Error::Config(format!(
            "bad --start-at {s:?}: give seconds since the epoch, e.g. $(( $(date +%s) + 10 ))"
        ))
    })?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(Error::Config(format!("bad --start-at {s:?}")));
    }
    Ok(UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// How long to wait from `now` until `start`. A start in the past is an
/// error (the loadgens would not measure the same window), and so is one
/// more than [`MAX_AHEAD`] away.
pub fn delay_until(start: SystemTime, now: SystemTime) -> Result<Duration> {
    match start.duration_since(now) {
        Ok(wait) if wait > MAX_AHEAD => Err(Error::Config(format!(
            "--start-at is {:.0} s away, more than {} h (seconds, not milliseconds?)",
            wait.as_secs_f64(),
            MAX_AHEAD.as_secs() / 3600
        ))),
        Ok(wait) => Ok(wait),
        Err(e) => Err(Error::Config(format!(
            "--start-at passed {:.3} s ago; give every loadgen a time a few seconds ahead",
            e.duration().as_secs_f64()
        ))),
    }
}

/// Seconds since the epoch of `t`, for reports.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_fractions() {
        let t = parse("1767225600.25").unwrap();
        assert_eq!(unix_seconds(t), 1767225600.25);
        assert!(parse("soon").is_err());
        assert!(parse("-5").is_err());
    }

    #[test]
    fn refuses_the_past_and_the_far_future() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ahead = now + Duration::from_secs(3);
        assert_eq!(delay_until(ahead, now).unwrap(), Duration::from_secs(3));
        assert!(delay_until(now - Duration::from_millis(10), now).is_err());
        assert!(delay_until(now + Duration::from_secs(2 * 24 * 3600), now).is_err());
    }
}
