//! The coordinator: starts the workers, lines up their interval snapshots,
//! prints the live line, and builds the report, the JSON and the hlog.
//!
//! The coordinator runs on the main thread and wakes once per interval
//! (one message per worker per second), so it costs the load nothing.

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, SystemTime};

use crate::clock;
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::hlog::{self, LogInterval};
use crate::progress::{LiveLine, Progress};
use crate::report::Report;
use crate::stats::{Interval, Phase, Snapshot};
use crate::worker::{self, WorkerSpec};

/// Lead time between spawning the workers and the common start instant.
const START_DELAY: Duration = Duration::from_millis(20);

struct Pending {
    reports: usize,
    start_ns: u64,
    phase: Phase,
    data: Interval,
}

/// Runs the load described by `cfg` and returns its report. The JSON
/// report and the interval log are written here when requested.
pub fn run(cfg: RunConfig) -> Result<Report> {
    let cfg = Arc::new(cfg);
    let (tx, rx) = mpsc::channel::<Snapshot>();
    let t0 = clock::now_ns() + START_DELAY.as_nanos() as u64;
    let wall_t0 = SystemTime::now() + START_DELAY;
    let mut handles = Vec::with_capacity(cfg.threads);
    for index in 0..cfg.threads {
        let spec = WorkerSpec {
            index,
            cfg: cfg.clone(),
            t0,
            snapshots: tx.clone(),
        };
        let h = thread::Builder::new()
            .name(format!("loadgen-w{index}"))
            .spawn(move || worker::run(spec))
            .map_err(|source| Error::Worker {
                worker: index,
                source,
            })?;
        handles.push(h);
    }
    drop(tx);

    let progress = Progress::new(cfg.warmup + cfg.duration, cfg.quiet);
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut measured = Interval::default();
    let mut whole = Interval::default();
    let mut measured_ns = 0u64;
    let mut log: Vec<LogInterval> = Vec::new();
    let warm_ns = cfg.warmup.as_nanos() as u64;

    let mut emit = |end_ns: u64, p: Pending| {
        whole.add(&p.data);
        if p.phase == Phase::Drain {
            return;
        }
        let len_ns = end_ns - p.start_ns;
        progress.interval(&LiveLine::from_interval(
            &p.data,
            p.phase,
            end_ns as f64 / 1e9,
            len_ns as f64 / 1e9,
        ));
        if p.phase == Phase::Measure {
            measured.add(&p.data);
            measured_ns += len_ns;
            if cfg.hlog.is_some() {
                log.push(LogInterval {
                    start: Duration::from_nanos(p.start_ns.saturating_sub(warm_ns)),
                    length: Duration::from_nanos(len_ns),
                    corrected: p.data.corrected,
                    uncorrected: p.data.uncorrected,
                });
            }
        }
    };

    for snap in rx {
        let entry = pending.entry(snap.end_ns).or_insert_with(|| Pending {
            reports: 0,
            start_ns: snap.start_ns,
            phase: snap.phase,
            data: Interval::default(),
        });
        entry.reports += 1;
        entry.data.add(&snap.data);
        if entry.reports == cfg.threads {
            if let Some(p) = pending.remove(&snap.end_ns) {
                emit(snap.end_ns, p);
            }
        }
    }
    // Only left over if a worker died early: count what it did send.
    for (end_ns, p) in std::mem::take(&mut pending) {
        emit(end_ns, p);
    }
    progress.finish();

    for (index, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                return Err(Error::Worker {
                    worker: index,
                    source,
                })
            }
            Err(_) => {
                return Err(Error::Worker {
                    worker: index,
                    source: std::io::Error::other("worker thread panicked"),
                })
            }
        }
    }

    let report = Report::build(&cfg, &measured, measured_ns as f64 / 1e9, &whole);
    if let Some(path) = &cfg.json {
        write_json(path, &report)?;
    }
    if let Some(path) = &cfg.hlog {
        let description = format!(
            "{} {} x {} {}",
            cfg.target.url, cfg.connections, cfg.size, report.config.mode
        );
        hlog::write_log(path, wall_t0 + cfg.warmup, &description, &log)?;
    }
    Ok(report)
}

/// Writes any serializable report as pretty JSON.
pub fn write_json<T: serde::Serialize>(path: &std::path::Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::File {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(path, text + "\n").map_err(|source| Error::File {
        path: path.to_path_buf(),
        source,
    })
}
