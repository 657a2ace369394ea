//! `microbench_table`: turns criterion's saved estimates (from `cargo bench
//! -p bench`, in `target/criterion`) into the Markdown summary
//! `results/microbench.md`: one row per benchmark with the median time per
//! operation, its 95% confidence interval and what the benchmark measures.
//!
//! ```text
//! cargo bench -p bench
//! cargo run -p bench --bin microbench_table -- --out results/microbench.md
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use bench::harness::target_dir;
use bench::machine::Machine;
use clap::Parser;
use loadgen::usage::{check_output_file, Failure};
use serde::Deserialize;

/// Summarise criterion results as a Markdown table.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Exit codes: 0 written, 1 a runtime error (no criterion results, an unreadable \
                  one), 2 usage error (including an --out that cannot be written)."
)]
struct Args {
    /// criterion's output directory [default: <target>/criterion].
    #[arg(long, value_name = "DIR")]
    criterion_dir: Option<PathBuf>,
    /// Write the Markdown here (else to stdout).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct BenchmarkId {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
    throughput: Option<Throughput>,
}

#[derive(Debug, Deserialize)]
enum Throughput {
    Bytes(u64),
    Elements(u64),
    BytesDecimal(u64),
}

#[derive(Debug, Deserialize)]
struct Estimate {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Debug, Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Debug, Deserialize)]
struct Estimates {
    median: Estimate,
}

/// What each group measures, for the table.
fn describe(group: &str) -> &'static str {
    match group {
        "echo_path" => "server echo of one message in the engine's code (fastwebsockets parse + unmask, `echo::run` encode + write through `SessionStream`), in-memory transport; per message",
        "echo_decode" => "user-space work per echoed message once the client frame is in memory (in_place: the io_uring path, `protocol::Decoder::feed` unmasks and validates in place and yields the echo range, no copy, buffer reset untimed; fastwebsockets: the epoll path's codec, `read_frame` from an in-memory stream, including a copy that stands for recv's, + `write_frame` into a sink); per message",
        "handshake" => "`accept_key`: Sec-WebSocket-Accept (SHA-1 + base64); `upgrade_response`: `http::route` checks + the 101 response",
        "loadgen_message" => "loadgen per echo: `conn::on_message` (echo verification of every byte + two HdrHistogram records); per message",
        _ => "",
    }
}

fn find(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "new") {
                if p.join("benchmark.json").is_file() {
                    out.push(p);
                }
            } else {
                find(&p, out);
            }
        }
    }
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.out {
        if let Err(failure) = check_output_file("--out", path) {
            return failure.exit("microbench_table");
        }
    }
    match table(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => Failure::runtime(e).exit("microbench_table"),
    }
}

fn table(args: Args) -> anyhow::Result<()> {
    let dir = args
        .criterion_dir
        .unwrap_or_else(|| target_dir().join("criterion"));
    let mut found = Vec::new();
    find(&dir, &mut found);
    anyhow::ensure!(
        !found.is_empty(),
        "no criterion results under {} (run `cargo bench -p bench` first)",
        dir.display()
    );
    let mut rows = Vec::new();
    for new in found {
        let id: BenchmarkId = serde_json::from_str(
            &std::fs::read_to_string(new.join("benchmark.json"))
                .with_context(|| format!("{}", new.display()))?,
        )?;
        let est: Estimates =
            serde_json::from_str(&std::fs::read_to_string(new.join("estimates.json"))?)?;
        let per = match id.throughput {
            Some(Throughput::Elements(n)) if n > 0 => n as f64,
            _ => 1.0,
        };
        let bytes = match id.throughput {
            Some(Throughput::Bytes(b) | Throughput::BytesDecimal(b)) => Some(b),
            _ => None,
        };
        rows.push((id, est, per, bytes));
    }
    rows.sort_by(|a, b| {
        (
            &a.0.group_id,
            &a.0.function_id,
            a.0.value_str.as_ref().and_then(|v| v.parse::<u64>().ok()),
        )
            .cmp(&(
                &b.0.group_id,
                &b.0.function_id,
                b.0.value_str.as_ref().and_then(|v| v.parse::<u64>().ok()),
            ))
    });
    let m = Machine::describe();
    let mut o = String::new();
    let _ = writeln!(o, "# Micro-benchmarks of the hot path\n");
    let _ = writeln!(
        o,
        "- command: `cargo bench -p bench` then `cargo run -p bench --bin microbench_table -- --out results/microbench.md`"
    );
    let _ = writeln!(o, "- commit: `{}`; {}", m.commit, m.started);
    let _ = writeln!(
        o,
        "- machine: {} cores ({}), kernel {}; release profile (fat LTO); criterion, 20 samples, 2 s each; \
         not pinned, other builds may have run concurrently (1-min load average {})",
        m.cores, m.cpu_model, m.kernel, m.loadavg_start
    );
    let _ = writeln!(
        o,
        "- times are criterion's median per operation (the 95% interval in brackets)\n"
    );
    let _ = writeln!(
        o,
        "| group | benchmark | size (B) | time per op | 95% interval | throughput |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---|---:|");
    for (id, est, per, bytes) in &rows {
        let med = est.median.point_estimate / per;
        let lo = est.median.confidence_interval.lower_bound / per;
        let hi = est.median.confidence_interval.upper_bound / per;
        let size: Option<f64> = bytes
            .map(|b| b as f64)
            .or_else(|| id.value_str.as_ref().and_then(|v| v.parse().ok()));
        let thr = match size {
            Some(s) => format!("{:.0} MB/s", s / med * 1e3),
            None => format!("{:.2} M/s", 1e3 / med),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} – {} | {} |",
            id.group_id,
            id.function_id.as_deref().unwrap_or(""),
            id.value_str.as_deref().unwrap_or(""),
            time(med),
            time(lo),
            time(hi),
            thr
        );
    }
    let _ = writeln!(o, "\nWhat each group measures:\n");
    let mut groups: Vec<&str> = rows.iter().map(|r| r.0.group_id.as_str()).collect();
    groups.dedup();
    for g in groups {
        let _ = writeln!(o, "- `{g}`: {}", describe(g));
    }
    match args.out {
        Some(path) => std::fs::write(&path, &o).with_context(|| format!("{}", path.display()))?,
        None => print!("{o}"),
    }
    Ok(())
}
