//! The validated configuration of a soak.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::io::IoChoice;
use crate::soak::mix::{Mix, CLASSES};
use crate::target::Target;

/// Everything a soak needs, validated.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The target URL.
    pub target: Target,
    /// The resolved target address.
    pub addr: SocketAddr,
    /// The traffic classes and how many connections each holds.
    pub mix: Mix,
    /// How long the full set of connections is held after the ramp.
    pub duration: Duration,
    /// New connections per second while the set is first opened.
    pub connect_rate: f64,
    /// Connections closed and replaced per second during the hold.
    pub churn_rate: f64,
    /// Give up on a connect + handshake after this long.
    pub connect_timeout: Duration,
    /// How long a close may take: the server's echoes and its Close after
    /// ours, and then its end of the TCP connection.
    pub close_timeout: Duration,
    /// Length of one time-series interval.
    pub interval: Duration,
    /// Client source addresses, used in turn (empty: the system picks).
    pub sources: Vec<IpAddr>,
    /// Worker threads (one event loop each).
    pub threads: usize,
    /// CPUs to pin worker `i` to (`pin[i % len]`).
    pub pin: Option<Vec<usize>>,
    /// Where to write the JSON report (totals and time series).
    pub json: Option<PathBuf>,
    /// Where to write the time series as CSV, one row per interval as it ends.
    pub csv: Option<PathBuf>,
    /// Suppress the live line.
    pub quiet: bool,
    /// The I/O driver asked for (`--io`).
    pub io: IoChoice,
}

impl SoakConfig {
    /// How long the initial ramp takes (all connections at `connect_rate`).
    pub fn ramp(&self) -> Duration {
        Duration::from_secs_f64(self.mix.total() as f64 / self.connect_rate)
    }

    /// Checks the cross-field rules.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.mix.total() == 0 {
            return bad("--connections must be at least 1".into());
        }
        for spec in &self.mix.classes[..CLASSES] {
            let min = spec.payload.min_size();
            if spec.size.min < min {
                return bad(format!(
                    "{} messages must be at least {min} B ({} messages carry a sequence \
                     number and a send time)",
                    spec.name,
                    spec.payload.name()
                ));
            }
            if spec.size.max > 16 * 1024 * 1024 {
                return bad(format!(
                    "{} messages above 16 MiB are not supported",
                    spec.name
                ));
            }
            if !(spec.rate_hz > 0.0 && spec.rate_hz <= 10_000.0) {
                return bad(format!("the {} rate must be in (0, 10000] Hz", spec.name));
            }
            if spec.per_tick == 0 || spec.window < spec.per_tick {
                return bad(format!(
                    "{}: at least one message per tick, and a window that holds a tick",
                    spec.name
                ));
            }
        }
        if !(self.connect_rate > 0.0 && self.connect_rate.is_finite()) {
            return bad("--connect-rate must be above 0".into());
        }
        if !(self.churn_rate >= 0.0 && self.churn_rate.is_finite()) {
            return bad("--churn must be 0 or more per second".into());
        }
        if self.duration.is_zero() {
            return bad("--duration must be positive".into());
        }
        if self.interval < Duration::from_millis(100) {
            return bad("--interval must be at least 100ms".into());
        }
        if self.threads == 0 {
            return bad("--threads must be at least 1".into());
        }
        if self.connect_timeout.is_zero() || self.close_timeout.is_zero() {
            return bad("--connect-timeout and --close-timeout must be positive".into());
        }
        Ok(())
    }

    /// Initial connections of worker `w` (connection `i` belongs to worker
    /// `i % threads`).
    pub fn connections_of(&self, w: usize) -> usize {
        (self.mix.total() + self.threads - 1 - w) / self.threads
    }
}
