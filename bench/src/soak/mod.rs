//! The soak runner behind the `soak` binary: for each backend, start the
//! engine pinned to CPU 1, run `loadgen soak` pinned to CPU 0, sample the
//! engine's RSS, open fds, connections gauge and CPU every second, check
//! the pass criteria, and write `soak.md` with plots and CSVs.
//!
//! * [`plan`]: the full soak (15,000 x 10 min) and the quick one (1,000 x
//!   30 s, run by the test suite), and the command lines they make.
//! * [`sample`]: reading the engine from `/proc` and `/metrics`.
//! * [`contention`]: what else used the machine (other processes on the
//!   pinned cores, iowait, steal, major faults, blocked threads).
//! * [`run`]: one backend's run, start to stop.
//! * [`verdict`]: the criteria.
//! * [`plot`], [`markdown`]: the outputs.

pub mod contention;
pub mod markdown;
pub mod plan;
pub mod plot;
pub mod run;
pub mod sample;
pub mod verdict;

use std::path::{Path, PathBuf};

use run::{BackendRun, BackendSummary};

/// Why the outputs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file could not be written.
    #[error("{path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> OutputError {
    OutputError::File {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// Writes `<data_dir>/<backend>-engine.csv` for each run, `summary.json`
/// and the four plots into `data_dir`, and the report to `report_path`.
/// The loadgen CSVs are already in `data_dir` (loadgen wrote them).
pub fn write_outputs(
    report_path: &Path,
    data_dir: &Path,
    ctx: &markdown::Context<'_>,
    runs: &[BackendRun],
) -> Result<(), OutputError> {
    std::fs::create_dir_all(data_dir).map_err(|e| file_error(data_dir, e))?;
    for r in runs {
        let path = data_dir.join(format!("{}-engine.csv", r.backend));
        let mut w = csv::Writer::from_path(&path).map_err(|e| file_error(&path, e))?;
        for s in &r.samples {
            w.serialize(s).map_err(|e| file_error(&path, e))?;
        }
        w.flush().map_err(|e| file_error(&path, e))?;
    }
    let summaries: Vec<BackendSummary> = runs.iter().map(BackendRun::summary).collect();
    let path = data_dir.join("summary.json");
    let text = serde_json::to_string_pretty(&summaries).map_err(|e| file_error(&path, e))?;
    std::fs::write(&path, text + "\n").map_err(|e| file_error(&path, e))?;

    let series: Vec<plot::BackendSeries<'_>> = runs
        .iter()
        .map(|r| plot::BackendSeries {
            backend: r.backend.name(),
            samples: &r.samples,
            rows: &r.report.series,
            rss_window: r.rss.map(|g| (g.from_s, g.to_s)),
            fds_before: r.observed.fds_before,
        })
        .collect();
    let title = format!(
        "soak, {} WebSockets",
        loadgen::report::group(ctx.plan.connections as u64)
    );
    plot::write_plots(data_dir, &title, &series)?;
    std::fs::write(report_path, markdown::render(ctx, runs))
        .map_err(|e| file_error(report_path, e))?;
    Ok(())
}
