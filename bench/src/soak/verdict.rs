//! The pass criteria of a soak, applied to one backend's run:
//!
//! * 0 lost and 0 corrupted echoes, 0 unexpected closes, 0 failed
//!   connects (counted by `loadgen soak`, which checks every echo);
//! * the load was really held: the connections open at every interval of
//!   the hold, and the churn rate reached;
//! * engine RSS flat after the warm-up: less than 2% growth over the RSS
//!   window (the last 8 minutes of a 10-minute hold), comparing the median
//!   of the first and of the last 10 s of the window;
//! * the engine's open fds back to the baseline once everything closed;
//! * p99 reported for every class;
//! * the engine exits 0 on SIGTERM afterwards.

use serde::{Deserialize, Serialize};

use loadgen::soak::report::{Check, SoakReport};

use crate::soak::plan::SoakPlan;
use crate::soak::sample::Sample;

/// Engine RSS over the window: start and end (medians of the window's
/// first and last few seconds), the peak, and the growth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RssGrowth {
    /// Window start, seconds since loadgen started.
    pub from_s: f64,
    /// Window end (the end of the hold).
    pub to_s: f64,
    /// Median RSS over the window's first seconds, bytes.
    pub start_bytes: u64,
    /// Median RSS over the window's last seconds, bytes.
    pub end_bytes: u64,
    /// Highest RSS sampled in the window, bytes.
    pub peak_bytes: u64,
    /// (end - start) / start.
    pub growth: f64,
    /// (peak - start) / start.
    pub peak_growth: f64,
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// The RSS growth over `[from_s, to_s]`, with the medians taken over the
/// first and last `min(10 s, window / 6)`.
pub fn rss_growth(samples: &[Sample], from_s: f64, to_s: f64) -> Option<RssGrowth> {
    let edge = ((to_s - from_s) / 6.0).min(10.0);
    let within = |a: f64, b: f64| {
        samples
            .iter()
            .filter(move |s| s.t_s >= a && s.t_s <= b)
            .map(|s| s.rss_bytes)
            .collect::<Vec<u64>>()
    };
    let start_bytes = median(within(from_s, from_s + edge))?;
    let end_bytes = median(within(to_s - edge, to_s))?;
    let peak_bytes = within(from_s, to_s).into_iter().max()?;
    let rel = |b: u64| (b as f64 - start_bytes as f64) / start_bytes.max(1) as f64;
    Some(RssGrowth {
        from_s,
        to_s,
        start_bytes,
        end_bytes,
        peak_bytes,
        growth: rel(end_bytes),
        peak_growth: rel(peak_bytes),
    })
}

/// What the runner saw of one backend, besides loadgen's report.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Engine fds before loadgen started.
    pub fds_before: usize,
    /// Engine fds after loadgen ended and the engine settled.
    pub fds_after: usize,
    /// The engine's connections gauge at the end (should be 0).
    pub connections_after: Option<u64>,
    /// How the engine exited on SIGTERM.
    pub engine_exit: String,
    /// Whether that was exit code 0.
    pub engine_exit_ok: bool,
}

/// Applies the criteria; returns the checks in a fixed order.
pub fn judge(
    plan: &SoakPlan,
    report: &SoakReport,
    samples: &[Sample],
    observed: &Observed,
) -> (Vec<Check>, Option<RssGrowth>) {
    let mut checks: Vec<Check> = report
        .checks
        .iter()
        .filter(|c| !c.name.ends_with("p99 reported"))
        .cloned()
        .collect();

    let hold_from = report.config.ramp_s;
    let hold_to = hold_from + report.config.duration_s;
    let hold_rows: Vec<_> = report.series.iter().filter(|r| r.phase == "hold").collect();
    let least_open = hold_rows.iter().map(|r| r.open).min().unwrap_or(0);
    let wanted = plan.connections as u64;
    checks.push(Check {
        name: "connections held".into(),
        // Churn closes before it reopens: a few may be between the two.
        pass: !hold_rows.is_empty() && least_open * 100 >= wanted * 99,
        detail: format!(
            "{least_open} to {} open at interval ends over the hold (target {wanted})",
            hold_rows.iter().map(|r| r.open).max().unwrap_or(0)
        ),
    });
    let hold_closes: u64 = hold_rows.iter().map(|r| r.closes).sum();
    let churn = hold_closes as f64 / report.config.duration_s.max(1e-9);
    checks.push(Check {
        name: "churn held".into(),
        pass: churn >= plan.churn * 0.95,
        detail: format!(
            "{churn:.1} closes + reconnects a second over the hold (target {})",
            plan.churn
        ),
    });

    let window_from = (hold_to - plan.rss_window.as_secs_f64()).max(hold_from);
    let rss = rss_growth(samples, window_from, hold_to);
    checks.push(match rss {
        Some(g) => Check {
            name: format!(
                "engine RSS flat (under {:.0}% growth over the last {:.0} s)",
                plan.rss_growth_limit * 100.0,
                hold_to - window_from
            ),
            pass: g.growth < plan.rss_growth_limit,
            detail: format!(
                "{:+.2}% ({:.1} -> {:.1} MiB; peak {:+.2}%)",
                g.growth * 100.0,
                g.start_bytes as f64 / 1048576.0,
                g.end_bytes as f64 / 1048576.0,
                g.peak_growth * 100.0
            ),
        },
        None => Check {
            name: "engine RSS flat".into(),
            pass: false,
            detail: "no RSS samples in the window".into(),
        },
    });
    checks.push(Check {
        name: "open fds back to the baseline".into(),
        pass: observed.fds_after == observed.fds_before && observed.connections_after == Some(0),
        detail: format!(
            "{} before, {} after; connections gauge after: {}",
            observed.fds_before,
            observed.fds_after,
            observed
                .connections_after
                .map_or("no answer".into(), |c| c.to_string())
        ),
    });
    let p99s: Vec<String> = report
        .latency_us
        .iter()
        .filter(|l| l.corrected.count > 0)
        .map(|l| format!("{} {:.0} us", l.class, l.corrected.p99))
        .collect();
    let classes_with_traffic = report
        .config
        .classes
        .iter()
        .filter(|c| c.connections > 0)
        .count();
    checks.push(Check {
        name: "p99 reported".into(),
        pass: p99s.len() == classes_with_traffic
            && report.series.iter().any(|r| r.player_p99_us.is_some()),
        detail: p99s.join(", "),
    });
    checks.push(Check {
        name: "engine exits 0 on SIGTERM".into(),
        pass: observed.engine_exit_ok,
        detail: observed.engine_exit.clone(),
    });
    (checks, rss)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, rss_bytes: u64) -> Sample {
        Sample::new(t_s, rss_bytes, 10, Some(0))
    }

    #[test]
    fn growth_compares_medians_at_the_window_edges() {
        // Flat at 100 with one spike, then 101 at the end: +1%, peak +50%.
        let mut samples: Vec<Sample> = (0..=120).map(|t| sample(t as f64, 100)).collect();
        samples[60].rss_bytes = 150;
        for s in samples.iter_mut().filter(|s| s.t_s >= 110.0) {
            s.rss_bytes = 101;
        }
        let g = rss_growth(&samples, 0.0, 120.0).unwrap();
        assert_eq!((g.start_bytes, g.end_bytes, g.peak_bytes), (100, 101, 150));
        assert!((g.growth - 0.01).abs() < 1e-9);
        assert!((g.peak_growth - 0.5).abs() < 1e-9);
        // A lone spike at an edge does not move the median.
        samples[0].rss_bytes = 500;
        assert_eq!(rss_growth(&samples, 0.0, 120.0).unwrap().start_bytes, 100);
        assert!(rss_growth(&samples, 500.0, 600.0).is_none());
    }
}
