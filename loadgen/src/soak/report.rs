//! The soak's report: totals, latency per class over the hold, the checks
//! and the verdict, the time series; text for people, JSON for scripts.
//!
//! # JSON schema (version 1)
//!
//! Top-level fields: `schema_version` (1), `tool` (`loadgen soak`),
//! `version`, `target`, `config`, `totals`, `latency_us` (one entry per
//! class: `class`, `corrected`, `uncorrected`, over the hold phase, in the
//! same latency object as the plain report), `checks` (`name`, `pass`,
//! `detail`), `pass`, `interrupted`, `exit` and `series` (the rows of
//! [`super::series::Row`]). Fields are only ever added within a schema
//! version.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use crate::ceiling::Ceiling;
use crate::reasons::ReasonCounts;
use crate::report::{group, latency_header, latency_row, ExitInfo, ExitStatus, Latency};
use crate::soak::config::SoakConfig;
use crate::soak::series::Row;
use crate::soak::stats::SoakInterval;

/// Version of the soak JSON schema.
pub const SOAK_SCHEMA_VERSION: u32 = 1;

/// One traffic class as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    /// `player`, `burst` or `lobby`.
    pub class: String,
    /// Connections held.
    pub connections: usize,
    /// Ticks per second per connection.
    pub rate_hz: f64,
    /// Messages per tick.
    pub per_tick: usize,
    /// Smallest message.
    pub size_min: usize,
    /// Largest message.
    pub size_max: usize,
    /// `binary` or `text`.
    pub payload: String,
    /// Most messages in flight per connection.
    pub window: usize,
    /// Messages per second the class offers.
    pub offered_per_sec: f64,
}

/// The soak's options, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakSummary {
    /// Connections held at once.
    pub connections: usize,
    /// The hold, seconds.
    pub duration_s: f64,
    /// The ramp that opens the connections, seconds.
    pub ramp_s: f64,
    /// Connects per second during the ramp.
    pub connect_rate: f64,
    /// Closes and reconnects per second during the hold.
    pub churn_per_sec: f64,
    /// The classes.
    pub classes: Vec<ClassSummary>,
    /// Messages per second offered by all classes.
    pub offered_per_sec: f64,
    /// Client source addresses (empty: the system's choice).
    pub sources: Vec<String>,
    /// Worker threads.
    pub threads: usize,
    /// CPUs the workers were pinned to.
    pub pin: Option<Vec<usize>>,
    /// Length of one time-series interval, seconds.
    pub interval_s: f64,
    /// Connect + handshake timeout, seconds.
    pub connect_timeout_s: f64,
    /// Close timeout, seconds.
    pub close_timeout_s: f64,
}

impl SoakSummary {
    /// Summarises a configuration.
    pub fn from_config(c: &SoakConfig) -> SoakSummary {
        SoakSummary {
            connections: c.mix.total(),
            duration_s: c.duration.as_secs_f64(),
            ramp_s: c.ramp().as_secs_f64(),
            connect_rate: c.connect_rate,
            churn_per_sec: c.churn_rate,
            classes: c
                .mix
                .classes
                .iter()
                .map(|s| ClassSummary {
                    class: s.name.into(),
                    connections: s.connections,
                    rate_hz: s.rate_hz,
                    per_tick: s.per_tick,
                    size_min: s.size.min,
                    size_max: s.size.max,
                    payload: s.payload.name().into(),
                    window: s.window,
                    offered_per_sec: s.messages_per_sec(),
                })
                .collect(),
            offered_per_sec: c.mix.messages_per_sec(),
            sources: c.sources.iter().map(ToString::to_string).collect(),
            threads: c.threads,
            pin: c.pin.clone(),
            interval_s: c.interval.as_secs_f64(),
            connect_timeout_s: c.connect_timeout.as_secs_f64(),
            close_timeout_s: c.close_timeout.as_secs_f64(),
        }
    }
}

/// Counts over the whole soak (ramp, hold and drain).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Connects started.
    pub connects: u64,
    /// Handshakes completed.
    pub opened: u64,
    /// Closes started by the client (churn and drain).
    pub closes: u64,
    /// Closes that ended cleanly.
    pub closed_clean: u64,
    /// Clean closes after which the server kept TCP open past the timeout.
    pub tcp_left_open: u64,
    /// Connections that ended without a clean close, by reason.
    pub unexpected_closes: BTreeMap<String, u64>,
    /// Failed connects or handshakes, by reason.
    pub connect_failures: BTreeMap<String, u64>,
    /// Messages sent.
    pub sent: u64,
    /// Correct echoes.
    pub echoes: u64,
    /// Messages whose echo never came.
    pub lost: u64,
    /// Bad echoes, all reasons.
    pub corrupted: u64,
    /// Bad echoes by reason (`length`, `order`, `content`, `protocol`, `unexpected`).
    pub corrupted_by_reason: BTreeMap<String, u64>,
    /// Most WebSockets open at an interval's end.
    pub max_open: u64,
    /// Payload bytes echoed correctly.
    pub bytes: u64,
}

/// Latency of one class over the hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassLatency {
    /// `player`, `burst` or `lobby`.
    pub class: String,
    /// From the tick that wanted the message (coordinated omission corrected).
    pub corrected: Latency,
    /// From the actual send.
    pub uncorrected: Latency,
}

/// One pass criterion checked by loadgen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub pass: bool,
    /// The figure behind it.
    pub detail: String,
}

/// The report of a soak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoakReport {
    /// [`SOAK_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `loadgen soak`.
    pub tool: String,
    /// loadgen's version.
    pub version: String,
    /// Target URL.
    pub target: String,
    /// The options.
    pub config: SoakSummary,
    /// Counts over the whole soak.
    pub totals: Totals,
    /// Latency per class over the hold.
    pub latency_us: Vec<ClassLatency>,
    /// The criteria and whether each held.
    pub checks: Vec<Check>,
    /// All checks held (and the soak was not interrupted).
    pub pass: bool,
    /// Stopped early by Ctrl-C.
    pub interrupted: bool,
    /// Exit status.
    pub exit: ExitInfo,
    /// The time series, one row per interval.
    pub series: Vec<Row>,
    /// loadgen's own load over the hold: the driver, its CPU per echo,
    /// its busiest thread, and a warning when that thread was the limit.
    #[serde(default)]
    pub client: Option<Ceiling>,
}

fn reasons(r: &ReasonCounts) -> BTreeMap<String, u64> {
    r.counts.clone()
}

impl SoakReport {
    /// Builds the report from the whole-soak counts, the hold-phase
    /// counts (for latency) and the series.
    pub fn build(
        cfg: &SoakConfig,
        whole: &SoakInterval,
        hold: &SoakInterval,
        series: Vec<Row>,
        interrupted: bool,
    ) -> SoakReport {
        let mut connect_failures = ReasonCounts::default();
        let mut errors = crate::stats::ErrorCounts::default();
        for c in &whole.classes {
            connect_failures.add(&c.connect_failures);
            errors.add(&c.errors);
        }
        let corrupted_by_reason: BTreeMap<String, u64> = [
            ("length", errors.length),
            ("order", errors.order),
            ("content", errors.content),
            ("protocol", errors.protocol),
            ("unexpected", errors.unexpected),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), n))
        .collect();
        let totals = Totals {
            connects: whole.connects,
            opened: whole.opened_total(),
            closes: whole.closes,
            closed_clean: whole.closed_clean,
            tcp_left_open: whole.tcp_left_open,
            unexpected_closes: reasons(&whole.unexpected),
            connect_failures: reasons(&connect_failures),
            sent: whole.sent_total(),
            echoes: whole.echoes_total(),
            lost: whole.lost_total(),
            corrupted: errors.total(),
            corrupted_by_reason,
            max_open: series.iter().map(|r| r.open).max().unwrap_or(0),
            bytes: whole.classes.iter().map(|c| c.bytes).sum(),
        };
        let latency_us: Vec<ClassLatency> = cfg
            .mix
            .classes
            .iter()
            .zip(&hold.classes)
            .map(|(spec, iv)| ClassLatency {
                class: spec.name.into(),
                corrected: Latency::from_histogram(&iv.corrected),
                uncorrected: Latency::from_histogram(&iv.uncorrected),
            })
            .collect();

        let mut checks = vec![
            Check {
                name: "no lost echoes".into(),
                pass: totals.lost == 0,
                detail: format!("{} lost of {} sent", totals.lost, totals.sent),
            },
            Check {
                name: "no corrupted echoes".into(),
                pass: totals.corrupted == 0,
                detail: format!("{} bad of {} echoes", totals.corrupted, totals.echoes),
            },
            Check {
                name: "no unexpected closes".into(),
                pass: whole.unexpected.total() == 0,
                detail: if whole.unexpected.total() == 0 {
                    format!("{} clean closes", totals.closed_clean)
                } else {
                    whole.unexpected.describe()
                },
            },
            Check {
                name: "no failed connects".into(),
                pass: connect_failures.total() == 0,
                detail: if connect_failures.total() == 0 {
                    format!("{} opened", totals.opened)
                } else {
                    connect_failures.describe()
                },
            },
        ];
        for (spec, lat) in cfg.mix.classes.iter().zip(&latency_us) {
            if spec.connections == 0 {
                continue;
            }
            checks.push(Check {
                name: format!("{} p99 reported", spec.name),
                pass: lat.corrected.count > 0,
                detail: format!(
                    "p99 {:.1} us over {} echoes",
                    lat.corrected.p99, lat.corrected.count
                ),
            });
        }
        let failed = |prefix: &str| checks.iter().any(|c| !c.pass && c.name.starts_with(prefix));
        let status = if interrupted {
            ExitStatus::Interrupted
        } else if totals.opened == 0 {
            ExitStatus::AllConnectionsFailed
        } else if failed("no lost")
            || failed("no corrupted")
            || checks
                .iter()
                .any(|c| !c.pass && c.name.ends_with("p99 reported"))
        {
            ExitStatus::EchoErrors
        } else if failed("no unexpected") || failed("no failed") {
            ExitStatus::ConnectionErrors
        } else {
            ExitStatus::Ok
        };
        let message = match status {
            ExitStatus::Ok => {
                "soak passed: every echo came back intact, every close was clean".into()
            }
            ExitStatus::Interrupted => {
                "stopped by Ctrl-C; the report covers the part that ran".into()
            }
            _ => {
                let failing: Vec<String> = checks
                    .iter()
                    .filter(|c| !c.pass)
                    .map(|c| format!("{} ({})", c.name, c.detail))
                    .collect();
                format!("soak failed: {}", failing.join("; "))
            }
        };
        SoakReport {
            schema_version: SOAK_SCHEMA_VERSION,
            tool: "loadgen soak".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            target: cfg.target.url.clone(),
            config: SoakSummary::from_config(cfg),
            pass: status == ExitStatus::Ok,
            totals,
            latency_us,
            checks,
            interrupted,
            exit: ExitInfo {
                code: status.code(),
                status,
                message,
            },
            series,
            client: None,
        }
    }
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let t = &self.totals;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "soak of {}: {} WebSockets held {:.0} s after a {:.1} s ramp, churn {}/s",
            self.target,
            group(c.connections as u64),
            c.duration_s,
            c.ramp_s,
            c.churn_per_sec
        );
        for class in &c.classes {
            let size = if class.size_min == class.size_max {
                format!("{} B", class.size_min)
            } else {
                format!("{}..{} B", class.size_min, class.size_max)
            };
            let burst = if class.per_tick > 1 {
                format!(" x {} per tick", class.per_tick)
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "  {:<7} {:>6} conns x {} Hz x {size} {}{burst}, {} msg/s offered",
                class.class,
                group(class.connections as u64),
                class.rate_hz,
                class.payload,
                group(class.offered_per_sec.round() as u64),
            );
        }
        let _ = writeln!(
            o,
            "\nconnections: {} connects, {} opened, {} closes ({} clean), most open {}",
            group(t.connects),
            group(t.opened),
            group(t.closes),
            group(t.closed_clean),
            group(t.max_open)
        );
        let _ = writeln!(
            o,
            "messages:    {} sent, {} echoed ({} bytes), {} lost, {} corrupted",
            group(t.sent),
            group(t.echoes),
            group(t.bytes),
            t.lost,
            t.corrupted
        );
        if t.tcp_left_open > 0 {
            let _ = writeln!(
                o,
                "note:        {} clean closes where the server kept TCP open past --close-timeout",
                t.tcp_left_open
            );
        }
        let _ = writeln!(
            o,
            "\nlatency over the hold (us, corrected for coordinated omission):"
        );
        latency_header(&mut o, "");
        for l in &self.latency_us {
            latency_row(&mut o, &l.class, &l.corrected);
        }
        let _ = writeln!(o, "\nchecks:");
        for check in &self.checks {
            let _ = writeln!(
                o,
                "  [{}] {}: {}",
                if check.pass { "pass" } else { "FAIL" },
                check.name,
                check.detail
            );
        }
        if let Some(client) = &self.client {
            let _ = writeln!(o, "\nloadgen:     {} (over the hold)", client.line());
            if let Some(w) = &client.warning {
                let _ = writeln!(o, "WARNING:     {w}");
            }
        }
        let _ = write!(o, "\n{}", self.exit.message);
        f.write_str(&o)
    }
}
