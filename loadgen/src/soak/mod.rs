//! `loadgen soak`: hold many WebSockets for a long time with a game
//! host's mix of traffic and a churn of connects and closes, check every
//! echo, and report what was lost, corrupted or closed unexpectedly, with
//! latency over time.
//!
//! Point it at any deployment (`loadgen soak ws://host:port/ws`); the
//! defaults are the project's own soak: 15,000 WebSockets for 10 minutes,
//! 200 connects and closes a second.
//!
//! * [`mix`]: the traffic classes (player, burst, lobby) and their ticks.
//! * [`cli`] and [`config`]: the options and the validated [`SoakConfig`].
//! * [`source`]: client source addresses, so churn cannot run out of
//!   ephemeral ports, and the non-blocking connect.
//! * [`worker`]: one event loop per thread over [`crate::conn::Conn`]s:
//!   ticks, churn, checked closes.
//! * [`stats`], [`series`], [`report`]: per-interval counts, the time
//!   series (CSV as it goes, JSON at the end), the totals and the verdict.
//!
//! This module is the coordinator: it starts the workers, adds up their
//! intervals as they end, shows the live line and writes the outputs.

pub mod cli;
pub mod config;
pub mod mix;
pub mod report;
pub mod series;
pub mod source;
pub mod stats;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

pub use config::SoakConfig;
pub use report::SoakReport;

use crate::ceiling::CpuTally;
use crate::clock;
use crate::error::{Error, Result};
use crate::interrupt::StopSignal;
use crate::progress::Progress;
use series::{CsvSink, Row};
use stats::{SoakInterval, SoakPhase, SoakSnapshot};
use worker::SoakWorkerSpec;

/// Lead time between spawning the workers and the common start instant.
const START_DELAY: Duration = Duration::from_millis(20);

/// One interval while not every worker has reported it yet.
struct Pending {
    reports: usize,
    start_ns: u64,
    end_ns: u64,
    phase: SoakPhase,
    data: SoakInterval,
}

/// Adds up complete intervals: the series, the totals, the live line and the CSV.
struct Collector {
    progress: Progress,
    whole: SoakInterval,
    hold: SoakInterval,
    series: Vec<Row>,
    csv: Option<CsvSink>,
    csv_error: Option<Error>,
}

impl Collector {
    fn emit(&mut self, p: Pending) {
        self.whole.add(&p.data);
        if p.phase == SoakPhase::Hold {
            self.hold.add(&p.data);
        }
        let len_s = (p.end_ns - p.start_ns) as f64 / 1e9;
        let row = Row::from_interval(&p.data, p.phase, p.end_ns as f64 / 1e9, len_s);
        self.progress.show(row.t_s, &row.live_line());
        if let Some(csv) = &mut self.csv {
            if let Err(e) = csv.append(&row) {
                // Keep the soak going; the error decides the exit at the end.
                self.csv = None;
                self.csv_error = Some(e);
            }
        }
        self.series.push(row);
    }

    /// Intervals not every worker reported with the same end (each
    /// worker's last, partial drain interval; the intervals cut by a
    /// Ctrl-C) are merged into one last row, so every count is kept once.
    fn emit_tail(&mut self, leftovers: BTreeMap<u64, Pending>) {
        let mut tail: Option<Pending> = None;
        for (_, p) in leftovers {
            match &mut tail {
                Some(t) => {
                    t.start_ns = t.start_ns.min(p.start_ns);
                    t.end_ns = t.end_ns.max(p.end_ns);
                    t.data.add(&p.data);
                    if p.phase != SoakPhase::Drain {
                        t.phase = p.phase;
                    }
                }
                slot @ None => *slot = Some(p),
            }
        }
        if let Some(mut t) = tail {
            if t.end_ns == u64::MAX {
                t.end_ns = t.start_ns.max(self.last_end_ns());
            }
            // The open gauge is per worker: the leftovers' sum is not a
            // moment's count. Nothing is open once every worker is done.
            for c in &mut t.data.classes {
                c.open_now = 0;
            }
            self.emit(t);
        }
    }

    fn last_end_ns(&self) -> u64 {
        self.series
            .last()
            .map(|r| (r.t_s * 1e9) as u64)
            .unwrap_or(0)
    }
}

/// Runs the soak described by `cfg` and returns its report; writes the
/// CSV as it goes and the JSON at the end when asked to. Ctrl-C ends the
/// hold early; the drain still closes every connection.
pub fn run(cfg: SoakConfig) -> Result<SoakReport> {
    let cfg = Arc::new(cfg);
    let (io, fallback) = crate::io::resolve(cfg.io).map_err(Error::Driver)?;
    if let Some(why) = fallback {
        if !cfg.quiet {
            eprintln!("loadgen: io_uring is not usable here ({why}); using epoll");
        }
    }
    let stop = StopSignal::on_ctrl_c().map_err(Error::Signal)?;
    // Open the CSV before any load: a bad path fails now, not after the soak.
    let csv = cfg.csv.as_deref().map(CsvSink::create).transpose()?;
    let t0 = clock::now_ns() + START_DELAY.as_nanos() as u64;
    let (tx, rx) = mpsc::channel::<SoakSnapshot>();
    let mut handles = Vec::with_capacity(cfg.threads);
    for index in 0..cfg.threads {
        let spec = SoakWorkerSpec {
            index,
            cfg: cfg.clone(),
            io,
            t0,
            snapshots: tx.clone(),
            stop: stop.clone(),
        };
        let h = thread::Builder::new()
            .name(format!("soak-w{index}"))
            .spawn(move || worker::run(spec))
            .map_err(|source| Error::Worker {
                worker: index,
                source,
            })?;
        handles.push(h);
    }
    drop(tx);

    let mut c = Collector {
        progress: Progress::new(cfg.ramp() + cfg.duration, cfg.quiet),
        whole: SoakInterval::default(),
        hold: SoakInterval::default(),
        series: Vec::new(),
        csv,
        csv_error: None,
    };
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut cpu = CpuTally::default();
    let mut hold_ns = 0u64;
    for snap in rx {
        if snap.phase == SoakPhase::Hold && snap.end_ns != u64::MAX {
            cpu.add(snap.worker, snap.cpu);
            if snap.worker == 0 {
                hold_ns += snap.end_ns - snap.start_ns;
            }
        }
        let entry = pending.entry(snap.end_ns).or_insert_with(|| Pending {
            reports: 0,
            start_ns: snap.start_ns,
            end_ns: snap.end_ns,
            phase: snap.phase,
            data: SoakInterval::default(),
        });
        entry.reports += 1;
        entry.start_ns = entry.start_ns.min(snap.start_ns);
        entry.data.add(&snap.data);
        if entry.reports == cfg.threads && snap.end_ns != u64::MAX {
            if let Some(p) = pending.remove(&snap.end_ns) {
                c.emit(p);
            }
        }
    }
    c.emit_tail(pending);
    c.progress.finish();

    for (index, h) in handles.into_iter().enumerate() {
        let result = h
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("soak worker thread panicked")));
        result.map_err(|source| Error::Worker {
            worker: index,
            source,
        })?;
    }

    let mut report = SoakReport::build(
        &cfg,
        &c.whole,
        &c.hold,
        c.series,
        stop.stopped_at().is_some(),
    );
    report.client = Some(cpu.ceiling(io, c.hold.echoes_total(), hold_ns as f64 / 1e9));
    if let Some(path) = &cfg.json {
        crate::run::write_json(path, &report)?;
    }
    if let Some(e) = c.csv_error {
        return Err(e);
    }
    Ok(report)
}
