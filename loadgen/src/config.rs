//! The validated run configuration and the parsers for its option values.
//!
//! [`RunConfig`] is what the workers read. It is built by [`crate::cli`]
//! from the command line and an optional [`crate::presets::Preset`], and
//! validated once here so the hot path never checks options.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::IoChoice;
use crate::payload::PayloadKind;
use crate::target::Target;

/// How connections pace their messages.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Mode {
    /// Keep `in_flight` messages outstanding; send the next one as soon as
    /// an echo returns (uWebSockets' `load_test` traffic).
    Closed,
    /// Send at a fixed tick rate per connection; latency counts from the
    /// intended send time (wrk2's coordinated-omission correction).
    Open {
        /// Messages per second per connection.
        rate_hz: f64,
    },
}

impl Mode {
    /// The mode a command line asks for, by the rule `loadgen` and `tune`
    /// share: `--rate` alone selects the open loop (whatever the preset's
    /// mode); `--mode open` takes its rate from `--rate`, else from an open
    /// preset; `--mode closed` with `--rate` is a contradiction. `closed` is
    /// `--mode` (`Some(true)` for closed), `preset` the preset's mode.
    /// `Ok(None)`: nothing chose a mode (the caller's default applies).
    pub fn from_flags(
        closed: Option<bool>,
        rate_hz: Option<f64>,
        preset: Option<Mode>,
    ) -> std::result::Result<Option<Mode>, String> {
        match (closed, rate_hz, preset) {
            (Some(true), Some(_), _) => {
                Err("--rate sets the open loop's tick rate; it contradicts --mode closed".into())
            }
            (Some(true), None, _) => Ok(Some(Mode::Closed)),
            (_, Some(rate_hz), _) => Ok(Some(Mode::Open { rate_hz })),
            (Some(false), None, Some(Mode::Open { rate_hz })) => Ok(Some(Mode::Open { rate_hz })),
            (Some(false), None, _) => Err("--mode open needs --rate HZ".into()),
            (None, None, preset) => Ok(preset),
        }
    }
}

/// Inclusive range of payload sizes in bytes; `min == max` for a fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SizeRange {
    /// Smallest payload in bytes.
    pub min: usize,
    /// Largest payload in bytes.
    pub max: usize,
}

impl SizeRange {
    /// Parses `20`, `1KiB`, `16k`, `18..64` or `18-64` (inclusive).
    pub fn parse(s: &str) -> Result<SizeRange> {
        let s = s.trim();
        let split = s.split_once("..").or_else(|| s.split_once('-'));
        let (min, max) = match split {
            Some((a, b)) => (parse_bytes(a)?, parse_bytes(b.trim_start_matches('='))?),
            None => {
                let v = parse_bytes(s)?;
                (v, v)
            }
        };
        if min > max {
            return Err(Error::Config(format!(
                "size range {s:?}: min is larger than max"
            )));
        }
        Ok(SizeRange { min, max })
    }

    /// True when every message has the same size.
    pub fn is_fixed(&self) -> bool {
        self.min == self.max
    }
}

impl std::fmt::Display for SizeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_fixed() {
            write!(f, "{} B", self.min)
        } else {
            write!(f, "{}..{} B", self.min, self.max)
        }
    }
}

/// Parses a byte count with an optional `k`/`K`/`KiB`/`KB` (x1024) or
/// `m`/`M`/`MiB`/`MB` (x1048576) suffix.
pub fn parse_bytes(s: &str) -> Result<usize> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(digits);
    let n: usize = num
        .parse()
        .map_err(|_| Error::Config(format!("bad byte count {s:?}")))?;
    let mult = match suffix.trim() {
        "" | "B" | "b" => 1,
        "k" | "K" | "KiB" | "KB" | "kB" | "kiB" => 1024,
        "m" | "M" | "MiB" | "MB" => 1024 * 1024,
        other => return Err(Error::Config(format!("bad size suffix {other:?} in {s:?}"))),
    };
    n.checked_mul(mult)
        .ok_or_else(|| Error::Config(format!("byte count {s:?} too large")))
}

/// Parses a duration: `10s`, `500ms`, `1m 30s`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_duration(s).map_err(|e| Error::Config(format!("bad duration {s:?}: {e}")))
}

/// Parses a CPU list such as `0`, `0,1` or `0-3,6`.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>> {
    let bad = || Error::Config(format!("bad CPU list {s:?} (use e.g. 0 or 0,1 or 0-3)"));
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() {
        return Err(bad());
    }
    Ok(cpus)
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The target URL.
    pub target: Target,
    /// The resolved target address.
    pub addr: SocketAddr,
    /// Number of WebSocket connections.
    pub connections: usize,
    /// New connections per second (0 = all at once).
    pub connect_rate: f64,
    /// Give up on a connection whose TCP connect + handshake takes longer.
    pub connect_timeout: Duration,
    /// Closed or open loop.
    pub mode: Mode,
    /// Most messages outstanding per connection.
    pub in_flight: usize,
    /// Payload sizes.
    pub size: SizeRange,
    /// Text, binary or JSON-snapshot messages.
    pub payload: PayloadKind,
    /// The permessage-deflate offer (`--permessage-deflate`), if any:
    /// messages are then compressed and echoes inflated.
    pub permessage_deflate: Option<String>,
    /// Measured time (after warmup).
    pub duration: Duration,
    /// Time before measuring starts; its samples are discarded.
    pub warmup: Duration,
    /// Worker threads (one event loop each).
    pub threads: usize,
    /// CPUs to pin worker `i` to (`pin[i % len]`); `None` leaves them unpinned.
    pub pin: Option<Vec<usize>>,
    /// Name of the preset the defaults came from, if any.
    pub preset: Option<String>,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
    /// Where to write the HdrHistogram interval log.
    pub hlog: Option<PathBuf>,
    /// Suppress the live line.
    pub quiet: bool,
    /// Reopen connections the server drops, and resend their in-flight
    /// messages ([`crate::reconnect`]).
    pub reconnect: bool,
    /// Wall-clock start of the load (`--start-at`); `None` starts at once.
    pub start_at: Option<std::time::SystemTime>,
    /// The I/O driver asked for (`--io`).
    pub io: IoChoice,
}

impl RunConfig {
    /// Checks the cross-field rules. Called by the CLI after filling defaults.
    pub fn validate(&self) -> Result<()> {
        let min = self.payload.min_size();
        if self.size.min < min {
            return Err(Error::Config(format!(
                "--size must be at least {min} B for {} messages (each carries a sequence \
                 number and its send time)",
                self.payload.name()
            )));
        }
        if self.size.max > 64 * 1024 * 1024 {
            return Err(Error::Config("--size above 64 MiB is not supported".into()));
        }
        if self.connections == 0 {
            return Err(Error::Config("--connections must be at least 1".into()));
        }
        if self.in_flight == 0 {
            return Err(Error::Config("--in-flight must be at least 1".into()));
        }
        if self.threads == 0 {
            return Err(Error::Config("--threads must be at least 1".into()));
        }
        if !(self.connect_rate >= 0.0 && self.connect_rate.is_finite()) {
            return Err(Error::Config("--connect-rate must be >= 0".into()));
        }
        if let Mode::Open { rate_hz } = self.mode {
            if !(rate_hz > 0.0 && rate_hz <= 1_000_000.0) {
                return Err(Error::Config("--rate must be in (0, 1000000] Hz".into()));
            }
        }
        if self.duration.is_zero() {
            return Err(Error::Config("--duration must be positive".into()));
        }
        Ok(())
    }

    /// Number of connections worker `w` owns (connection `i` belongs to worker `i % threads`).
    pub fn connections_of(&self, w: usize) -> usize {
        (self.connections + self.threads - 1 - w) / self.threads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(
            SizeRange::parse("20").unwrap(),
            SizeRange { min: 20, max: 20 }
        );
        assert_eq!(SizeRange::parse("16KiB").unwrap().min, 16384);
        assert_eq!(
            SizeRange::parse("18..64").unwrap(),
            SizeRange { min: 18, max: 64 }
        );
        assert_eq!(
            SizeRange::parse("18..=64").unwrap(),
            SizeRange { min: 18, max: 64 }
        );
        assert_eq!(
            SizeRange::parse("1k-2k").unwrap(),
            SizeRange {
                min: 1024,
                max: 2048
            }
        );
        assert!(SizeRange::parse("64..18").is_err());
        assert!(SizeRange::parse("x").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("0").unwrap(), vec![0]);
        assert_eq!(parse_cpus("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpus("").is_err());
        assert!(parse_cpus("3-1").is_err());
    }
}
