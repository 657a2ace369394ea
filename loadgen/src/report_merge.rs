//! `loadgen merge a.json b.json ...`: one combined report from the JSON
//! reports of several loadgens (typically on several hosts, started
//! together with `--start-at`).
//!
//! Latency comes from the reports' histograms (`histograms` in the JSON),
//! added exactly, never from their percentiles: the combined p99 is the p99
//! of every sample of every input. Counts (messages, bytes, connections,
//! errors, reconnects) add up. Throughput is the sum of the inputs'
//! rates, which is right for loads that ran at the same time; the combined
//! report says whether the inputs' measured windows line up
//! (`windows_aligned`). The configuration is the first input's, with the
//! connection counts and threads added up; loadgen's own load (`client`)
//! is the busiest input's, with its warning if it has one.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::histogram_b64;
use crate::report::{Connections, Errors, ExitInfo, Histograms, Latency, LatencyPair, Report};
use crate::stats::new_histogram;

/// How far apart the inputs' measured windows (start and length) may be
/// and still count as one window.
pub const WINDOW_TOLERANCE_S: f64 = 0.5;

/// One input of a merge of reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedInput {
    /// The JSON report file.
    pub path: PathBuf,
    /// Its measured window's start, seconds since the epoch.
    pub measured_from_unix_s: Option<f64>,
    /// Its measured window's length, seconds.
    pub measured_s: f64,
    /// Its correct echoes.
    pub messages: u64,
    /// Its throughput.
    pub msgs_per_sec: f64,
    /// Its own corrected percentiles.
    pub corrected: Latency,
    /// Its exit code.
    pub exit_code: i32,
}

/// The combined report: a [`Report`] of all inputs together, plus where
/// it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CombinedReport {
    /// The combined figures, in the run report's schema.
    #[serde(flatten)]
    pub report: Report,
    /// The inputs, in the order given.
    pub inputs: Vec<MergedInput>,
    /// True when every input's measured window starts within
    /// [`WINDOW_TOLERANCE_S`] of the others and is as long, within as much.
    pub windows_aligned: bool,
    /// The mean of the inputs' corrected p99, shown only to warn: it is NOT
    /// a percentile of anything.
    pub mean_of_input_p99_us_do_not_use: f64,
}

/// True when `path` holds a JSON report (it starts with `{`), false for
/// anything else (an interval log starts with `#`).
pub fn is_json_report(path: &Path) -> Result<bool> {
    let text = std::fs::read(path).map_err(|source| Error::File {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'))
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Report {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_report(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::File {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| bad(path, format!("not a loadgen JSON report: {e}")))
}

/// The three histograms of a report.
struct Decoded {
    corrected: Histogram<u64>,
    uncorrected: Histogram<u64>,
    connect: Histogram<u64>,
}

fn decode(path: &Path, h: &Option<Histograms>) -> Result<Decoded> {
    let h = h.as_ref().ok_or_else(|| {
        bad(
            path,
            "the report has no histograms (written by an older loadgen): merge its --hlog instead",
        )
    })?;
    let one = |text: &str| histogram_b64::decode(text).map_err(|e| bad(path, e));
    Ok(Decoded {
        corrected: one(&h.corrected)?,
        uncorrected: one(&h.uncorrected)?,
        connect: one(&h.connect)?,
    })
}

fn add_into(total: &mut Histogram<u64>, h: &Histogram<u64>, path: &Path) -> Result<()> {
    total
        .add(h)
        .map_err(|e| bad(path, format!("cannot add histogram: {e:?}")))
}

fn add_counts(total: &mut BTreeMap<String, u64>, more: &BTreeMap<String, u64>) {
    for (k, v) in more {
        *total.entry(k.clone()).or_default() += v;
    }
}

/// How serious an exit is, in the order a run picks its own exit status:
/// every connection failed, bad echoes, interrupted, connection errors, ok.
fn seriousness(code: i32) -> u8 {
    match code {
        3 => 4,
        4 => 3,
        130 => 2,
        5 => 1,
        _ => 0,
    }
}

/// Merges the JSON reports at `paths` into one combined report.
pub fn merge_reports(paths: &[PathBuf]) -> Result<CombinedReport> {
    let (first_path, rest) = paths
        .split_first()
        .ok_or_else(|| Error::Config("nothing to merge".into()))?;
    let first = read_report(first_path)?;
    let mut corrected = new_histogram();
    let mut uncorrected = new_histogram();
    let mut connect = new_histogram();
    let mut out = first.clone();
    out.connections = Connections::default();
    out.errors = Errors::default();
    out.reconnect = Default::default();
    out.config.connections = 0;
    out.config.threads = 0;
    out.config.connect_rate = 0.0;
    out.config.pin = None;
    out.measured_s = 0.0;
    out.messages = 0;
    out.sent = 0;
    out.bytes = 0;
    out.msgs_per_sec = 0.0;
    out.mb_per_sec = 0.0;
    out.measured_from_unix_s = None;
    out.client = None;
    let mut inputs = Vec::with_capacity(paths.len());
    let mut worst: Option<(PathBuf, ExitInfo)> = None;
    let mut targets: Vec<String> = Vec::new();

    for (path, r) in
        std::iter::once((first_path, Ok(first))).chain(rest.iter().map(|p| (p, read_report(p))))
    {
        let r = r?;
        let h = decode(path, &r.histograms)?;
        add_into(&mut corrected, &h.corrected, path)?;
        add_into(&mut uncorrected, &h.uncorrected, path)?;
        add_into(&mut connect, &h.connect, path)?;
        if !targets.contains(&r.config.target) {
            targets.push(r.config.target.clone());
        }
        if out.config.preset != r.config.preset {
            out.config.preset = None;
        }
        out.config.connections += r.config.connections;
        out.config.threads += r.config.threads;
        out.config.connect_rate += r.config.connect_rate;
        out.measured_s = out.measured_s.max(r.measured_s);
        out.messages += r.messages;
        out.sent += r.sent;
        out.bytes += r.bytes;
        out.msgs_per_sec += r.msgs_per_sec;
        out.mb_per_sec += r.mb_per_sec;
        out.measured_from_unix_s = match (out.measured_from_unix_s, r.measured_from_unix_s) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let c = &mut out.connections;
        c.requested += r.connections.requested;
        c.opened += r.connections.opened;
        c.failed += r.connections.failed;
        add_counts(&mut c.failures, &r.connections.failures);
        add_counts(&mut c.lost, &r.connections.lost);
        for (k, v) in &r.connections.reasons {
            c.reasons.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let e = &mut out.errors;
        e.total += r.errors.total;
        e.length += r.errors.length;
        e.order += r.errors.order;
        e.content += r.errors.content;
        e.protocol += r.errors.protocol;
        e.unexpected += r.errors.unexpected;
        out.reconnect.add(&r.reconnect);
        // The busiest loadgen of all decides the ceiling of the whole.
        if let Some(client) = &r.client {
            let busier = out
                .client
                .as_ref()
                .is_none_or(|c| client.busiest_thread_util > c.busiest_thread_util);
            if busier {
                let mut client = client.clone();
                client.warning = client.warning.map(|w| format!("{}: {w}", path.display()));
                out.client = Some(client);
            }
        }
        let more_serious = worst
            .as_ref()
            .is_none_or(|(_, w)| seriousness(r.exit.code) > seriousness(w.code));
        if more_serious {
            worst = Some((path.clone(), r.exit.clone()));
        }
        inputs.push(MergedInput {
            path: path.clone(),
            measured_from_unix_s: r.measured_from_unix_s,
            measured_s: r.measured_s,
            messages: r.messages,
            msgs_per_sec: r.msgs_per_sec,
            corrected: r.latency_us.corrected,
            exit_code: r.exit.code,
        });
    }
    out.config.target = targets.join(", ");
    out.mb_per_sec = (out.mb_per_sec * 100.0).round() / 100.0;
    out.latency_us = LatencyPair {
        corrected: Latency::from_histogram(&corrected),
        uncorrected: Latency::from_histogram(&uncorrected),
    };
    out.connect_latency_us = Latency::from_histogram(&connect);
    out.histograms = Some(Histograms {
        corrected: histogram_b64::encode(&corrected),
        uncorrected: histogram_b64::encode(&uncorrected),
        connect: histogram_b64::encode(&connect),
    });
    if let Some((path, exit)) = worst {
        out.exit = if exit.code == 0 {
            exit
        } else {
            ExitInfo {
                message: format!("{}: {}", path.display(), exit.message),
                ..exit
            }
        };
    }
    let windows_aligned = aligned(&inputs);
    let mean_p99 = inputs.iter().map(|i| i.corrected.p99).sum::<f64>() / inputs.len() as f64;
    Ok(CombinedReport {
        report: out,
        inputs,
        windows_aligned,
        mean_of_input_p99_us_do_not_use: (mean_p99 * 10.0).round() / 10.0,
    })
}

/// Whether the inputs measured one window (see [`CombinedReport::windows_aligned`]).
fn aligned(inputs: &[MergedInput]) -> bool {
    let spread = |values: Vec<f64>| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        hi - lo
    };
    let Some(starts) = inputs
        .iter()
        .map(|i| i.measured_from_unix_s)
        .collect::<Option<Vec<f64>>>()
    else {
        return false;
    };
    spread(starts) <= WINDOW_TOLERANCE_S
        && spread(inputs.iter().map(|i| i.measured_s).collect()) <= WINDOW_TOLERANCE_S
}

impl fmt::Display for CombinedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "merged {} reports (histograms added, percentiles of the sum):",
            self.inputs.len()
        )?;
        for i in &self.inputs {
            let from = i
                .measured_from_unix_s
                .map(|t| format!("from {t:.3}"))
                .unwrap_or_else(|| "start unknown".into());
            writeln!(
                f,
                "  {}  {from}, {:.2} s, {} msg/s, p99 {:.1} us, exit {}",
                i.path.display(),
                i.measured_s,
                crate::report::group(i.msgs_per_sec as u64),
                i.corrected.p99,
                i.exit_code
            )?;
        }
        if !self.windows_aligned {
            writeln!(
                f,
                "  warning: the measured windows differ (start or length more than {WINDOW_TOLERANCE_S} s \
                 apart); msg/s is the sum of the inputs' rates, right only for loads that ran \
                 together (use --start-at)"
            )?;
        }
        writeln!(f, "{}", self.report)?;
        write!(
            f,
            "  note: the mean of the inputs' p99s would be {:.1} us; averaging percentiles is \
             wrong, use the merged p99 above.",
            self.mean_of_input_p99_us_do_not_use
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_seriousness_follows_the_run_order() {
        let order = [3, 4, 130, 5, 0];
        for w in order.windows(2) {
            assert!(seriousness(w[0]) > seriousness(w[1]), "{w:?}");
        }
    }

    fn input(start: Option<f64>, len: f64) -> MergedInput {
        MergedInput {
            path: "x.json".into(),
            measured_from_unix_s: start,
            measured_s: len,
            messages: 0,
            msgs_per_sec: 0.0,
            corrected: Latency::default(),
            exit_code: 0,
        }
    }

    #[test]
    fn windows_align_within_the_tolerance() {
        assert!(aligned(&[input(Some(100.0), 5.0), input(Some(100.2), 5.1)]));
        assert!(!aligned(&[
            input(Some(100.0), 5.0),
            input(Some(101.0), 5.0)
        ]));
        assert!(!aligned(&[
            input(Some(100.0), 5.0),
            input(Some(100.0), 3.0)
        ]));
        assert!(!aligned(&[input(None, 5.0), input(Some(100.0), 5.0)]));
    }
}
