//! One backend's soak: start the engine pinned to its CPU, run `loadgen
//! soak` pinned to the other, sample the engine every second while it
//! runs, wait for the engine to settle after the last close, stop it, and
//! judge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use ringecho::IoBackend;
use serde::{Deserialize, Serialize};

use loadgen::soak::report::{Check, ClassLatency, SoakReport};
use loadgen::soak::series::{read_csv, Row};

use crate::harness::{pinned_command, Binaries, HarnessError, Result, RunningServer, ServerSpec};
use crate::priority::{set_normal_scheduler, set_realtime};
use crate::soak::contention::{CpuStatMeter, ProcessWaits};
use crate::soak::plan::SoakPlan;
use crate::soak::sample::{
    count_fds, open_files_limit, sample_engine, scrape_connections, CpuMeter, Sample,
};
use crate::soak::verdict::{judge, Observed, RssGrowth};

/// Time between samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// `/proc/net/tcp` is read every this many samples (it lists every socket).
const TCP_EVERY: usize = 10;
/// Time for the engine to settle before the baseline is read.
const SETTLE_BEFORE: Duration = Duration::from_secs(2);
/// Longest wait for the engine's fds and gauge to return after loadgen ends.
const SETTLE_AFTER: Duration = Duration::from_secs(30);
/// How long loadgen may run past ramp + hold (its drain and reporting).
const LOADGEN_GRACE: Duration = Duration::from_secs(120);

/// Everything one backend's soak produced.
#[derive(Debug, Clone)]
pub struct BackendRun {
    /// The engine's backend.
    pub backend: IoBackend,
    /// loadgen's report (with the series).
    pub report: SoakReport,
    /// The runner's samples of the engine.
    pub samples: Vec<Sample>,
    /// Baseline and final state of the engine.
    pub observed: Observed,
    /// RSS over the window.
    pub rss: Option<RssGrowth>,
    /// The criteria.
    pub checks: Vec<Check>,
    /// How long after loadgen's end the fds and gauge were back (if they were).
    pub settled_after_s: Option<f64>,
    /// The engine's soft open-files limit.
    pub engine_nofile: Option<u64>,
    /// loadgen's open-files line (`loadgen: open files limit ...`).
    pub loadgen_nofile: String,
    /// The engine's command line.
    pub engine_command: String,
    /// loadgen's command line.
    pub loadgen_command: String,
    /// Wall time of the whole backend run.
    pub wall: Duration,
}

impl BackendRun {
    /// Every criterion held.
    pub fn pass(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }

    /// loadgen's own warning, if its busiest thread was the limit.
    pub fn loadgen_warning(&self) -> Option<&str> {
        self.report.client.as_ref()?.warning.as_deref()
    }

    /// Mean of a per-sample CPU figure over the hold.
    fn mean_over_hold(&self, value: fn(&Sample) -> Option<f64>) -> Option<f64> {
        let from = self.report.config.ramp_s;
        let to = from + self.report.config.duration_s;
        let v: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.t_s > from && s.t_s <= to)
            .filter_map(value)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// The machine-readable summary written to `summary.json`.
    pub fn summary(&self) -> BackendSummary {
        let t = &self.report.totals;
        let hold: Vec<&Row> = self
            .report
            .series
            .iter()
            .filter(|r| r.phase == "hold")
            .collect();
        let worst = |value: fn(&Row) -> Option<f64>| {
            hold.iter()
                .filter_map(|r| value(r))
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
        };
        BackendSummary {
            backend: self.backend,
            pass: self.pass(),
            checks: self.checks.clone(),
            connections: self.report.config.connections,
            duration_s: self.report.config.duration_s,
            churn_per_sec: self.report.config.churn_per_sec,
            least_open_in_hold: hold.iter().map(|r| r.open).min().unwrap_or(0),
            closes_in_hold: hold.iter().map(|r| r.closes).sum(),
            hold_echoes_per_sec: hold.iter().map(|r| r.echoes).sum::<u64>() as f64
                / self.report.config.duration_s.max(1e-9),
            opened: t.opened,
            closes: t.closes,
            closed_clean: t.closed_clean,
            unexpected_closes: t.unexpected_closes.values().sum(),
            connect_failures: t.connect_failures.values().sum(),
            sent: t.sent,
            echoes: t.echoes,
            lost: t.lost,
            corrupted: t.corrupted,
            latency_us: self.report.latency_us.clone(),
            worst_interval_p99_us: [
                ("player", worst(|r| r.player_p99_us)),
                ("lobby", worst(|r| r.lobby_p99_us)),
                ("burst", worst(|r| r.burst_p99_us)),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)))
            .collect(),
            rss: self.rss,
            fds_before: self.observed.fds_before,
            fds_after: self.observed.fds_after,
            settled_after_s: self.settled_after_s,
            engine_cpu_pct: self.mean_over_hold(|s| s.engine_cpu_pct),
            loadgen_cpu_pct: self.mean_over_hold(|s| s.loadgen_cpu_pct),
            time_wait_server_max: self.samples.iter().filter_map(|s| s.time_wait_server).max(),
            time_wait_client_max: self.samples.iter().filter_map(|s| s.time_wait_client).max(),
            loadavg_mean: self.mean_over_hold(|s| s.loadavg),
            engine_core_busy_pct: self.mean_over_hold(|s| s.engine_core_busy_pct),
            loadgen_core_busy_pct: self.mean_over_hold(|s| s.loadgen_core_busy_pct),
            iowait_pct: self.mean_over_hold(|s| s.iowait_pct),
            steal_pct: self.mean_over_hold(|s| s.steal_pct),
            loadavg_max: self
                .samples
                .iter()
                .filter_map(|s| s.loadavg)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
            engine_exit: self.observed.engine_exit.clone(),
            loadgen_warning: self.loadgen_warning().map(str::to_string),
        }
    }
}

/// One backend's figures, as written to `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendSummary {
    /// The engine's backend.
    pub backend: IoBackend,
    /// Every criterion held.
    pub pass: bool,
    /// The criteria.
    pub checks: Vec<Check>,
    /// WebSockets held.
    pub connections: usize,
    /// The hold, seconds.
    pub duration_s: f64,
    /// Churn asked for, per second.
    pub churn_per_sec: f64,
    /// Fewest connections open at an interval end during the hold.
    pub least_open_in_hold: u64,
    /// Closes started during the hold (the churn).
    pub closes_in_hold: u64,
    /// Correct echoes per second over the hold.
    pub hold_echoes_per_sec: f64,
    /// Handshakes completed.
    pub opened: u64,
    /// Closes started.
    pub closes: u64,
    /// Clean closes.
    pub closed_clean: u64,
    /// Unexpected closes.
    pub unexpected_closes: u64,
    /// Failed connects.
    pub connect_failures: u64,
    /// Messages sent.
    pub sent: u64,
    /// Correct echoes.
    pub echoes: u64,
    /// Lost echoes.
    pub lost: u64,
    /// Corrupted echoes.
    pub corrupted: u64,
    /// Latency per class over the hold.
    pub latency_us: Vec<ClassLatency>,
    /// Highest one-interval p99 during the hold, per class, us.
    pub worst_interval_p99_us: BTreeMap<String, f64>,
    /// Engine RSS over the window.
    pub rss: Option<RssGrowth>,
    /// Engine fds before the load.
    pub fds_before: usize,
    /// Engine fds after it.
    pub fds_after: usize,
    /// Seconds after loadgen's end until fds and gauge were back.
    pub settled_after_s: Option<f64>,
    /// Mean engine CPU over the hold, percent of one core.
    pub engine_cpu_pct: Option<f64>,
    /// Mean loadgen CPU over the hold, percent of one core.
    pub loadgen_cpu_pct: Option<f64>,
    /// Most `TIME_WAIT` sockets seen on the engine's side.
    pub time_wait_server_max: Option<usize>,
    /// Most `TIME_WAIT` sockets seen on the clients' side.
    pub time_wait_client_max: Option<usize>,
    /// The machine's mean 1-minute load average over the hold.
    pub loadavg_mean: Option<f64>,
    /// Its highest value during the run.
    pub loadavg_max: Option<f64>,
    /// Mean busy share of the engine's CPU over the hold, any process.
    pub engine_core_busy_pct: Option<f64>,
    /// Mean busy share of loadgen's CPU over the hold, any process.
    pub loadgen_core_busy_pct: Option<f64>,
    /// Mean iowait share over the hold, all CPUs.
    pub iowait_pct: Option<f64>,
    /// Mean steal share over the hold, all CPUs.
    pub steal_pct: Option<f64>,
    /// How the engine exited on SIGTERM.
    pub engine_exit: String,
    /// loadgen's own warning: its busiest thread was above 90% of its core
    /// over the hold, so the figures measure loadgen, not the engine.
    #[serde(default)]
    pub loadgen_warning: Option<String>,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

fn command_line(binary: &Path, args: &[String]) -> String {
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::iter::once(name)
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The runner under SCHED_FIFO while it starts the engine and loadgen
/// (which inherit it), and back under the normal scheduler when dropped.
struct RealtimeChildren;

impl RealtimeChildren {
    fn start(priority: i32) -> Result<RealtimeChildren> {
        set_realtime(priority).map_err(io_err(format!("SCHED_FIFO priority {priority}")))?;
        Ok(RealtimeChildren)
    }
}

impl Drop for RealtimeChildren {
    fn drop(&mut self) {
        if let Err(e) = set_normal_scheduler() {
            eprintln!("soak: warning: the runner stays real-time: {e}");
        }
    }
}

/// Kills loadgen if the runner leaves early (an error, a panic).
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the soak on one backend; the loadgen series goes to
/// `data_dir/<backend>-loadgen.csv`.
pub fn run_backend(
    bins: &Binaries,
    plan: &SoakPlan,
    backend: IoBackend,
    data_dir: &Path,
) -> Result<BackendRun> {
    let started = Instant::now();
    let spec = ServerSpec {
        binary: bins.ringecho.clone(),
        args: plan.engine_args(backend),
        cpu: plan.engine_cpu,
        path: "/ws".into(),
    };
    let engine_command = command_line(&spec.binary, &spec.args);
    // The engine and loadgen inherit SCHED_FIFO from the runner, which
    // then goes back to the normal scheduler: its sampling (thousands of
    // /proc entries a second) must never hold up either of them.
    let realtime = plan.realtime.map(RealtimeChildren::start).transpose()?;
    let server = RunningServer::start(&spec)?;
    let pid = server.pid();
    let addr = server.addr();
    thread::sleep(SETTLE_BEFORE);
    let fds_before = count_fds(pid)?;
    let engine_nofile = open_files_limit(pid);

    let csv_path = data_dir.join(format!("{backend}-loadgen.csv"));
    let scratch = tempfile::tempdir().map_err(io_err("creating a temporary directory"))?;
    let json_path = scratch.path().join("loadgen.json");
    let out_path = scratch.path().join("loadgen.out");
    let err_path = scratch.path().join("loadgen.err");
    let args = plan.loadgen_args(&server.ws_url(), &csv_path, &json_path);
    // As the report shows it: the files by their names in the results.
    let shown = plan.loadgen_args(
        &server.ws_url(),
        Path::new(&format!("soak/{backend}-loadgen.csv")),
        Path::new("loadgen.json"),
    );
    let loadgen_command = command_line(&bins.loadgen, &shown);
    let file =
        |p: &PathBuf| std::fs::File::create(p).map_err(io_err(format!("creating {}", p.display())));
    let load_start = Instant::now();
    let child = pinned_command(&bins.loadgen, plan.loadgen_cpu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(file(&out_path)?)
        .stderr(file(&err_path)?)
        .spawn()
        .map_err(io_err(format!("starting {}", bins.loadgen.display())))?;
    let loadgen_pid = child.id();
    let mut guard = ChildGuard(Some(child));
    drop(realtime);

    let expected = plan.ramp() + plan.duration;
    let bar = progress_bar(backend, expected);
    let mut engine_cpu = CpuMeter::new(pid);
    let mut loadgen_cpu = CpuMeter::new(loadgen_pid);
    let mut cores = CpuStatMeter::default();
    let mut engine_waits = ProcessWaits::new(pid);
    let mut loadgen_waits = ProcessWaits::new(loadgen_pid);
    let _ = (engine_cpu.read(), loadgen_cpu.read());
    let _ = (engine_waits.read(), loadgen_waits.read());
    let _ = cores.read([plan.engine_cpu, plan.loadgen_cpu]);
    let mut samples = Vec::new();
    let deadline = load_start + expected + LOADGEN_GRACE;
    let mut tick = 0usize;
    let status = loop {
        thread::sleep(SAMPLE_EVERY);
        let t_s = load_start.elapsed().as_secs_f64();
        let mut s = sample_engine(pid, addr, t_s, tick.is_multiple_of(TCP_EVERY))?;
        s.engine_cpu_pct = engine_cpu.read();
        s.loadgen_cpu_pct = loadgen_cpu.read();
        if let Some(shares) = cores.read([plan.engine_cpu, plan.loadgen_cpu]) {
            s.engine_core_busy_pct = Some(shares.busy[0]);
            s.loadgen_core_busy_pct = Some(shares.busy[1]);
            s.iowait_pct = Some(shares.iowait);
            s.steal_pct = Some(shares.steal);
        }
        if let Some(w) = engine_waits.read() {
            s.engine_major_faults = w.major_faults_per_sec;
            s.engine_blocked_threads = Some(w.blocked_threads);
        }
        if let Some(w) = loadgen_waits.read() {
            s.loadgen_major_faults = w.major_faults_per_sec;
            s.loadgen_blocked_threads = Some(w.blocked_threads);
        }
        tick += 1;
        let last_row = if tick.is_multiple_of(5) {
            read_csv(&csv_path)
                .ok()
                .and_then(|rows| rows.last().cloned())
        } else {
            None
        };
        show(&bar, backend, &s, last_row.as_ref(), tick);
        samples.push(s);
        let child = guard.0.as_mut().expect("loadgen is running");
        if let Some(status) = child.try_wait().map_err(io_err("polling loadgen"))? {
            guard.0 = None;
            break status;
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Loadgen {
                args,
                status: format!("killed: still running {LOADGEN_GRACE:?} after its hold"),
                stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
            });
        }
    };
    bar.finish_and_clear();
    let load_end = Instant::now();

    // Everything is closed at loadgen's side: wait for the engine's side.
    let mut settled_after_s = None;
    let (mut fds_after, mut connections_after) = (usize::MAX, None);
    while load_end.elapsed() < SETTLE_AFTER {
        fds_after = count_fds(pid)?;
        connections_after = scrape_connections(addr).ok();
        samples.push(sample_engine(
            pid,
            addr,
            load_start.elapsed().as_secs_f64(),
            false,
        )?);
        if fds_after == fds_before && connections_after == Some(0) {
            settled_after_s = Some(load_end.elapsed().as_secs_f64());
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    let exit = server.stop()?;
    let observed = Observed {
        fds_before,
        fds_after,
        connections_after,
        engine_exit: exit.to_string(),
        engine_exit_ok: exit.success(),
    };

    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let text = std::fs::read_to_string(&json_path).unwrap_or_default();
    if text.trim().is_empty() {
        return Err(HarnessError::Loadgen {
            args,
            status: status.to_string(),
            stderr,
        });
    }
    let report: SoakReport = serde_json::from_str(&text)?;
    let (checks, rss) = judge(plan, &report, &samples, &observed);
    Ok(BackendRun {
        backend,
        report,
        samples,
        observed,
        rss,
        checks,
        settled_after_s,
        engine_nofile,
        loadgen_nofile: stderr
            .lines()
            .find(|l| l.contains("open files limit"))
            .unwrap_or("")
            .to_string(),
        engine_command,
        loadgen_command,
        wall: started.elapsed(),
    })
}

fn progress_bar(backend: IoBackend, expected: Duration) -> ProgressBar {
    let bar = ProgressBar::new(expected.as_secs());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} s | {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("{backend}: starting"));
    bar
}

/// Updates the bar (or, without a terminal, prints a line every 10 s).
fn show(bar: &ProgressBar, backend: IoBackend, s: &Sample, row: Option<&Row>, tick: usize) {
    let mut msg = format!(
        "{backend} {:>5.0}s rss {:.1} MiB fds {} conns {} cpu engine {:.0}% loadgen {:.0}%",
        s.t_s,
        s.rss_bytes as f64 / 1048576.0,
        s.fds,
        s.connections.map_or("?".into(), |c| c.to_string()),
        s.engine_cpu_pct.unwrap_or(0.0),
        s.loadgen_cpu_pct.unwrap_or(0.0),
    );
    if let Some(r) = row {
        msg.push_str(&format!(
            " | p99 player {} us lost {} bad {} unexpected {}",
            r.player_p99_us.map_or("-".into(), |v| format!("{v:.0}")),
            r.lost,
            r.corrupted,
            r.unexpected_closes
        ));
    }
    bar.set_position(s.t_s as u64);
    if bar.is_hidden() {
        if tick.is_multiple_of(10) {
            eprintln!("{msg}");
        }
    } else {
        bar.set_message(msg);
    }
}
