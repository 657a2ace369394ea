//! The sweep loop: measure every run in order, append each sample to the CSV
//! as soon as it exists, stop cleanly on Ctrl-C, then summarise, recommend
//! and write the report and plots from whatever was measured.

use std::io;
use std::path::{Path, PathBuf};

use crate::interrupt::Interrupt;
use crate::measure::{measure, Rig};
use crate::plan::{self, Axes, Run, Timing};
use crate::plot::{self, Marks};
use crate::progress::Progress;
use crate::provenance::Provenance;
use crate::recommend::{recommend, NoRecommendation, Recommendation};
use crate::report::{self, ReportInput};
use crate::sample::{Sample, SampleLog};
use crate::summary::{summarize, Summary};
use crate::workload::Workload;

/// Everything one sweep needs.
pub struct Sweep {
    /// The traffic.
    pub workload: Workload,
    /// The grid.
    pub axes: Axes,
    /// Repeats per setting.
    pub repeats: usize,
    /// Warmup and measured window per run.
    pub timing: Timing,
    /// Where the CSV, report and plots go.
    pub out_dir: PathBuf,
    /// Binaries and CPUs.
    pub rig: Rig,
    /// Commit, machine and command line, for the report.
    pub provenance: Provenance,
}

/// What a sweep produced.
pub struct Outcome {
    /// Every sample measured.
    pub samples: Vec<Sample>,
    /// Medians per setting.
    pub summaries: Vec<Summary>,
    /// The recommendation, or why there is none.
    pub recommendation: Result<Recommendation, NoRecommendation>,
    /// The CSV, the report and the plots.
    pub files: Vec<PathBuf>,
    /// Whether Ctrl-C stopped it early.
    pub interrupted: bool,
    /// Runs that failed, with why.
    pub failures: Vec<String>,
}

/// Why a sweep could not even write its results.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A result file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
}

impl Sweep {
    /// The runs, in measuring order.
    pub fn runs(&self) -> Vec<Run> {
        plan::runs(&self.axes.settings(), self.repeats)
    }

    /// Path of a result file named after the workload.
    fn path(&self, suffix: &str) -> PathBuf {
        self.out_dir.join(format!("{}{suffix}", self.workload.name))
    }

    /// The files a sweep writes: the CSV, the report and the plots.
    pub fn output_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.path(".csv"), self.path(".md")];
        files.extend(plot::paths(&self.out_dir, &self.workload.name));
        files
    }

    /// What `--plan` prints: a header naming the workload, the number of
    /// runs, the time per run, the total and the outputs, then every run.
    pub fn plan_text(&self) -> String {
        use std::fmt::Write as _;
        let runs = self.runs();
        let per_run = plan::estimate_run(self.timing, self.workload.connections);
        let format = crate::progress::format_duration;
        let mut text = String::new();
        let _ = writeln!(
            text,
            "workload   {}: {}",
            self.workload.name,
            self.workload.traffic()
        );
        let _ = writeln!(
            text,
            "loadgen    {}",
            self.workload.loadgen_args().join(" ")
        );
        let _ = writeln!(
            text,
            "runs       {} settings x {} repeats = {} runs",
            runs.len() / self.repeats.max(1),
            self.repeats,
            runs.len()
        );
        let _ = writeln!(
            text,
            "per run    about {} ({} warmup + {} measured, plus server start, connects and settling)",
            format(per_run),
            format(self.timing.warmup),
            format(self.timing.measure)
        );
        let _ = writeln!(
            text,
            "total      about {}",
            format(per_run * runs.len() as u32)
        );
        let _ = writeln!(text, "outputs    {}", self.out_dir.display());
        for file in self.output_files() {
            let _ = writeln!(text, "             {}", file.display());
        }
        let _ = writeln!(text);
        for run in &runs {
            let _ = writeln!(text, "repeat {}: {}", run.repeat + 1, run.setting.label());
        }
        text
    }

    /// Measures every run (until `interrupt`), then writes the results.
    pub fn run(&self, interrupt: &Interrupt) -> Result<Outcome, SweepError> {
        let runs = self.runs();
        std::fs::create_dir_all(&self.out_dir).map_err(|source| SweepError::Write {
            path: self.out_dir.clone(),
            source,
        })?;
        let csv = self.path(".csv");
        let mut log = SampleLog::create(&csv).map_err(|source| SweepError::Write {
            path: csv.clone(),
            source,
        })?;
        let estimate = plan::estimate_run(self.timing, self.workload.connections);
        let mut progress = Progress::new(runs.len(), estimate);
        progress.note(&format!(
            "{}: {} settings x {} repeats = {} runs, about {} in all",
            self.workload.name,
            runs.len() / self.repeats.max(1),
            self.repeats,
            runs.len(),
            crate::progress::format_duration(estimate * runs.len() as u32)
        ));
        let mut samples = Vec::new();
        let mut failures = Vec::new();
        for run in &runs {
            if interrupt.is_set() {
                break;
            }
            let label = format!("{} r{}", run.setting.label(), run.repeat + 1);
            progress.start(&label);
            let result = measure(&self.rig, &self.workload, run, self.timing);
            if interrupt.is_set() {
                // The signal reached loadgen and the server too: whatever
                // this run measured is not trustworthy.
                progress.note(&format!("{label}: interrupted, not kept"));
                break;
            }
            match result {
                Ok(sample) => {
                    log.append(&sample).map_err(|source| SweepError::Write {
                        path: csv.clone(),
                        source,
                    })?;
                    progress.finish(&format!(
                        "{label}: {:.0} msg/s, p99 {:.0} us, {:.2} CPU-us/msg, {:.1} KiB/conn{}{}{}",
                        sample.msgs_per_sec,
                        sample.p99_us,
                        sample.cpu_us_per_msg,
                        sample.rss_per_connection_bytes / 1024.0,
                        if sample.ring_ran_dry {
                            ", ring ran dry"
                        } else {
                            ""
                        },
                        if sample.loadgen_bound {
                            ", WARNING: loadgen's busiest thread was above 90% of its core \
                             (this run measured loadgen, not the server)"
                        } else {
                            ""
                        },
                        if sample.errors > 0 {
                            format!(", {} ERRORS", sample.errors)
                        } else {
                            String::new()
                        },
                    ));
                    samples.push(sample);
                }
                Err(error) => {
                    let failure = format!("{label}: {error}");
                    progress.finish(&format!("FAILED {failure}"));
                    failures.push(failure);
                }
            }
        }
        progress.close();
        drop(log);
        let interrupted = interrupt.is_set();
        let summaries = summarize(&samples);
        let recommendation = recommend(&summaries);
        let marks = marks(&recommendation);
        let mut files = vec![csv.clone()];
        let plots = if summaries.is_empty() {
            Vec::new()
        } else {
            plot::write_plots(
                &self.out_dir,
                &self.workload.name,
                &summaries,
                self.workload.connections,
                marks,
            )?
        };
        let md = self.path(".md");
        let text = report::render(&ReportInput {
            workload: &self.workload,
            provenance: &self.provenance,
            axes: &self.axes,
            timing: self.timing,
            repeats: self.repeats,
            runs: (samples.len(), runs.len()),
            interrupted,
            failures: &failures,
            samples: &samples,
            summaries: &summaries,
            recommendation: &recommendation,
            csv: file_name(&csv),
            plots: &plots.iter().map(|p| file_name(p)).collect::<Vec<_>>(),
        });
        std::fs::write(&md, text).map_err(|source| SweepError::Write {
            path: md.clone(),
            source,
        })?;
        files.push(md);
        files.extend(plots);
        // The CSV and the plots name the commit too, like the report.
        bench::provenance::stamp_files(
            files.iter().map(PathBuf::as_path),
            &self.provenance.machine.commit,
        )
        .map_err(|source| SweepError::Write {
            path: self.out_dir.clone(),
            source,
        })?;
        Ok(Outcome {
            samples,
            summaries,
            recommendation,
            files,
            interrupted,
            failures,
        })
    }
}

/// What the p99 plot marks for `recommendation`.
fn marks(recommendation: &Result<Recommendation, NoRecommendation>) -> Marks {
    match recommendation {
        Ok(r) => Marks {
            tolerance_limit_us: Some(r.best_p99.p99_us * (1.0 + r.tolerance.fraction)),
            chosen: Some((r.chosen.setting.buffer_size, r.chosen.p99_us)),
        },
        Err(_) => Marks::default(),
    }
}

/// Redraws the plots of a finished sweep from its CSV (`<dir>/<name>.csv`
/// gives `<dir>/<name>-*.svg`), e.g. after a change to the plots; nothing is
/// measured. `connections` is the workload's, for the ring-cost lines.
pub fn replot(csv: &Path, connections: usize) -> Result<Vec<PathBuf>, SweepError> {
    let samples = crate::sample::read_samples(csv).map_err(|source| SweepError::Write {
        path: csv.to_path_buf(),
        source,
    })?;
    let summaries = summarize(&samples);
    let dir = csv.parent().unwrap_or(Path::new("."));
    let name = csv
        .file_stem()
        .map_or_else(|| "sweep".into(), |s| s.to_string_lossy().into_owned());
    Ok(plot::write_plots(
        dir,
        &name,
        &summaries,
        connections,
        marks(&recommend(&summaries)),
    )?)
}

fn file_name(path: &Path) -> PathBuf {
    path.file_name()
        .map_or_else(|| path.to_path_buf(), PathBuf::from)
}
