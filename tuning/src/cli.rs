//! The command line of `tune` and how it becomes a [`Sweep`].
//!
//! Every sweep option is optional so that three layers can be told apart:
//! an explicit option beats `--quick`, which beats the full-sweep default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use loadgen::config::{parse_bytes, parse_duration, SizeRange};
use loadgen::usage::{Failure, FailureKind as _};
use ringecho::config::{
    MAX_RECEIVE_BUFFERS, MAX_RECEIVE_BUFFER_SIZE, MAX_SOCKET_BUFFER, MIN_RECEIVE_BUFFER_SIZE,
    MIN_SOCKET_BUFFER,
};
use ringecho::IoBackend;

use crate::measure::Rig;
use crate::plan::{human_bytes, Axes, Timing};
use crate::provenance::Provenance;
use crate::sweep::Sweep;
use crate::workload::{Workload, WorkloadOverrides};

/// Sweep the engine's receive-buffer settings for a game workload and
/// recommend the flags with the best tail latency for their memory.
///
/// Runs the real ringecho (pinned to --server-cpu, one worker) against the
/// real loadgen (pinned to --load-cpu) for every point of the grid, with a
/// warmup and repeats; writes DIR/<workload>.csv (a row per run, as soon as
/// it is measured), DIR/<workload>.md and three SVG plots (DIR is
/// --out-dir, by default target/tuning, so a sweep never overwrites the
/// committed results/tuning/), and prints the recommendation. Ctrl-C stops
/// after the current run and still writes the report from the points
/// measured so far.
#[derive(Debug, Parser)]
#[command(
    name = "tune",
    version,
    after_help = "Sizes take units (256B, 4KiB) or plain bytes; LIST is comma-separated, and \
                  A..B in --buffer-sizes means every power of two from A to B. The workload \
                  options mean what they mean to loadgen: --rate alone selects the open loop.\n\
                  Exit codes: 0 every run measured, 1 a runtime error or failed runs (the report \
                  says which), 2 usage error (including a --budget the plan exceeds and an \
                  --out-dir that cannot be written), 130 stopped by Ctrl-C (the report covers \
                  the runs measured).\n\
                  Examples:\n  tune --preset shooter-128hz\n  \
                  tune --preset moba-30hz --buffer-counts 128 --repeats 5\n  \
                  tune --connections 64 --size 1400 --rate 20 --name snapshots-20hz\n  \
                  tune --preset action-60hz --quick\n  \
                  tune --preset shooter-128hz --plan\n  \
                  tune --preset shooter-128hz --out-dir results/tuning   (to publish)"
)]
pub struct Cli {
    /// Workload from a loadgen preset (see --list-presets); the options below override its fields.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Describe loadgen's presets and exit.
    #[arg(long)]
    pub list_presets: bool,
    /// Connections (players).
    #[arg(short, long, value_name = "N")]
    pub connections: Option<usize>,
    /// Payload size: BYTES or MIN..MAX.
    #[arg(short, long, value_name = "BYTES|MIN..MAX")]
    pub size: Option<String>,
    /// Messages per second per connection (the tick rate); on its own it selects the open loop.
    #[arg(short, long, value_name = "HZ")]
    pub rate: Option<f64>,
    /// closed: next message when the echo returns; open: at --rate.
    #[arg(short, long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Name of the result files [default: the preset's, or one made from the workload].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// --receive-buffer-size values: A..B (powers of two) or a LIST [default: 256B..64KiB; quick: 256B,4KiB].
    #[arg(long, value_name = "A..B|LIST")]
    pub buffer_sizes: Option<String>,
    /// --receive-buffers values, powers of two (io_uring only) [default: 32,128,1024; quick: 128].
    #[arg(long, value_name = "LIST")]
    pub buffer_counts: Option<String>,
    /// io backends to sweep [default: uring,epoll].
    #[arg(long, value_name = "LIST")]
    pub io: Option<String>,
    /// Kernel socket buffers (SO_RCVBUF and SO_SNDBUF), `kernel` for the default [default: kernel].
    #[arg(long, value_name = "LIST")]
    pub socket_buffers: Option<String>,

    /// Repeats of every setting; the spread between them sets the tolerance [default: 3; quick: 1].
    #[arg(long, value_name = "N")]
    pub repeats: Option<usize>,
    /// Warmup loadgen run before each measured one [default: 1s; quick: 500ms].
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    pub warmup: Option<Duration>,
    /// Measured loadgen run per point [default: 3s; quick: 1s].
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Refuse to start when the estimated time exceeds this.
    #[arg(long, value_name = "DUR", value_parser = duration_arg)]
    pub budget: Option<Duration>,
    /// A tiny end-to-end sweep for CI: 2 sizes x 1 count x 2 backends x 1 repeat, 1 s each.
    #[arg(long)]
    pub quick: bool,
    /// Print the workload, the runs, the time per run and in all, and the output files; measure nothing.
    #[arg(long)]
    pub plan: bool,
    /// Redraw the SVG plots of a finished sweep from its CSV (with the workload options for the connection count); measure nothing.
    #[arg(long, value_name = "CSV")]
    pub replot: Option<PathBuf>,

    /// Directory of the results [default: target/tuning; quick: target/tuning-quick]; give results/tuning to publish.
    #[arg(long, visible_alias = "out", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Directory holding the ringecho and loadgen binaries [default: the one tune is in].
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// CPU the server is pinned to.
    #[arg(long, default_value_t = 1, value_name = "CPU")]
    pub server_cpu: usize,
    /// CPU loadgen is pinned to.
    #[arg(long, default_value_t = 0, value_name = "CPU")]
    pub load_cpu: usize,
    /// Niceness of tune, and so of the server and loadgen it starts (-20..=19; below 0 needs root), so that builds next to the sweep do not preempt them [default: unchanged]. (There is no real-time option: the kernel stops a SCHED_FIFO process that needs more than 95% of its core for the rest of each second, and the open loop's p99 then measures those stops.)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub nice: Option<i32>,
}

/// Open or closed loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// One message in flight per connection, the next when its echo returns.
    Closed,
    /// A fixed tick rate per connection (--rate).
    Open,
}

fn duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// A bad option value, naming the option.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{option}: {reason}")]
pub struct CliError {
    /// The option, with dashes.
    pub option: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn bad(option: &'static str, reason: impl Into<String>) -> CliError {
    CliError {
        option,
        reason: reason.into(),
    }
}

/// Parses `A..B` (every power of two from A to B) or a comma list of sizes.
pub fn parse_buffer_sizes(text: &str) -> Result<Vec<usize>, CliError> {
    const OPTION: &str = "--buffer-sizes";
    let size = |s: &str| parse_bytes(s).map_err(|e| bad(OPTION, e.to_string()));
    let sizes = match text.split_once("..") {
        Some((from, to)) => {
            let (from, to) = (size(from)?, size(to)?);
            if !from.is_power_of_two() || !to.is_power_of_two() || from > to {
                return Err(bad(
                    OPTION,
                    format!("{text:?}: A..B needs powers of two with A <= B"),
                ));
            }
            std::iter::successors(Some(from), |&s| (s < to).then_some(s * 2)).collect()
        }
        None => list(text, size)?,
    };
    for &s in &sizes {
        if !(MIN_RECEIVE_BUFFER_SIZE..=MAX_RECEIVE_BUFFER_SIZE).contains(&s) {
            return Err(bad(
                OPTION,
                format!(
                    "{s} B is outside what ringecho accepts ({MIN_RECEIVE_BUFFER_SIZE} B..={})",
                    human_bytes(MAX_RECEIVE_BUFFER_SIZE)
                ),
            ));
        }
    }
    Ok(dedup_sorted(sizes))
}

/// Parses a comma list of ring counts (powers of two up to the kernel limit).
pub fn parse_buffer_counts(text: &str) -> Result<Vec<usize>, CliError> {
    const OPTION: &str = "--buffer-counts";
    let counts = list(text, |s| {
        s.parse::<usize>()
            .map_err(|_| bad(OPTION, format!("{s:?} is not a number")))
    })?;
    if let Some(c) = counts
        .iter()
        .find(|c| !c.is_power_of_two() || **c > MAX_RECEIVE_BUFFERS)
    {
        return Err(bad(
            OPTION,
            format!("{c} is not a power of two between 1 and {MAX_RECEIVE_BUFFERS}"),
        ));
    }
    Ok(dedup_sorted(counts))
}

/// Parses a comma list of backends.
pub fn parse_backends(text: &str) -> Result<Vec<IoBackend>, CliError> {
    let mut backends = list(text, |s| {
        s.parse::<IoBackend>()
            .map_err(|_| bad("--io", format!("{s:?}: use uring, epoll or both")))
    })?;
    backends.sort();
    backends.dedup();
    Ok(backends)
}

/// Parses a comma list of kernel socket buffer sizes, `kernel` for the default.
pub fn parse_socket_buffers(text: &str) -> Result<Vec<Option<usize>>, CliError> {
    const OPTION: &str = "--socket-buffers";
    let mut values = list(text, |s| {
        if s == "kernel" {
            return Ok(None);
        }
        let bytes = parse_bytes(s).map_err(|e| bad(OPTION, e.to_string()))?;
        if !(MIN_SOCKET_BUFFER..=MAX_SOCKET_BUFFER).contains(&bytes) {
            return Err(bad(
                OPTION,
                format!(
                    "{bytes} B is outside what ringecho accepts ({}..={})",
                    human_bytes(MIN_SOCKET_BUFFER),
                    human_bytes(MAX_SOCKET_BUFFER)
                ),
            ));
        }
        Ok(Some(bytes))
    })?;
    values.sort();
    values.dedup();
    Ok(values)
}

fn list<T>(text: &str, item: impl Fn(&str) -> Result<T, CliError>) -> Result<Vec<T>, CliError> {
    let items: Vec<T> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(item)
        .collect::<Result<_, _>>()?;
    if items.is_empty() {
        return Err(CliError {
            option: "list",
            reason: format!("{text:?} names nothing"),
        });
    }
    Ok(items)
}

fn dedup_sorted(mut values: Vec<usize>) -> Vec<usize> {
    values.sort_unstable();
    values.dedup();
    values
}

impl Cli {
    /// The workload the options describe.
    pub fn workload(&self) -> anyhow::Result<Workload> {
        let size = self
            .size
            .as_deref()
            .map(SizeRange::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--size: {e}"))?;
        let overrides = WorkloadOverrides {
            connections: self.connections,
            size,
            rate_hz: self.rate,
            closed: self.mode.map(|m| m == ModeArg::Closed),
            name: self.name.clone(),
        };
        Ok(Workload::new(self.preset.as_deref(), &overrides)?)
    }

    /// The grid, with `--quick` or full-sweep defaults for what is not given.
    pub fn axes(&self) -> Result<Axes, CliError> {
        let (sizes, counts) = if self.quick {
            ("256B,4KiB", "128")
        } else {
            ("256B..64KiB", "32,128,1024")
        };
        Ok(Axes {
            backends: parse_backends(self.io.as_deref().unwrap_or("uring,epoll"))?,
            buffer_sizes: parse_buffer_sizes(self.buffer_sizes.as_deref().unwrap_or(sizes))?,
            buffer_counts: parse_buffer_counts(self.buffer_counts.as_deref().unwrap_or(counts))?,
            socket_buffers: parse_socket_buffers(
                self.socket_buffers.as_deref().unwrap_or("kernel"),
            )?,
        })
    }

    /// Repeats and timing, with `--quick` or full-sweep defaults.
    pub fn repeats_and_timing(&self) -> Result<(usize, Timing), CliError> {
        let quick = self.quick;
        let repeats = self.repeats.unwrap_or(if quick { 1 } else { 3 });
        if repeats == 0 {
            return Err(bad("--repeats", "must be at least 1"));
        }
        let timing = Timing {
            warmup: self.warmup.unwrap_or(if quick {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(1)
            }),
            measure: self
                .duration
                .unwrap_or(Duration::from_secs(if quick { 1 } else { 3 })),
        };
        if timing.measure < Duration::from_millis(200) {
            return Err(bad("--duration", "must be at least 200ms"));
        }
        Ok((repeats, timing))
    }

    /// Where the results go: never the committed `results/tuning/` unless asked.
    pub fn out_dir(&self) -> PathBuf {
        self.out_dir.clone().unwrap_or_else(|| {
            PathBuf::from(if self.quick {
                "target/tuning-quick"
            } else {
                "target/tuning"
            })
        })
    }

    /// The binaries and CPUs, checked to exist.
    pub fn rig(&self) -> anyhow::Result<Rig> {
        let dir = match &self.bin_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_exe()?
                .parent()
                .map(Path::to_path_buf)
                .ok_or_else(|| anyhow::anyhow!("cannot tell where tune is installed"))?,
        };
        let find = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(anyhow::anyhow!(
                    "{} not found (build it: cargo build --release -p ringecho -p loadgen -p \
                     tuning, or pass --bin-dir)",
                    path.display()
                ))
            }
        };
        Ok(Rig {
            ringecho: find("ringecho")?,
            loadgen: bench::Loadgen::new(&find("loadgen")?, self.load_cpu),
            server_cpu: self.server_cpu,
        })
    }

    /// The whole sweep, or the first bad option.
    /// Bad options are usage errors; missing binaries are not.
    pub fn into_sweep(self, command: String) -> Result<Sweep, Failure> {
        let workload = self.workload().or_usage()?;
        let axes = self.axes().or_usage()?;
        let (repeats, timing) = self.repeats_and_timing().or_usage()?;
        let rig = self.rig().or_runtime()?;
        let mut provenance = Provenance::describe(command);
        provenance.binaries = rig
            .ringecho
            .parent()
            .map_or_else(String::new, |dir| dir.display().to_string());
        Ok(Sweep {
            workload,
            axes,
            repeats,
            timing,
            out_dir: self.out_dir(),
            rig,
            provenance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_ranges_are_powers_of_two() {
        assert_eq!(
            parse_buffer_sizes("256B..4KiB").unwrap(),
            vec![256, 512, 1024, 2048, 4096]
        );
        assert_eq!(
            parse_buffer_sizes("4KiB,256,4096").unwrap(),
            vec![256, 4096]
        );
        assert_eq!(parse_buffer_sizes("1KiB..1KiB").unwrap(), vec![1024]);
        for bad in ["300..4KiB", "4KiB..256", "8", "2MiB", "lots", ""] {
            assert!(parse_buffer_sizes(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn counts_backends_and_socket_buffers_are_checked() {
        assert_eq!(
            parse_buffer_counts("1024, 32,128").unwrap(),
            vec![32, 128, 1024]
        );
        assert!(parse_buffer_counts("100").is_err());
        assert!(parse_buffer_counts("65536").is_err());
        assert_eq!(
            parse_backends("epoll,uring").unwrap(),
            vec![IoBackend::Uring, IoBackend::Epoll]
        );
        assert_eq!(parse_backends("uring").unwrap(), vec![IoBackend::Uring]);
        assert!(parse_backends("kqueue").is_err());
        assert_eq!(
            parse_socket_buffers("64KiB,kernel").unwrap(),
            vec![None, Some(65536)]
        );
        assert!(parse_socket_buffers("12").is_err());
    }

    #[test]
    fn quick_sets_small_defaults_that_options_override() {
        let cli = Cli::parse_from(["tune", "--preset", "shooter-128hz", "--quick"]);
        let axes = cli.axes().unwrap();
        assert_eq!(axes.buffer_sizes, vec![256, 4096]);
        assert_eq!(axes.buffer_counts, vec![128]);
        assert_eq!(axes.backends, vec![IoBackend::Uring, IoBackend::Epoll]);
        let (repeats, timing) = cli.repeats_and_timing().unwrap();
        assert_eq!((repeats, timing.measure), (1, Duration::from_secs(1)));
        assert_eq!(cli.out_dir(), PathBuf::from("target/tuning-quick"));
        let cli = Cli::parse_from(["tune", "--preset", "moba-30hz", "--quick", "--repeats", "2"]);
        assert_eq!(cli.repeats_and_timing().unwrap().0, 2);
        let full = Cli::parse_from(["tune", "--preset", "moba-30hz"]);
        assert_eq!(full.axes().unwrap().buffer_sizes.len(), 9);
        assert_eq!(full.out_dir(), PathBuf::from("target/tuning"));
        let publish = Cli::parse_from([
            "tune",
            "--preset",
            "moba-30hz",
            "--out-dir",
            "results/tuning",
        ]);
        assert_eq!(publish.out_dir(), PathBuf::from("results/tuning"));
        let explicit = Cli::parse_from(["tune", "-c", "10", "-s", "1KiB", "--mode", "closed"]);
        assert_eq!(explicit.workload().unwrap().name, "closed-10x1024b");
    }
}
