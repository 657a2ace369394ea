//! The live line printed once per interval.
//!
//! On a terminal it is an `indicatif` progress bar over the whole run with
//! the current interval's numbers as its message (and each line kept above
//! the bar); otherwise (pipes, CI logs) one plain line per interval on
//! stderr. Either way stdout stays free for the final report.

use std::fmt;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::group;
use crate::stats::{Interval, Phase};

/// The numbers of one interval, for people.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveLine {
    /// End of the interval, seconds since the run start.
    pub at_s: f64,
    /// Warmup or measured.
    pub phase: Phase,
    /// Correct echoes per second in the interval.
    pub msgs_per_sec: f64,
    /// Corrected median latency, us.
    pub p50_us: f64,
    /// Corrected p99, us.
    pub p99_us: f64,
    /// Corrected max, us.
    pub max_us: f64,
    /// Connections open at the end of the interval.
    pub open: u64,
    /// Bad echoes plus connection failures and losses in the interval.
    pub errors: u64,
}

impl LiveLine {
    /// Summarises an interval (all workers added) of `len_s` seconds ending at `at_s`.
    pub fn from_interval(iv: &Interval, phase: Phase, at_s: f64, len_s: f64) -> LiveLine {
        let us = |ns: u64| ns as f64 / 1000.0;
        LiveLine {
            at_s,
            phase,
            msgs_per_sec: iv.messages as f64 / len_s.max(1e-9),
            p50_us: us(iv.corrected.value_at_quantile(0.5)),
            p99_us: us(iv.corrected.value_at_quantile(0.99)),
            max_us: us(iv.corrected.max()),
            open: iv.open_now,
            errors: iv.errors.total() + iv.connect_failures.total() + iv.disconnects.total(),
        }
    }
}

impl fmt::Display for LiveLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>6.1}s {:>10} msg/s  p50 {:>9.1} us  p99 {:>9.1} us  max {:>9.1} us  conns {:>5}  errors {}{}",
            self.at_s,
            group(self.msgs_per_sec.round() as u64),
            self.p50_us,
            self.p99_us,
            self.max_us,
            self.open,
            self.errors,
            if self.phase == Phase::Warmup { "  (warmup)" } else { "" }
        )
    }
}

/// Where live lines go.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    /// A progress display for a run of `total` (warmup + duration).
    /// `quiet` suppresses it entirely.
    pub fn new(total: Duration, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total.as_millis() as u64),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                ProgressStyle::with_template("[{bar:20.cyan/blue}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Progress { bar, quiet }
    }

    /// Shows one interval.
    pub fn interval(&self, line: &LiveLine) {
        self.show(line.at_s, &line.to_string());
    }

    /// Shows one line of text for the moment `at_s` seconds into the run
    /// (other modes, such as `loadgen soak`, format their own lines).
    pub fn show(&self, at_s: f64, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => {
                bar.set_position((at_s * 1000.0) as u64);
                bar.println(text);
                bar.set_message(text.to_string());
            }
            None => eprintln!("{text}"),
        }
    }

    /// Removes the bar before the final report is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
