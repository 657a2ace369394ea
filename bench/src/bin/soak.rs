//! `soak`: hold thousands of WebSockets on the engine for a long time, on
//! each backend, and check that nothing is lost and nothing leaks. Writes
//! `soak.md` with the figures, plots and CSVs. See `--help` and
//! `bench::soak`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bench::harness::{workspace_root, Binaries, Build};
use bench::machine::Machine;
use bench::soak::plan::SoakPlan;
use bench::soak::{markdown, run, write_outputs};
use clap::Parser;
use loadgen::usage::{check_output_dir, Failure, FailureKind as _};
use ringecho::IoBackend;

/// The engine soak: N WebSockets for a duration with a game host's traffic
/// mix and churn, on io_uring and on epoll, each engine pinned to one CPU
/// and loadgen to another. Passes when no echo is lost or corrupted, no
/// connection closes unexpectedly, the engine's RSS stays flat after the
/// warm-up, its open fds return to the baseline, and p99 is reported.
/// Run it under the machine-wide lock:
/// `flock /tmp/ringecho-measure.lock target/release/soak`.
#[derive(Debug, Parser)]
#[command(
    version,
    long_about = None,
    after_help = "Exit codes: 0 every check passed, 1 a runtime error, 2 usage error (including \
                  an --out-dir that cannot be written, checked before anything runs), 3 a check \
                  failed (soak.md says which)."
)]
struct Args {
    /// The test-suite variant: 1,000 WebSockets for 30 s, the mix scaled
    /// down, the same criteria. Writes to target/soak-quick/ by default.
    #[arg(long)]
    quick: bool,
    /// Backends to soak, one after the other (comma-separated: uring, epoll).
    #[arg(long, value_delimiter = ',', default_values_t = IoBackend::ALL.map(|b| b.to_string()))]
    backends: Vec<String>,
    /// WebSockets held [default: 15000; --quick: 1000].
    #[arg(short, long, value_name = "N")]
    connections: Option<usize>,
    /// The hold after the ramp [default: 10m; --quick: 30s].
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Connections in matches at 128 Hz [default: 150; --quick: 20].
    #[arg(long, value_name = "N")]
    players: Option<usize>,
    /// Connections sending 16 KiB bursts [default: 100; --quick: 10].
    #[arg(long, value_name = "N")]
    bursts: Option<usize>,
    /// Closes and reconnects per second [default: 200; --quick: 20].
    #[arg(long, value_name = "PER_SEC")]
    churn: Option<f64>,
    /// Messages per second of each lobby connection [default: 0.2].
    #[arg(long, value_name = "HZ")]
    lobby_rate: Option<f64>,
    /// The RSS must grow less than 2% over this last part of the hold
    /// [default: 8m; --quick: 24s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    rss_window: Option<Duration>,
    /// Where soak.md goes, with its plots and CSVs in soak/ beside it
    /// [default: results/, or target/soak-quick/ with --quick].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Use the binaries in DIR (ringecho, loadgen, ...) instead of building
    /// them with `cargo build --release`.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// CPU the engine is pinned to.
    #[arg(long, default_value_t = 1)]
    engine_cpu: usize,
    /// CPU loadgen is pinned to.
    #[arg(long, default_value_t = 0)]
    loadgen_cpu: usize,
    /// Set this niceness (e.g. -10, needs root) before starting the engine
    /// and loadgen, which inherit it, so other work on a shared machine
    /// does not preempt them.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    nice: Option<i32>,
    /// Run the engine and loadgen under SCHED_FIFO at this priority (1-99,
    /// needs root), so a runnable engine or loadgen always preempts other
    /// work on its CPU. Only while both need well under 95% of their core:
    /// above it the kernel's real-time throttling stops them for the rest of
    /// each second, and the latency figures measure those stops (loadgen
    /// warns when it runs under a real-time policy).
    #[arg(long, value_name = "PRIO")]
    realtime: Option<i32>,
    /// More `loadgen soak` options, after `--` (e.g. `-- --burst-every 5s`).
    #[arg(last = true, value_name = "LOADGEN_ARGS")]
    loadgen_args: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    loadgen::config::parse_duration(s).map_err(|e| e.to_string())
}

/// Exit code when the soak ran but a check failed.
const CHECK_FAILED: u8 = 3;

fn main() -> ExitCode {
    let args = Args::parse();
    let (plan, out_dir) = match check(&args) {
        Ok(checked) => checked,
        Err(failure) => return failure.exit("soak"),
    };
    match real_main(&args, plan, out_dir) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(CHECK_FAILED),
        Err(e) => Failure::runtime(e).exit("soak"),
    }
}

/// The plan and the output directory, checked (the directory writable)
/// before anything runs; the priority options are applied here too, since
/// a priority the process may not take is a usage error.
fn check(args: &Args) -> Result<(SoakPlan, PathBuf), Failure> {
    let plan = plan_of(args).or_usage()?;
    if let Some(nice) = plan.nice {
        bench::priority::set_niceness(nice)
            .map_err(|e| Failure::Usage(format!("--nice {nice}: {e}")))?;
    }
    if let Some(priority) = plan.realtime {
        // Checked here, once; each backend run sets it for its children only.
        bench::priority::set_realtime(priority)
            .and_then(|()| bench::priority::set_normal_scheduler())
            .map_err(|e| Failure::Usage(format!("--realtime {priority}: {e}")))?;
    }
    let out_dir = args.out_dir.clone().unwrap_or_else(|| {
        workspace_root().join(if args.quick {
            "target/soak-quick"
        } else {
            "results"
        })
    });
    check_output_dir("--out-dir", &out_dir.join("soak"))?;
    Ok((plan, out_dir))
}

fn plan_of(args: &Args) -> anyhow::Result<SoakPlan> {
    let base = if args.quick {
        SoakPlan::quick()
    } else {
        SoakPlan::full()
    };
    // Checked here rather than by clap, so the error is the one line of the
    // command-line contract.
    let backends = args
        .backends
        .iter()
        .map(|name| name.parse::<IoBackend>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--backends: {e}"))?;
    let plan = SoakPlan {
        backends,
        connections: args.connections.unwrap_or(base.connections),
        duration: args.duration.unwrap_or(base.duration),
        players: args.players.unwrap_or(base.players),
        bursts: args.bursts.unwrap_or(base.bursts),
        churn: args.churn.unwrap_or(base.churn),
        lobby_rate: args.lobby_rate.unwrap_or(base.lobby_rate),
        rss_window: args.rss_window.unwrap_or(base.rss_window),
        engine_cpu: args.engine_cpu,
        loadgen_cpu: args.loadgen_cpu,
        nice: args.nice,
        realtime: args.realtime,
        extra_loadgen_args: args.loadgen_args.clone(),
        ..base
    };
    if plan.backends.is_empty() {
        bail!("--backends takes uring and/or epoll");
    }
    if plan.players + plan.bursts > plan.connections {
        bail!("--players + --bursts exceed --connections");
    }
    if plan.rss_window.is_zero() || plan.rss_window > plan.duration {
        bail!("--rss-window must be positive and at most --duration");
    }
    Ok(plan)
}

/// The command line as the report names it: `target/release/soak ARGS`,
/// behind the `flock ...` that started it when it was started that way.
fn invocation() -> String {
    let own = std::iter::once("target/release/soak".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    // SAFETY: getppid(2) takes no arguments and cannot fail.
    let parent = unsafe { libc::getppid() };
    let parent_args: Vec<String> = std::fs::read(format!("/proc/{parent}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let is_flock = parent_args.first().is_some_and(|p| p.ends_with("flock"));
    let before_us = parent_args
        .iter()
        .position(|a| a.ends_with("/soak") || a == "soak");
    match before_us {
        Some(i) if is_flock => format!("{} {own}", parent_args[..i].join(" ")),
        _ => own,
    }
}

fn real_main(args: &Args, plan: SoakPlan, out_dir: PathBuf) -> anyhow::Result<bool> {
    let command = invocation();
    match loadgen::nofile::raise_to_hard_limit() {
        Ok(limit) => eprintln!("soak: {limit}; the engine and loadgen inherit it"),
        Err(e) => eprintln!("soak: warning: cannot raise the open files limit: {e}"),
    }
    let data_dir = out_dir.join("soak");
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let bins = match &args.bin_dir {
        Some(dir) => Binaries::in_dir(dir)?,
        None => {
            eprintln!("building release binaries (cargo build --release) ...");
            Binaries::locate(Build::Release)?
        }
    };
    let machine = Machine::describe();
    let started = Instant::now();
    let mut runs = Vec::new();
    for backend in &plan.backends {
        eprintln!(
            "soak: {backend}: {} WebSockets for {} (+ {:.1} s ramp), churn {}/s",
            plan.connections,
            humantime::format_duration(plan.duration),
            plan.ramp().as_secs_f64(),
            plan.churn
        );
        let r = run::run_backend(&bins, &plan, *backend, &data_dir)
            .with_context(|| format!("soak on {backend}"))?;
        for c in &r.checks {
            eprintln!(
                "soak: {backend}: [{}] {}: {}",
                if c.pass { "pass" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        if let Some(w) = r.loadgen_warning() {
            eprintln!("soak: {backend}: WARNING: {w}");
        }
        runs.push(r);
    }
    let report_path = out_dir.join("soak.md");
    let ctx = markdown::Context {
        command: &command,
        machine: &machine,
        plan: &plan,
        wall_minutes: started.elapsed().as_secs_f64() / 60.0,
        data_dir: "soak",
    };
    write_outputs(&report_path, &data_dir, &ctx, &runs)?;
    // The CSVs, plots and summary name the commit too, like the report.
    let data: Vec<PathBuf> = std::fs::read_dir(&data_dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    bench::provenance::stamp_files(data.iter().map(PathBuf::as_path), &machine.commit)
        .context("stamping the commit into the soak's data files")?;
    let pass = runs.iter().all(|r| r.pass());
    eprintln!(
        "soak: {} -> {}",
        if pass { "PASS" } else { "FAIL" },
        report_path.display()
    );
    Ok(pass)
}
