//! Runs every (scenario, repeat, server) point. Each point gets a fresh
//! server process, so no run inherits another's connections or heap. Within
//! one repeat the servers take turns, and the order rotates from repeat to
//! repeat, so a slow stretch of the noisy VM does not land on one server.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use loadgen::report::{Latency, Report};

use super::plan::{Scenario, ServerKind};
use crate::harness::{
    measure_closed, measure_fixed_rate_cpu, measure_idle_rss, measure_preset, Binaries, IdleRss,
    Loadgen, Measurement, Result, RunningServer, Window,
};
use crate::held_core::{is_client_bound, HeldCore};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Servers, in table order.
    pub servers: Vec<ServerKind>,
    /// Scenarios, in run order.
    pub scenarios: Vec<Scenario>,
    /// Runs per (scenario, server).
    pub repeats: usize,
    /// Warmup and measured durations.
    pub window: Window,
    /// CPU of the server.
    pub server_cpu: usize,
    /// CPU of loadgen.
    pub load_cpu: usize,
    /// Percent of its core each server is held to in the closed-loop
    /// scenarios (a CPU quota, see [`crate::held_core`]); `None`: unheld.
    pub held_share: Option<u32>,
}

/// The outcome of one point.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Index into [`RunPlan::scenarios`].
    pub scenario: usize,
    /// The server.
    pub server: ServerKind,
    /// Repeat number, from 1.
    pub repeat: usize,
    /// Echoes per second in the measured window (load scenarios).
    pub msgs_per_sec: Option<f64>,
    /// Echoes in the measured window.
    pub messages: u64,
    /// Server CPU microseconds per echo (closed and fixed-rate scenarios).
    pub cpu_us_per_msg: Option<f64>,
    /// The server's CPU over the measured window, percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// loadgen's CPU over the same window, percent of one core: above
    /// [`crate::held_core::CLIENT_BOUND_PERCENT`] the point measures the client.
    pub client_cpu_percent: Option<f64>,
    /// loadgen's own warning for this point (its busiest thread was above
    /// 90% of its core, so the point measures loadgen, not the server).
    pub loadgen_warning: Option<String>,
    /// Corrected round-trip latency (every load scenario).
    pub latency: Option<Latency>,
    /// Idle memory (idle scenario).
    pub idle: Option<IdleRss>,
    /// Bad echoes reported by loadgen.
    pub echo_errors: u64,
    /// Connections that failed to open or were lost.
    pub connection_errors: u64,
    /// Why the point could not be measured, if it could not.
    pub error: Option<String>,
}

impl Sample {
    fn empty(scenario: usize, server: ServerKind, repeat: usize) -> Sample {
        Sample {
            scenario,
            server,
            repeat,
            msgs_per_sec: None,
            messages: 0,
            cpu_us_per_msg: None,
            server_cpu_percent: None,
            client_cpu_percent: None,
            loadgen_warning: None,
            latency: None,
            idle: None,
            echo_errors: 0,
            connection_errors: 0,
            error: None,
        }
    }

    fn with_report(mut self, report: &Report) -> Sample {
        self.msgs_per_sec = Some(report.msgs_per_sec);
        self.messages = report.messages;
        self.latency = Some(report.latency_us.corrected);
        self.loadgen_warning = report.client.as_ref().and_then(|c| c.warning.clone());
        self.echo_errors = report.errors.total;
        self.connection_errors =
            report.connections.failed + report.connections.lost.values().sum::<u64>();
        self
    }

    fn with_measurement(self, m: &Measurement) -> Sample {
        let mut s = self.with_report(&m.report);
        s.cpu_us_per_msg = m.cpu_us_per_msg.is_finite().then_some(m.cpu_us_per_msg);
        let wall = m.server_wall.as_secs_f64();
        if wall > 0.0 {
            s.server_cpu_percent = Some(100.0 * m.server_cpu.as_secs_f64() / wall);
            s.client_cpu_percent = Some(100.0 * m.client_cpu.as_secs_f64() / wall);
        }
        s
    }

    /// Whether loadgen was above [`crate::held_core::CLIENT_BOUND_PERCENT`]
    /// of its core, or said so itself: the point measures the client.
    pub fn client_bound(&self) -> bool {
        self.client_cpu_percent.is_some_and(is_client_bound) || self.loadgen_warning.is_some()
    }

    /// Whether the point produced its figure with traffic behind it.
    pub fn is_sane(&self) -> bool {
        self.error.is_none()
            && match (&self.idle, self.msgs_per_sec) {
                (Some(idle), _) => idle.open > 0,
                (None, Some(rate)) => self.messages > 0 && rate > 0.0,
                (None, None) => false,
            }
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return format!("FAILED: {e}");
        }
        let mut parts = Vec::new();
        if let Some(r) = self.msgs_per_sec {
            parts.push(format!("{r:.0} msg/s"));
        }
        if let Some(c) = self.cpu_us_per_msg {
            parts.push(format!("{c:.2} CPU-us/msg"));
        }
        if let (Some(server), Some(client)) = (self.server_cpu_percent, self.client_cpu_percent) {
            parts.push(format!(
                "server {server:.0}% client {client:.0}% of a core{}",
                if self.client_bound() {
                    " (CLIENT-BOUND)"
                } else {
                    ""
                }
            ));
        }
        if let Some(l) = &self.latency {
            parts.push(format!("p99 {:.0} us", l.p99));
        }
        if let Some(i) = &self.idle {
            parts.push(format!(
                "{:.0} B/idle conn over {}",
                i.bytes_per_connection, i.open
            ));
        }
        if let Some(w) = &self.loadgen_warning {
            parts.push(format!("WARNING: {w}"));
        }
        if self.echo_errors + self.connection_errors > 0 {
            parts.push(format!(
                "{} echo errors, {} connection errors",
                self.echo_errors, self.connection_errors
            ));
        }
        parts.join(", ")
    }
}

fn measure_point(
    bins: &Binaries,
    plan: &RunPlan,
    held: Option<&HeldCore>,
    scenario: &Scenario,
    server: ServerKind,
    sample: Sample,
) -> std::result::Result<Sample, String> {
    let running =
        RunningServer::start(&server.spec(bins, plan.server_cpu)).map_err(|e| e.to_string())?;
    if let (Some(held), Scenario::Closed { .. }) = (held, scenario) {
        held.hold(running.pid())
            .map_err(|e| format!("holding the server to {}%: {e}", held.share()))?;
    }
    measure_running(bins, plan, scenario, running, sample).map_err(|e| e.to_string())
}

fn measure_running(
    bins: &Binaries,
    plan: &RunPlan,
    scenario: &Scenario,
    running: RunningServer,
    sample: Sample,
) -> Result<Sample> {
    let loadgen = Loadgen::new(&bins.loadgen, plan.load_cpu);
    let window = &plan.window;
    let sample = match *scenario {
        Scenario::Closed { connections, size } => sample.with_measurement(&measure_closed(
            &running,
            &loadgen,
            connections,
            size,
            window,
        )?),
        Scenario::FixedRate {
            connections,
            rate_hz,
            size,
        } => sample.with_measurement(&measure_fixed_rate_cpu(
            &running,
            &loadgen,
            connections,
            rate_hz,
            size,
            window,
        )?),
        Scenario::Latency {
            preset,
            connections,
        } => {
            let extra: Vec<String> = connections
                .map(|n| vec!["-c".to_string(), n.to_string()])
                .unwrap_or_default();
            sample.with_measurement(&measure_preset(&running, &loadgen, preset, &extra, window)?)
        }
        Scenario::IdleRss {
            connections,
            connect_rate,
        } => {
            let idle = measure_idle_rss(&running, &loadgen, connections, connect_rate)?;
            Sample {
                idle: Some(idle),
                ..sample
            }
        }
    };
    running.stop()?;
    Ok(sample)
}

/// Total estimated wall time of a plan.
pub fn estimate(plan: &RunPlan) -> Duration {
    plan.scenarios
        .iter()
        .map(|s| s.estimate(&plan.window) * (plan.repeats * plan.servers.len()) as u32)
        .sum()
}

/// Runs the whole plan, showing a progress bar with the ETA (hidden when
/// stderr is not a terminal) and one log line per point. A point that fails
/// is kept as a sample with its error; the run goes on. `held` holds the
/// servers of the closed-loop scenarios (see [`RunPlan::held_share`]).
pub fn run(bins: &Binaries, plan: &RunPlan, held: Option<&HeldCore>) -> Vec<Sample> {
    let total = estimate(plan);
    let bar = ProgressBar::new(total.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {percent:>3}% ETA {eta} | {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut samples = Vec::new();
    let n = plan.servers.len();
    for (index, scenario) in plan.scenarios.iter().enumerate() {
        for repeat in 1..=plan.repeats {
            for turn in 0..n {
                let server = plan.servers[(turn + repeat - 1) % n];
                let point = format!(
                    "{} | {} | run {repeat}/{}",
                    scenario.title(),
                    server.label(),
                    plan.repeats
                );
                bar.set_message(point.clone());
                let empty = Sample::empty(index, server, repeat);
                let sample = measure_point(bins, plan, held, scenario, server, empty.clone())
                    .unwrap_or_else(|e| Sample {
                        error: Some(e),
                        ..empty
                    });
                let line = format!("{point}: {}", sample.summary());
                if bar.is_hidden() {
                    // Not a terminal (a log file, CI): plain lines.
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
                bar.inc(scenario.estimate(&plan.window).as_millis() as u64);
                samples.push(sample);
            }
        }
    }
    bar.finish_and_clear();
    samples
}
