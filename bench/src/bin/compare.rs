//! `compare`: ringecho (io_uring and epoll) side by side with the
//! fastwebsockets example and a tokio-tungstenite echo, on the published
//! fastwebsockets cases, server CPU per message, game-preset latency and
//! idle memory. Writes `compare.md`, `compare.csv` and one SVG chart per
//! published case. See `--help`, and README "Reproducing published
//! benchmarks".

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bench::compare::chart::{bar_chart, Bar};
use bench::compare::output::{markdown, median_of, write_csv, Context};
use bench::compare::plan::{scenarios, size_label, Scenario, ScenarioKind, ServerKind};
use bench::compare::run::{estimate, run, RunPlan};
use bench::harness::{workspace_root, Binaries, Build, Window};
use bench::held_core::{HeldCore, CPU_CGROUP_ROOT};
use bench::machine::{loadavg, Machine};
use clap::Parser;
use loadgen::usage::{check_output_dir, Failure};

/// Side-by-side WebSocket echo benchmark: each server pinned to one CPU,
/// loadgen pinned to another, every point repeated, medians reported.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Exit codes: 0 every point measured, 1 a runtime error or a point without a \
                  figure, 2 usage error (including an --out-dir that cannot be written, checked \
                  before anything runs)."
)]
struct Args {
    /// End-to-end check only (for CI): 1 repeat, 0.5 s warmup, 0.5 s
    /// measured, a tenth of the connections per load scenario, 200 idle
    /// connections. Proves every server and scenario runs; its numbers mean
    /// nothing.
    #[arg(long)]
    quick: bool,
    /// Runs per server and scenario; the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repeats: u32,
    /// Load before each measured window.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Measured window of each point.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    measure: Duration,
    /// Idle connections for the memory scenario (the fd limit bounds it).
    #[arg(long, default_value_t = 9000)]
    idle_connections: usize,
    /// Servers to compare (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = ServerKind::ALL.to_vec())]
    servers: Vec<ServerKind>,
    /// Scenarios to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',',
          default_values_t = vec![ScenarioKind::Closed, ScenarioKind::Cpu, ScenarioKind::Latency, ScenarioKind::Idle])]
    scenarios: Vec<ScenarioKind>,
    /// Where compare.md, compare.csv and compare/*.svg go
    /// [default: results/, or target/compare-quick/ with --quick].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Use the binaries in DIR (ringecho, loadgen, fws_echo,
    /// tungstenite_echo) instead of building them with `cargo build --release`.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// CPU the server is pinned to.
    #[arg(long, default_value_t = 1)]
    server_cpu: usize,
    /// CPU loadgen is pinned to.
    #[arg(long, default_value_t = 0)]
    load_cpu: usize,
    /// Hold each server to PCT percent of its core in the closed-loop
    /// scenarios (a cgroup v1 CPU quota, PCT x 100 us per 10 ms; needs root),
    /// so loadgen on a whole core is never the bottleneck and msg/s ranks
    /// capacity; 0 runs them unheld.
    #[arg(long, value_name = "PCT", default_value_t = 40,
          value_parser = clap::value_parser!(u32).range(0..=100))]
    held_share: u32,
}

/// `--quick` divides every load scenario's connections by this.
const QUICK_SCALE_DOWN: usize = 10;

fn parse_duration(s: &str) -> Result<Duration, String> {
    loadgen::config::parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let command = std::iter::once("cargo run --release -p bench --bin compare --".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let (args, out_dir) = match check(args) {
        Ok(checked) => checked,
        Err(failure) => return failure.exit("compare"),
    };
    match run_comparison(args, out_dir, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => Failure::runtime(e).exit("compare"),
    }
}

/// The options after `--quick`, checked, and the output directory, checked
/// writable before anything runs.
fn check(mut args: Args) -> Result<(Args, PathBuf), Failure> {
    if args.quick {
        args.repeats = 1;
        args.warmup = Duration::from_millis(500);
        args.measure = Duration::from_millis(500);
        args.idle_connections = args.idle_connections.min(200);
    }
    if args.servers.is_empty() || args.scenarios.is_empty() {
        return Err(Failure::Usage(
            "--servers and --scenarios need at least one entry".into(),
        ));
    }
    let out_dir = args.out_dir.clone().unwrap_or_else(|| {
        workspace_root().join(if args.quick {
            "target/compare-quick"
        } else {
            "results"
        })
    });
    check_output_dir("--out-dir", &out_dir.join("compare"))?;
    Ok((args, out_dir))
}

fn run_comparison(args: Args, out_dir: PathBuf, command: String) -> anyhow::Result<()> {
    let bins = match &args.bin_dir {
        Some(dir) => Binaries::in_dir(dir)?,
        None => {
            eprintln!("building release binaries (cargo build --release) ...");
            Binaries::locate(Build::Release)?
        }
    };
    let plan = RunPlan {
        servers: args.servers.clone(),
        scenarios: scenarios(
            &args.scenarios,
            args.idle_connections,
            args.quick.then_some(QUICK_SCALE_DOWN),
        ),
        repeats: args.repeats as usize,
        window: Window {
            warmup: args.warmup,
            measure: args.measure,
        },
        server_cpu: args.server_cpu,
        load_cpu: args.load_cpu,
        held_share: (args.held_share > 0).then_some(args.held_share),
    };
    let held = match plan.held_share {
        Some(share) if args.scenarios.contains(&ScenarioKind::Closed) => Some(
            HeldCore::create(share).with_context(|| {
                format!(
                    "--held-share {share}: the closed-loop scenarios hold each server with a cgroup v1 \
                     CPU quota (root, {CPU_CGROUP_ROOT}); --held-share 0 runs them unheld"
                )
            })?,
        ),
        _ => None,
    };
    eprintln!(
        "{} scenarios x {} servers x {} repeats, about {}; results to {}",
        plan.scenarios.len(),
        plan.servers.len(),
        plan.repeats,
        humantime::format_duration(Duration::from_secs(estimate(&plan).as_secs())),
        out_dir.display()
    );
    let machine = Machine::describe();
    let started = Instant::now();
    let samples = run(&bins, &plan, held.as_ref());
    drop(held);

    let chart_dir = out_dir.join("compare");
    std::fs::create_dir_all(&chart_dir)
        .with_context(|| format!("creating {}", chart_dir.display()))?;
    let mut charts = Vec::new();
    for (i, scenario) in plan.scenarios.iter().enumerate() {
        let Scenario::Closed { connections, size } = *scenario else {
            continue;
        };
        let bars: Vec<Bar> = plan
            .servers
            .iter()
            .filter_map(|&s| {
                median_of(&samples, i, s, |x| x.msgs_per_sec).map(|value| Bar {
                    label: s.label().to_string(),
                    value,
                })
            })
            .collect();
        let file = format!("{}.svg", scenario.id());
        bar_chart(
            &chart_dir.join(&file),
            &format!(
                "{connections} connections x {}: echoes/s on one server core (median of {})",
                size_label(size),
                plan.repeats
            ),
            "messages per second",
            &bars,
        )?;
        charts.push(format!("compare/{file}"));
    }
    write_csv(&out_dir.join("compare.csv"), &plan.scenarios, &samples)?;
    let ctx = Context {
        plan: &plan,
        machine: &machine,
        command,
        loadavg_end: loadavg(),
        elapsed: started.elapsed(),
        charts,
    };
    let md = markdown(&ctx, &samples);
    std::fs::write(out_dir.join("compare.md"), &md)?;
    // The CSV and the charts name the commit too, like the report.
    let data: Vec<PathBuf> = std::iter::once(out_dir.join("compare.csv"))
        .chain(ctx.charts.iter().map(|chart| out_dir.join(chart)))
        .collect();
    bench::provenance::stamp_files(data.iter().map(PathBuf::as_path), &machine.commit)
        .context("stamping the commit into the CSV and charts")?;
    println!("{md}");

    let bad: Vec<String> = samples
        .iter()
        .filter(|s| !s.is_sane())
        .map(|s| {
            format!(
                "{} / {} / run {}: {}",
                plan.scenarios[s.scenario].id(),
                s.server.name(),
                s.repeat,
                s.summary()
            )
        })
        .collect();
    if !bad.is_empty() {
        bail!(
            "{} point(s) produced no figure:\n{}",
            bad.len(),
            bad.join("\n")
        );
    }
    Ok(())
}
