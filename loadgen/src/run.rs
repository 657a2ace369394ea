//! The coordinator: starts the workers, lines up their interval snapshots,
//! prints the live line, streams the hlog, and builds the report and the JSON.
//!
//! The coordinator runs on the main thread and wakes once per interval
//! (one message per worker per second), so it costs the load nothing.

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, SystemTime};

use crate::ceiling::CpuTally;
use crate::clock;
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::hlog::{HlogWriter, LogInterval};
use crate::interrupt::StopSignal;
use crate::io;
use crate::progress::{LiveLine, Progress};
use crate::report::{ConfigSummary, Report};
use crate::start_at;
use crate::stats::{Interval, Phase, Snapshot};
use crate::worker::{self, WorkerSpec};

/// Lead time between spawning the workers and the common start instant.
const START_DELAY: Duration = Duration::from_millis(20);

struct Pending {
    reports: usize,
    start_ns: u64,
    end_ns: u64,
    phase: Phase,
    data: Interval,
}

/// Adds up the intervals as they complete: the live line, the measured
/// and whole-run totals, and the interval log, written as it goes.
struct Collector {
    progress: Progress,
    warm_ns: u64,
    measured: Interval,
    whole: Interval,
    measured_ns: u64,
    hlog: Option<HlogWriter>,
    hlog_error: Option<Error>,
}

impl Collector {
    /// Takes one interval of all workers added up.
    fn emit(&mut self, p: Pending) {
        self.whole.add(&p.data);
        if p.phase == Phase::Drain {
            return;
        }
        let len_ns = p.end_ns - p.start_ns;
        self.progress.interval(&LiveLine::from_interval(
            &p.data,
            p.phase,
            p.end_ns as f64 / 1e9,
            len_ns as f64 / 1e9,
        ));
        if p.phase != Phase::Measure {
            return;
        }
        self.measured.add(&p.data);
        self.measured_ns += len_ns;
        if let Some(log) = &mut self.hlog {
            let iv = LogInterval {
                start: Duration::from_nanos(p.start_ns.saturating_sub(self.warm_ns)),
                length: Duration::from_nanos(len_ns),
                corrected: p.data.corrected,
                uncorrected: p.data.uncorrected,
            };
            if let Err(e) = log.append(&iv) {
                // Keep the run going; the error decides the exit at the end.
                self.hlog = None;
                self.hlog_error = Some(e);
            }
        }
    }

    /// Intervals that not every worker reported with the same end: after a
    /// Ctrl-C the workers' last intervals end where each one stopped, and a
    /// worker that dies early leaves the others' intervals incomplete. They
    /// are all at the end of the run, so they are merged into one last
    /// interval per phase, which keeps every sample counted exactly once.
    fn emit_tail(&mut self, leftovers: BTreeMap<u64, Pending>) {
        let mut tails: [Option<Pending>; 2] = [None, None];
        for (_, p) in leftovers {
            let i = match p.phase {
                Phase::Drain => {
                    self.whole.add(&p.data);
                    continue;
                }
                Phase::Warmup => 0,
                Phase::Measure => 1,
            };
            match &mut tails[i] {
                Some(t) => {
                    t.start_ns = t.start_ns.min(p.start_ns);
                    t.end_ns = t.end_ns.max(p.end_ns);
                    t.data.add(&p.data);
                }
                slot @ None => *slot = Some(p),
            }
        }
        for t in tails.into_iter().flatten() {
            self.emit(t);
        }
    }
}

/// Runs the load described by `cfg` and returns its report. The JSON
/// report is written here when requested, and the interval log while the
/// run goes on. Ctrl-C ends the load early with a report of what ran
/// (see [`crate::interrupt`]).
pub fn run(cfg: RunConfig) -> Result<Report> {
    let cfg = Arc::new(cfg);
    let io = choose_io(&cfg)?;
    let stop = StopSignal::on_ctrl_c().map_err(Error::Signal)?;
    // Read both clocks together: the run starts at the same instant on each.
    let (mono_now, wall_now) = (clock::now_ns(), SystemTime::now());
    let delay = match cfg.start_at {
        Some(at) => {
            let wait = start_at::delay_until(at, wall_now)?;
            if !cfg.quiet {
                eprintln!(
                    "loadgen: waiting {:.1} s for --start-at {:.3}",
                    wait.as_secs_f64(),
                    start_at::unix_seconds(at)
                );
            }
            wait
        }
        None => START_DELAY,
    };
    let t0 = mono_now + delay.as_nanos() as u64;
    let wall_t0 = wall_now + delay;
    // Open the log before any load: a bad path fails now, not after the run.
    let hlog = match &cfg.hlog {
        Some(path) => {
            let description = format!(
                "{} {} x {} {}",
                cfg.target.url,
                cfg.connections,
                cfg.size,
                ConfigSummary::from_config(&cfg).mode
            );
            Some(HlogWriter::create(
                path,
                wall_t0 + cfg.warmup,
                &description,
            )?)
        }
        None => None,
    };
    let (tx, rx) = mpsc::channel::<Snapshot>();
    let mut handles = Vec::with_capacity(cfg.threads);
    for index in 0..cfg.threads {
        let spec = WorkerSpec {
            index,
            cfg: cfg.clone(),
            io,
            t0,
            snapshots: tx.clone(),
            stop: stop.clone(),
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

    let mut c = Collector {
        progress: Progress::new(cfg.warmup + cfg.duration, cfg.quiet),
        warm_ns: cfg.warmup.as_nanos() as u64,
        measured: Interval::default(),
        whole: Interval::default(),
        measured_ns: 0,
        hlog,
        hlog_error: None,
    };
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut cpu = CpuTally::default();
    let mut gave_up = false;
    for snap in rx {
        if snap.phase == Phase::Measure {
            cpu.add(snap.worker, snap.cpu);
        }
        let entry = pending.entry(snap.end_ns).or_insert_with(|| Pending {
            reports: 0,
            start_ns: snap.start_ns,
            end_ns: snap.end_ns,
            phase: snap.phase,
            data: Interval::default(),
        });
        entry.reports += 1;
        entry.data.add(&snap.data);
        if entry.reports == cfg.threads {
            if let Some(p) = pending.remove(&snap.end_ns) {
                c.emit(p);
                if !gave_up && every_connection_failed(&cfg, &c.whole) {
                    // Nothing to measure: end now, not after the whole run.
                    gave_up = true;
                    stop.request();
                }
            }
        }
    }
    c.emit_tail(pending);
    c.progress.finish();

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

    let mut report = Report::build(
        &cfg,
        &c.measured,
        c.measured_ns as f64 / 1e9,
        &c.whole,
        stop.stopped_at().is_some() && !gave_up,
    );
    report.measured_from_unix_s = Some(start_at::unix_seconds(wall_t0 + cfg.warmup));
    report.client = Some(cpu.ceiling(io, c.measured.messages, report.measured_s));
    if let Some(path) = &cfg.json {
        write_json(path, &report)?;
    }
    if let Some(e) = c.hlog_error {
        return Err(e);
    }
    Ok(report)
}

/// Picks the I/O driver for `cfg.io` and says on stderr when `auto` had
/// to fall back to epoll.
pub fn choose_io(cfg: &RunConfig) -> Result<io::IoKind> {
    let (kind, fallback) = io::resolve(cfg.io).map_err(Error::Driver)?;
    if let Some(why) = fallback {
        if !cfg.quiet {
            eprintln!("loadgen: io_uring is not usable here ({why}); using epoll");
        }
    }
    Ok(kind)
}

/// True when every connection has failed to open and none will be retried
/// (no `--reconnect`): the run can only report that, so it ends at the
/// first interval that shows it (a refused connect fails at once; one that
/// hangs, within `--connect-timeout`).
fn every_connection_failed(cfg: &RunConfig, whole: &Interval) -> bool {
    !cfg.reconnect && whole.opened == 0 && whole.connect_failures.total() >= cfg.connections as u64
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
