//! The files a comparison writes: `compare.md` (medians, ratios against
//! the fastwebsockets peer, the published numbers, and how it was run) and
//! `compare.csv` (every run, one row per server x scenario x repeat).

use std::fmt::Write as _;
use std::path::Path;

use loadgen::report::group;
use serde::Serialize;

use super::plan::{Scenario, ScenarioKind, ServerKind};
use super::run::{RunPlan, Sample};
use super::stats::{median, ratio};
use crate::held_core::{is_client_bound, CLIENT_BOUND_PERCENT, PERIOD_US};
use crate::machine::Machine;

/// Everything the Markdown needs besides the samples.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The plan that ran.
    pub plan: &'a RunPlan,
    /// Machine, kernel, commit.
    pub machine: &'a Machine,
    /// The exact command line.
    pub command: String,
    /// 1-minute load average at the end.
    pub loadavg_end: String,
    /// Wall time of the whole run.
    pub elapsed: std::time::Duration,
    /// Chart files, relative to the Markdown file.
    pub charts: Vec<String>,
}

/// One CSV row: one run of one server in one scenario.
#[derive(Debug, Serialize)]
pub struct CsvRow<'a> {
    /// Scenario id (`closed-200x16384`, `cpu-100x500hzx20`, ...).
    pub scenario: String,
    /// Scenario description.
    pub title: String,
    /// Server name.
    pub server: &'a str,
    /// Repeat number, from 1.
    pub repeat: usize,
    /// Echoes per second.
    pub msgs_per_sec: Option<f64>,
    /// Echoes in the measured window.
    pub messages: u64,
    /// Server CPU microseconds per echo.
    pub server_cpu_us_per_msg: Option<f64>,
    /// Server CPU over the measured window, percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// loadgen's CPU over the measured window, percent of one core.
    pub client_cpu_percent: Option<f64>,
    /// The client was above 90% of its core: the point ranks nothing.
    pub client_bound: bool,
    /// loadgen's own warning that its busiest thread was the limit.
    pub loadgen_warning: Option<&'a str>,
    /// Corrected latency, microseconds.
    pub p50_us: Option<f64>,
    /// Corrected latency, microseconds.
    pub p90_us: Option<f64>,
    /// Corrected latency, microseconds.
    pub p99_us: Option<f64>,
    /// Corrected latency, microseconds.
    pub p99_9_us: Option<f64>,
    /// Corrected latency, microseconds.
    pub max_us: Option<f64>,
    /// Server RSS delta per idle connection.
    pub idle_bytes_per_conn: Option<f64>,
    /// Idle connections open at the RSS sample.
    pub idle_open: Option<usize>,
    /// Bad echoes.
    pub echo_errors: u64,
    /// Connections failed or lost.
    pub connection_errors: u64,
    /// Why the run failed, if it did.
    pub error: Option<&'a str>,
}

/// Writes every sample as a CSV row.
pub fn write_csv(path: &Path, scenarios: &[Scenario], samples: &[Sample]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    for s in samples {
        let sc = &scenarios[s.scenario];
        let lat = |f: fn(&loadgen::report::Latency) -> f64| s.latency.as_ref().map(f);
        w.serialize(CsvRow {
            scenario: sc.id(),
            title: sc.title(),
            server: s.server.name(),
            repeat: s.repeat,
            msgs_per_sec: s.msgs_per_sec,
            messages: s.messages,
            server_cpu_us_per_msg: s.cpu_us_per_msg.map(|c| (c * 1000.0).round() / 1000.0),
            server_cpu_percent: s.server_cpu_percent.map(|c| (c * 10.0).round() / 10.0),
            client_cpu_percent: s.client_cpu_percent.map(|c| (c * 10.0).round() / 10.0),
            client_bound: s.client_bound(),
            loadgen_warning: s.loadgen_warning.as_deref(),
            p50_us: lat(|l| l.p50),
            p90_us: lat(|l| l.p90),
            p99_us: lat(|l| l.p99),
            p99_9_us: lat(|l| l.p99_9),
            max_us: lat(|l| l.max),
            idle_bytes_per_conn: s.idle.map(|i| i.bytes_per_connection.round()),
            idle_open: s.idle.map(|i| i.open),
            echo_errors: s.echo_errors,
            connection_errors: s.connection_errors,
            error: s.error.as_deref(),
        })?;
    }
    w.flush()?;
    Ok(())
}

/// The median of one figure over the repeats of (scenario, server).
pub fn median_of(
    samples: &[Sample],
    scenario: usize,
    server: ServerKind,
    figure: impl Fn(&Sample) -> Option<f64>,
) -> Option<f64> {
    median(
        samples
            .iter()
            .filter(|s| s.scenario == scenario && s.server == server && s.error.is_none())
            .filter_map(figure),
    )
}

/// Whether (scenario, server) is client-bound: loadgen's median CPU over
/// the repeats was above [`CLIENT_BOUND_PERCENT`] of its core, or loadgen
/// itself warned (its busiest thread above 90%) in most of the repeats.
pub fn client_bound(samples: &[Sample], scenario: usize, server: ServerKind) -> bool {
    let runs: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.scenario == scenario && s.server == server && s.error.is_none())
        .collect();
    let warned = runs.iter().filter(|s| s.loadgen_warning.is_some()).count();
    median_of(samples, scenario, server, |x| x.client_cpu_percent).is_some_and(is_client_bound)
        || 2 * warned > runs.len()
}

/// Published figures for a closed case: (upstream uWS, fastwebsockets,
/// tokio-tungstenite) and (uWS epoll, fastwebsockets) on this VM with
/// uWebSockets' `load_test`, from the team's own runs of it (it cannot be
/// built from this repository).
fn published(connections: usize, size: usize) -> (&'static str, &'static str) {
    match (connections, size) {
        (100, 20) => ("221k / 212k / 187k", "265k / 250k (1.06x)"),
        (200, 16384) => ("129k / 124k / 86k", "184k / 139k (1.32x)"),
        (500, 16384) => ("121k / 115k / 72k", "178k / 125k (1.42x)"),
        _ => ("not published", "not measured"),
    }
}

fn cell(v: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    v.map(fmt).unwrap_or_else(|| "–".into())
}

fn rate(v: f64) -> String {
    group(v.round() as u64)
}

fn two_decimals(v: f64) -> String {
    format!("{v:.2}")
}

fn x(v: f64) -> String {
    format!("{v:.2}x")
}

/// The server's and the client's CPU (percent of one core, medians) for
/// the scenarios `rows`, one `server / client` cell per server.
fn cpu_share_table(o: &mut String, plan: &RunPlan, samples: &[Sample], rows: &[usize]) {
    let _ = writeln!(
        o,
        "\nServer / client CPU in the same runs (percent of one core, medians; client-bound above \
         {CLIENT_BOUND_PERCENT:.0}%):\n"
    );
    let heads: String = plan
        .servers
        .iter()
        .map(|s| format!(" {} |", s.label()))
        .collect();
    let _ = writeln!(o, "| case |{heads}");
    let _ = writeln!(o, "|---|{}", "---:|".repeat(plan.servers.len()));
    for &i in rows {
        let _ = write!(o, "| {} |", plan.scenarios[i].title());
        for &s in &plan.servers {
            let server = median_of(samples, i, s, |x| x.server_cpu_percent);
            let client = median_of(samples, i, s, |x| x.client_cpu_percent);
            let mark = if client_bound(samples, i, s) {
                " **client-bound**"
            } else {
                ""
            };
            let pct = |v| cell(v, |v| format!("{v:.0}%"));
            let _ = write!(o, " {} / {}{mark} |", pct(server), pct(client));
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o);
}

/// Renders `compare.md`.
pub fn markdown(ctx: &Context<'_>, samples: &[Sample]) -> String {
    let plan = ctx.plan;
    let m = ctx.machine;
    let servers = &plan.servers;
    let fws = ServerKind::Fastwebsockets;
    let others: Vec<ServerKind> = servers.iter().copied().filter(|&s| s != fws).collect();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# ringecho against the peers a user would otherwise pick\n"
    );
    let _ = writeln!(o, "- command: `{}`", ctx.command);
    let _ = writeln!(
        o,
        "- commit: `{}`; started {} UTC, took {}",
        m.commit,
        m.started,
        humantime::format_duration(std::time::Duration::from_secs(ctx.elapsed.as_secs()))
    );
    let _ = writeln!(
        o,
        "- machine: {} cores ({}), kernel {}; server pinned to CPU {}, loadgen (1 thread) to CPU {}; loopback",
        m.cores, m.cpu_model, m.kernel, plan.server_cpu, plan.load_cpu
    );
    let _ = writeln!(
        o,
        "- each point: a fresh server, {} warmup, then {} measured; {} repeats, servers interleaved, \
         every figure the median of the repeats (ratios are ratios of medians)",
        humantime::format_duration(plan.window.warmup),
        humantime::format_duration(plan.window.measure),
        plan.repeats
    );
    let _ = writeln!(
        o,
        "- load average {} at the start, {} at the end (other builds may have run concurrently on this \
         shared 2-core VM)",
        m.loadavg_start, ctx.loadavg_end
    );
    match plan.held_share {
        Some(share) => {
            let _ = writeln!(
                o,
                "- closed loop: each server held to {share}% of its core by a cgroup v1 CPU quota \
                 (`cpu.cfs_quota_us` {} per `cpu.cfs_period_us` {PERIOD_US}, `--held-share`), so loadgen, \
                 on a whole core, is not the bottleneck and msg/s ranks capacity; the other scenarios run unheld",
                PERIOD_US * share / 100
            );
        }
        None => {
            let _ = writeln!(o, "- closed loop: servers unheld (`--held-share 0`)");
        }
    }
    let _ = writeln!(
        o,
        "- server CPU and client CPU: percent of one core over the measured window (utime+stime from \
         /proc); a case whose client was above {CLIENT_BOUND_PERCENT:.0}% of its core (median) measures \
         the client: it is marked client-bound and not ranked"
    );
    let _ = writeln!(
        o,
        "- servers: ringecho `--threads 1 --keep-alive-interval 0 --io uring|epoll`; `fws_echo` (the \
         fastwebsockets example: hyper upgrade, FragmentCollector, tokio current-thread); \
         `tungstenite_echo` (tokio-tungstenite, tokio current-thread). All rows: `results/compare.csv`\n"
    );

    let ratio_heads: String = others
        .iter()
        .map(|s| format!(" {} / fws |", s.label()))
        .collect();
    let server_heads: String = servers
        .iter()
        .map(|s| format!(" {} |", s.label()))
        .collect();
    let aligns = "---:|".repeat(servers.len() + others.len());
    // One row's leading cells: the scenario, each server's median of
    // `figure`, then each peer's ratio to fastwebsockets. Callers end the row.
    // A client-bound cell is marked and takes part in no ratio.
    let row_cells = |o: &mut String,
                     i: usize,
                     figure: fn(&Sample) -> Option<f64>,
                     format: fn(f64) -> String| {
        let get = |s| median_of(samples, i, s, figure);
        let bound = |s| client_bound(samples, i, s);
        let _ = write!(o, "| {} |", plan.scenarios[i].title());
        for &s in servers {
            let mark = if bound(s) { " (client-bound)" } else { "" };
            let _ = write!(o, " {}{mark} |", cell(get(s), format));
        }
        for &s in &others {
            let ranked = !bound(s) && !bound(fws);
            let _ = write!(
                o,
                " {} |",
                cell(ratio(get(s), get(fws)).filter(|_| ranked), x)
            );
        }
    };

    let indices = |kind: ScenarioKind| -> Vec<usize> {
        plan.scenarios
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind() == kind)
            .map(|(i, _)| i)
            .collect()
    };

    let closed = indices(ScenarioKind::Closed);
    if !closed.is_empty() {
        let _ = writeln!(
            o,
            "## Closed loop: the fastwebsockets published cases (msg/s, higher is better)\n"
        );
        let _ = writeln!(
            o,
            "| case |{server_heads}{ratio_heads} published uWS / fws / tokio-tungstenite | this VM, uWS epoll / fws (load_test) |"
        );
        let _ = writeln!(o, "|---|{aligns}---:|---:|");
        for &i in &closed {
            let Scenario::Closed { connections, size } = plan.scenarios[i] else {
                continue;
            };
            let (up, vm) = published(connections, size);
            row_cells(&mut o, i, |x| x.msgs_per_sec, rate);
            let _ = writeln!(o, " {up} | {vm} |");
        }
        let _ = writeln!(
            o,
            "\nServer CPU time per message in the same runs (µs, lower is better; a saturated server \
             shows ~1e6 / msg/s):\n"
        );
        let _ = writeln!(o, "| case |{server_heads}{ratio_heads}");
        let _ = writeln!(o, "|---|{aligns}");
        for &i in &closed {
            row_cells(&mut o, i, |x| x.cpu_us_per_msg, two_decimals);
            let _ = writeln!(o);
        }
        cpu_share_table(&mut o, plan, samples, &closed);
    }

    let cpu = indices(ScenarioKind::Cpu);
    if !cpu.is_empty() {
        let _ = writeln!(
            o,
            "## Server CPU per message at a fixed offered rate (µs, lower is better)\n\n\
             Both cores stay below saturation, so this compares how much work each server does per \
             echo rather than who hits the ceiling first. CPU is utime+stime of the server process over \
             the measured window divided by the echoes in it.\n"
        );
        let _ = writeln!(
            o,
            "| scenario |{server_heads}{ratio_heads} io_uring / epoll |"
        );
        let _ = writeln!(o, "|---|{aligns}---:|");
        let cpu_rows = cpu.clone();
        for &i in &cpu {
            let get = |s| median_of(samples, i, s, |x| x.cpu_us_per_msg);
            row_cells(&mut o, i, |x| x.cpu_us_per_msg, two_decimals);
            let _ = writeln!(
                o,
                " {} |",
                cell(
                    ratio(
                        get(ServerKind::RingechoUring),
                        get(ServerKind::RingechoEpoll)
                    ),
                    x
                )
            );
        }
        cpu_share_table(&mut o, plan, samples, &cpu_rows);
    }

    let lat = indices(ScenarioKind::Latency);
    if !lat.is_empty() {
        let _ = writeln!(
            o,
            "## Game presets: round-trip latency (µs, open loop, corrected for coordinated omission)\n\n\
             Median over the repeats of each run's percentile.\n"
        );
        let _ = writeln!(
            o,
            "| preset | server | msg/s | p50 | p99 | p99.9 | p99 / fws p99 |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|");
        for &i in &lat {
            let p = |s, f: fn(&loadgen::report::Latency) -> f64| {
                median_of(samples, i, s, |x| x.latency.as_ref().map(f))
            };
            for &s in servers {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    plan.scenarios[i].title(),
                    s.label(),
                    cell(median_of(samples, i, s, |x| x.msgs_per_sec), rate),
                    cell(p(s, |l| l.p50), |v| format!("{v:.0}")),
                    cell(p(s, |l| l.p99), |v| format!("{v:.0}")),
                    cell(p(s, |l| l.p99_9), |v| format!("{v:.0}")),
                    cell(ratio(p(s, |l| l.p99), p(fws, |l| l.p99)), x),
                );
            }
        }
        let _ = writeln!(o);
    }

    let idle = indices(ScenarioKind::Idle);
    if !idle.is_empty() {
        let _ = writeln!(
            o,
            "## Server memory per idle WebSocket\n\n\
             (RSS with the connections open - RSS before) / connections open, the connections counted \
             as the server's socket fds beyond those it held at start. The team's earlier runs measured \
             uWebSockets at 273 B and the fastwebsockets example at 6.5 KB.\n"
        );
        let _ = writeln!(
            o,
            "| scenario | server | bytes per idle connection | open at the sample | / fws |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|");
        for &i in &idle {
            let b = |s| median_of(samples, i, s, |x| x.idle.map(|d| d.bytes_per_connection));
            for &s in servers {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} |",
                    plan.scenarios[i].title(),
                    s.label(),
                    cell(b(s), rate),
                    cell(
                        median_of(samples, i, s, |x| x.idle.map(|d| d.open as f64)),
                        rate
                    ),
                    cell(ratio(b(s), b(fws)), x),
                );
            }
        }
        let _ = writeln!(o);
    }

    if !ctx.charts.is_empty() {
        let _ = writeln!(o, "## Charts\n");
        for c in &ctx.charts {
            let _ = writeln!(o, "![{c}]({c})");
        }
        let _ = writeln!(o);
    }

    let warned: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.loadgen_warning.is_some())
        .collect();
    if !warned.is_empty() {
        let _ = writeln!(
            o,
            "## Runs where loadgen was the limit

loadgen's own warning (its busiest thread above \
             90% of its core): these runs measure loadgen, not the server. A case where most runs \
             warned is marked client-bound above.\n"
        );
        for s in warned {
            let _ = writeln!(
                o,
                "- {} / {} / run {}: {}",
                plan.scenarios[s.scenario].title(),
                s.server.label(),
                s.repeat,
                s.loadgen_warning.as_deref().unwrap_or_default()
            );
        }
        let _ = writeln!(o);
    }

    let failed: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.error.is_some() || s.echo_errors + s.connection_errors > 0)
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(o, "## Runs with errors\n");
        for s in failed {
            let _ = writeln!(
                o,
                "- {} / {} / run {}: {}",
                plan.scenarios[s.scenario].title(),
                s.server.label(),
                s.repeat,
                s.summary().replace('\n', " ")
            );
        }
        let _ = writeln!(o);
    }
    o
}
