//! Progress of a long sweep: an indicatif bar with an ETA on a terminal,
//! one plain line per run otherwise (CI logs, pipes). Each finished run
//! prints its headline figures either way.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Reports how far a sweep has come and when it will end.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: usize,
    started: Instant,
    estimate_per_run: Duration,
}

impl Progress {
    /// Progress over `total` runs, each estimated to take `estimate_per_run`
    /// until real runs give a better figure. A bar only on a terminal.
    pub fn new(total: usize, estimate_per_run: Duration) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] {pos}/{len} runs, ETA {eta} {msg}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            total,
            done: 0,
            started: Instant::now(),
            estimate_per_run,
        }
    }

    /// The expected time left: measured time per run so far (the estimate
    /// before the first run) times the runs left.
    pub fn eta(&self) -> Duration {
        let per_run = if self.done == 0 {
            self.estimate_per_run
        } else {
            self.started.elapsed() / self.done as u32
        };
        per_run * (self.total - self.done) as u32
    }

    /// Shows which run is starting.
    pub fn start(&self, label: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(label.to_string());
        }
    }

    /// Counts a run as done and prints `line` about it.
    pub fn finish(&mut self, line: &str) {
        self.done += 1;
        let text = format!(
            "[{}/{}] {line} | ETA {}",
            self.done,
            self.total,
            format_duration(self.eta())
        );
        match &self.bar {
            Some(bar) => {
                bar.println(text);
                bar.inc(1);
            }
            None => eprintln!("{text}"),
        }
    }

    /// Prints a line that is not about one run.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn close(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `754s` -> `12m34s`.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if seconds >= 60 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_starts_from_the_estimate() {
        let progress = Progress::new(10, Duration::from_secs(5));
        assert_eq!(progress.eta(), Duration::from_secs(50));
        assert_eq!(format_duration(Duration::from_secs(754)), "12m34s");
        assert_eq!(format_duration(Duration::from_secs(9)), "9s");
    }
}
