//! The final report: text for people, JSON (stable schema) for scripts,
//! and the exit status.
//!
//! # JSON schema (version 1)
//!
//! Top-level fields: `schema_version` (1), `tool`, `version`, `config`,
//! `measured_s`, `messages`, `sent`, `msgs_per_sec`, `bytes`,
//! `mb_per_sec`, `latency_us` (`corrected`, `uncorrected`),
//! `connect_latency_us`, `connections`, `errors`, `exit`, and (added
//! later in version 1) `measured_from_unix_s`, `reconnect`, `histograms`
//! and `client` (loadgen's own load: `io`, the driver that ran;
//! `cpu_per_msg_us`; `process_cores`; `busiest_thread`,
//! `busiest_thread_util` and `thread_util`, shares of one core; and
//! `warning`, set above 90% of a core). Latency objects hold `count`, `min`, `mean`, `p50`, `p90`,
//! `p99`, `p99_9`, `p99_99` and `max`, in microseconds; `histograms` holds
//! the same histograms in full (base64 V2 compressed, nanoseconds), which
//! is what `loadgen merge` adds up. Fields are only ever added within a
//! schema version; renaming or removing one bumps `schema_version`.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::ceiling::Ceiling;
use crate::config::{Mode, RunConfig};
use crate::histogram_b64;
use crate::reconnect::ReconnectReport;
use crate::stats::{ErrorCounts, Interval};

/// Version of the JSON report schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99.99th percentile.
    pub p99_99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Latency {
    /// Percentiles of a histogram recorded in nanoseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| (ns as f64 / 100.0).round() / 10.0;
        Latency {
            count: h.len(),
            min: us(h.min()),
            mean: (h.mean() / 100.0).round() / 10.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            p99_99: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
        }
    }
}

/// Round-trip latency, corrected and not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyPair {
    /// From the intended send time (coordinated omission corrected).
    pub corrected: Latency,
    /// From the actual send time (what a naive tool reports).
    pub uncorrected: Latency,
}

/// The options the run used, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSummary {
    /// Target URL.
    pub target: String,
    /// `closed` or `open`.
    pub mode: String,
    /// Tick rate per connection (open mode).
    pub rate_hz: Option<f64>,
    /// Connections requested.
    pub connections: usize,
    /// Connect rate (per second, 0 = unlimited).
    pub connect_rate: f64,
    /// Window per connection.
    pub in_flight: usize,
    /// Smallest payload.
    pub size_min: usize,
    /// Largest payload.
    pub size_max: usize,
    /// `binary` or `text`.
    pub payload: String,
    /// Measured duration requested, seconds.
    pub duration_s: f64,
    /// Warmup, seconds.
    pub warmup_s: f64,
    /// Worker threads.
    pub threads: usize,
    /// CPUs the workers were pinned to.
    pub pin: Option<Vec<usize>>,
    /// Preset the defaults came from.
    pub preset: Option<String>,
    /// The permessage-deflate offer, when messages were compressed.
    #[serde(default)]
    pub permessage_deflate: Option<String>,
}

impl ConfigSummary {
    /// Summarises a run configuration.
    pub fn from_config(c: &RunConfig) -> ConfigSummary {
        let (mode, rate_hz) = match c.mode {
            Mode::Closed => ("closed", None),
            Mode::Open { rate_hz } => ("open", Some(rate_hz)),
        };
        ConfigSummary {
            target: c.target.url.clone(),
            mode: mode.into(),
            rate_hz,
            connections: c.connections,
            connect_rate: c.connect_rate,
            in_flight: c.in_flight,
            size_min: c.size.min,
            size_max: c.size.max,
            payload: c.payload.name().into(),
            duration_s: c.duration.as_secs_f64(),
            warmup_s: c.warmup.as_secs_f64(),
            threads: c.threads,
            pin: c.pin.clone(),
            preset: c.preset.clone(),
            permessage_deflate: c.permessage_deflate.clone(),
        }
    }
}

/// Connection outcomes over the whole run (warmup included).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Connections {
    /// Connections requested.
    pub requested: usize,
    /// Completed the handshake.
    pub opened: u64,
    /// Never opened.
    pub failed: u64,
    /// Failures by reason key (`refused`, `reset`, `timeout`, `http_403`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Opened, then lost before the end of the run, by reason.
    pub lost: BTreeMap<String, u64>,
    /// Human description of every reason key above.
    pub reasons: BTreeMap<String, String>,
    /// Opened connections by the extensions the server agreed to (its
    /// `Sec-WebSocket-Extensions` answer), when loadgen offered any.
    #[serde(default)]
    pub extensions: BTreeMap<String, u64>,
}

/// Bad echoes over the whole run (warmup included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Errors {
    /// Sum of the kinds below.
    pub total: u64,
    /// Right sequence number, other length (or too short to carry one).
    pub length: u64,
    /// Wrong sequence number (lost, duplicated, reordered), whatever the length.
    pub order: u64,
    /// Other bytes differ.
    pub content: u64,
    /// Wrong opcode or broken framing.
    pub protocol: u64,
    /// Echo with no message outstanding.
    pub unexpected: u64,
}

impl From<ErrorCounts> for Errors {
    fn from(e: ErrorCounts) -> Errors {
        Errors {
            total: e.total(),
            length: e.length,
            order: e.order,
            content: e.content,
            protocol: e.protocol,
            unexpected: e.unexpected,
        }
    }
}

/// How the run ended, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// Everything worked: exit code 0.
    Ok,
    /// Not one connection opened: exit code 3.
    AllConnectionsFailed,
    /// Some echoes were wrong: exit code 4.
    EchoErrors,
    /// Some connections failed or were lost, but the load ran: exit code 5.
    ConnectionErrors,
    /// Stopped early by Ctrl-C (SIGINT); the report covers the part that
    /// ran: exit code 130, the shell's code for "ended by SIGINT".
    Interrupted,
}

impl ExitStatus {
    /// The process exit code (1 and 2 are taken by runtime and usage errors).
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Ok => 0,
            ExitStatus::AllConnectionsFailed => 3,
            ExitStatus::EchoErrors => 4,
            ExitStatus::ConnectionErrors => 5,
            ExitStatus::Interrupted => 130,
        }
    }
}

/// The exit status and the message that explains it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Process exit code.
    pub code: i32,
    /// Machine-readable status.
    pub status: ExitStatus,
    /// One line for people.
    pub message: String,
}

/// The run's histograms in full, as base64 of the HdrHistogram V2
/// compressed encoding (values in ns; see [`crate::histogram_b64`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// Round trip from the intended send time, measured window.
    pub corrected: String,
    /// Round trip from the actual send time, measured window.
    pub uncorrected: String,
    /// TCP connect + handshake, whole run.
    pub connect: String,
}

/// The final report of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// JSON schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Always `loadgen`.
    pub tool: String,
    /// loadgen's version.
    pub version: String,
    /// The options used.
    pub config: ConfigSummary,
    /// Length of the measured window, seconds.
    pub measured_s: f64,
    /// Correct echoes received in the measured window.
    pub messages: u64,
    /// Messages sent in the measured window.
    pub sent: u64,
    /// `messages / measured_s`.
    pub msgs_per_sec: f64,
    /// Payload bytes of the correct echoes in the measured window.
    pub bytes: u64,
    /// Echoed payload, 10^6 bytes per second (each direction carries as much).
    pub mb_per_sec: f64,
    /// Round-trip latency in the measured window, microseconds.
    pub latency_us: LatencyPair,
    /// TCP connect + handshake latency, microseconds (whole run).
    pub connect_latency_us: Latency,
    /// Connection outcomes (whole run).
    pub connections: Connections,
    /// Bad echoes (whole run).
    pub errors: Errors,
    /// Exit status.
    pub exit: ExitInfo,
    /// Wall-clock start of the measured window, seconds since the epoch
    /// (several loadgens started with the same `--start-at` agree on it).
    #[serde(default)]
    pub measured_from_unix_s: Option<f64>,
    /// Drops, reconnects and lost echoes (whole run; see `--reconnect`).
    #[serde(default)]
    pub reconnect: ReconnectReport,
    /// The histograms behind the latency figures, for exact merging.
    #[serde(default)]
    pub histograms: Option<Histograms>,
    /// loadgen's own load: the driver, its CPU per message, its busiest
    /// thread, and a warning when that thread was the limit.
    #[serde(default)]
    pub client: Option<Ceiling>,
}

impl Report {
    /// Builds the report from the measured window and the whole-run totals.
    /// `interrupted` says the load was stopped early by Ctrl-C.
    ///
    /// The exit status is the most serious finding: every connection
    /// failed (3), then bad echoes (4), then the interruption (130), then
    /// failed or lost connections (5). An interrupted run says so even when
    /// connections were still opening: they were cut short, not refused.
    pub fn build(
        cfg: &RunConfig,
        measured: &Interval,
        measured_s: f64,
        whole: &Interval,
        interrupted: bool,
    ) -> Report {
        // Connections still connecting or handshaking when the run ended (or
        // never started) did not open either: count them, or a run could
        // report "431 opened, 0 failed" and exit 0.
        let mut connect_failures = whole.connect_failures.clone();
        let unopened =
            (cfg.connections as u64).saturating_sub(whole.opened + connect_failures.total());
        for _ in 0..unopened {
            connect_failures.count(
                "unopened",
                "not open when the run ended (still connecting or handshaking)",
            );
        }
        let connect_failures = &connect_failures;
        let failures = connect_failures.total();
        let lost = whole.disconnects.total();
        let errors = Errors::from(whole.errors);
        // Refused, timed out, ...: not just cut short by the end of the run.
        let refused = whole.connect_failures.total();
        // Stopped before any connection could open (e.g. Ctrl-C while
        // waiting for --start-at): an interruption, not a failure.
        let cut_short = interrupted && refused == 0;
        let (status, message) = if whole.opened == 0 && failures > 0 && !cut_short {
            (
                ExitStatus::AllConnectionsFailed,
                format!(
                    "all {} connections failed: {}",
                    failures,
                    connect_failures.describe()
                ),
            )
        } else if whole.opened == 0 && !cut_short {
            (
                ExitStatus::AllConnectionsFailed,
                "no connection opened before the run ended".to_string(),
            )
        } else if errors.total > 0 {
            (
                ExitStatus::EchoErrors,
                format!("{} bad echoes ({})", errors.total, describe_errors(&errors)),
            )
        } else if interrupted {
            let message = if measured_s > 0.0 {
                format!(
                    "interrupted (Ctrl-C): report of the first {measured_s:.2} s of {:.2} s",
                    cfg.duration.as_secs_f64()
                )
            } else {
                "interrupted (Ctrl-C) during the warmup: nothing was measured".to_string()
            };
            (ExitStatus::Interrupted, message)
        } else if failures > 0 || lost > 0 {
            let mut parts = Vec::new();
            if failures > 0 {
                parts.push(format!(
                    "{failures} connections failed: {}",
                    connect_failures.describe()
                ));
            }
            if lost > 0 {
                parts.push(format!(
                    "{lost} connections lost: {}",
                    whole.disconnects.describe()
                ));
            }
            (ExitStatus::ConnectionErrors, parts.join("; "))
        } else {
            (ExitStatus::Ok, "ok".to_string())
        };
        let mut reasons = connect_failures.detail.clone();
        reasons.extend(whole.disconnects.detail.clone());
        reasons.extend(whole.reconnect.dropped.detail.clone());
        reasons.extend(whole.reconnect.failures.detail.clone());
        let secs = measured_s.max(1e-9);
        Report {
            schema_version: SCHEMA_VERSION,
            tool: "loadgen".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config: ConfigSummary::from_config(cfg),
            measured_s,
            messages: measured.messages,
            sent: measured.sent,
            msgs_per_sec: (measured.messages as f64 / secs).round(),
            bytes: measured.bytes,
            mb_per_sec: (measured.bytes as f64 / secs / 1e4).round() / 100.0,
            latency_us: LatencyPair {
                corrected: Latency::from_histogram(&measured.corrected),
                uncorrected: Latency::from_histogram(&measured.uncorrected),
            },
            connect_latency_us: Latency::from_histogram(&whole.connect),
            connections: Connections {
                requested: cfg.connections,
                opened: whole.opened,
                failed: failures,
                failures: connect_failures.counts.clone(),
                lost: whole.disconnects.counts.clone(),
                reasons,
                extensions: whole.extensions.counts.clone(),
            },
            errors,
            exit: ExitInfo {
                code: status.code(),
                status,
                message,
            },
            measured_from_unix_s: None,
            reconnect: ReconnectReport::from_counts(cfg.reconnect, &whole.reconnect),
            histograms: Some(Histograms {
                corrected: histogram_b64::encode(&measured.corrected),
                uncorrected: histogram_b64::encode(&measured.uncorrected),
                connect: histogram_b64::encode(&whole.connect),
            }),
            client: None,
        }
    }
}

fn describe_errors(e: &Errors) -> String {
    [
        ("content", e.content),
        ("order", e.order),
        ("length", e.length),
        ("protocol", e.protocol),
        ("unexpected", e.unexpected),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| format!("{k} {n}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// Formats an integer with thousands separators: `265,123`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Writes a latency table row: label then p50 p90 p99 p99.9 p99.99 max.
pub fn latency_row(out: &mut String, label: &str, l: &Latency) {
    let _ = writeln!(
        out,
        "  {label:<13}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{:>10.1}",
        l.p50, l.p90, l.p99, l.p99_9, l.p99_99, l.max
    );
}

/// The header of the latency table.
pub fn latency_header(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        "  {title:<13}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "p50", "p90", "p99", "p99.9", "p99.99", "max"
    );
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let mut o = String::new();
        let mode = match c.rate_hz {
            Some(r) => format!("open loop at {r} Hz"),
            None => "closed loop".to_string(),
        };
        let size = if c.size_min == c.size_max {
            format!("{} B", c.size_min)
        } else {
            format!("{}..{} B", c.size_min, c.size_max)
        };
        let _ = writeln!(
            o,
            "loadgen {}: {}  {mode}, {} connections x {size} {}, {} in flight, {} thread(s){}",
            self.version,
            c.target,
            c.connections,
            c.payload,
            c.in_flight,
            c.threads,
            c.preset
                .as_ref()
                .map(|p| format!(", preset {p}"))
                .unwrap_or_default()
        );
        let cn = &self.connections;
        // With no connection open there is nothing to measure: no table of zeros.
        if cn.opened > 0 {
            let _ = writeln!(
                o,
                "  measured {:.2} s after {:.2} s warmup",
                self.measured_s, c.warmup_s
            );
            let _ = writeln!(
                o,
                "  throughput   {} msg/s   {:.2} MB/s payload each way   ({} echoes received, {} \
                 sent in the window: they differ by the messages in flight at its two ends)",
                group(self.msgs_per_sec as u64),
                self.mb_per_sec,
                group(self.messages),
                group(self.sent)
            );
            latency_header(&mut o, "latency (us)");
            latency_row(&mut o, "corrected", &self.latency_us.corrected);
            latency_row(&mut o, "uncorrected", &self.latency_us.uncorrected);
            latency_row(&mut o, "connect", &self.connect_latency_us);
        }
        let _ = writeln!(
            o,
            "  connections  {} requested, {} opened, {} failed, {} lost",
            cn.requested,
            cn.opened,
            cn.failed,
            cn.lost.values().sum::<u64>()
        );
        for (k, n) in cn.failures.iter().chain(cn.lost.iter()) {
            let d = cn.reasons.get(k).map(String::as_str).unwrap_or(k);
            let _ = writeln!(o, "    {n} x {d} [{k}]");
        }
        if let Some(offer) = &c.permessage_deflate {
            let _ = writeln!(o, "  offered      {offer}");
            for (answer, n) in &cn.extensions {
                let _ = writeln!(o, "    agreed by {n}: {answer}");
            }
        }
        let rc = &self.reconnect;
        if rc.enabled || rc.echoes_lost > 0 {
            let _ = writeln!(
                o,
                "  reconnects   {} after {} drops, {} failed attempts, {} messages resent, {} echoes lost",
                rc.reconnects,
                rc.dropped.values().sum::<u64>(),
                rc.failed_attempts.values().sum::<u64>(),
                rc.resent,
                rc.echoes_lost
            );
            for (k, n) in rc.dropped.iter() {
                let d = cn.reasons.get(k).map(String::as_str).unwrap_or(k);
                let _ = writeln!(o, "    dropped {n} x {d} [{k}]");
            }
            for (k, n) in rc.failed_attempts.iter() {
                let d = cn.reasons.get(k).map(String::as_str).unwrap_or(k);
                let _ = writeln!(o, "    failed attempt {n} x {d} [{k}]");
            }
        }
        let e = &self.errors;
        let _ = writeln!(
            o,
            "  errors       {} (content {}, order {}, length {}, protocol {}, unexpected {})",
            e.total, e.content, e.order, e.length, e.protocol, e.unexpected
        );
        if let Some(client) = &self.client {
            let _ = writeln!(o, "  loadgen      {}", client.line());
            if let Some(w) = &client.warning {
                let _ = writeln!(o, "  WARNING      {w}");
            }
        }
        let _ = write!(
            o,
            "  result       {} (exit {})",
            self.exit.message, self.exit.code
        );
        f.write_str(&o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(265123), "265,123");
        assert_eq!(group(1234567), "1,234,567");
    }

    #[test]
    fn latency_in_microseconds() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap(); // 1..1000 us
        }
        let l = Latency::from_histogram(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50 - 500.0).abs() <= 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() <= 1.0, "{l:?}");
    }
}
