//! The Markdown report of a sweep: what ran (command, commit, machine,
//! workload, grid, timing), the recommendation with its reasons, the plots,
//! and the table of medians every conclusion comes from.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::plan::{human_bytes, Axes, Timing};
use crate::progress::format_duration;
use crate::provenance::Provenance;
use crate::recommend::{NoRecommendation, Recommendation};
use crate::summary::Summary;
use crate::workload::Workload;

/// Everything the report shows.
pub struct ReportInput<'a> {
    /// The traffic.
    pub workload: &'a Workload,
    /// Commit, machine, command.
    pub provenance: &'a Provenance,
    /// The grid swept.
    pub axes: &'a Axes,
    /// Warmup and measured window per run.
    pub timing: Timing,
    /// Repeats asked for.
    pub repeats: usize,
    /// Runs measured and runs planned.
    pub runs: (usize, usize),
    /// Whether the sweep was interrupted.
    pub interrupted: bool,
    /// Runs that failed, with the reason.
    pub failures: &'a [String],
    /// Every sample measured.
    pub samples: &'a [crate::sample::Sample],
    /// The medians per setting.
    pub summaries: &'a [Summary],
    /// The recommendation, or why there is none.
    pub recommendation: &'a Result<Recommendation, NoRecommendation>,
    /// The CSV of every run (file name only; it sits next to the report).
    pub csv: PathBuf,
    /// The plots (file names only).
    pub plots: &'a [PathBuf],
}

/// The recommendation block, also printed by `tune` at the end.
pub fn recommendation_text(
    recommendation: &Result<Recommendation, NoRecommendation>,
    workload: &Workload,
) -> String {
    match recommendation {
        Ok(r) => {
            let mut text = format!("Recommended:\n\n    {}\n\nWhy:\n", r.flags());
            for reason in r.reasons(workload.largest_message(), workload.offered_rate()) {
                let _ = writeln!(text, "- {reason}");
            }
            text
        }
        Err(why) => format!("No recommendation: {why}.\n"),
    }
}

/// Renders the report.
pub fn render(input: &ReportInput<'_>) -> String {
    let w = input.workload;
    let p = input.provenance;
    let mut md = String::new();
    let _ = writeln!(md, "# Receive-buffer sweep: {}\n", w.name);
    let _ = writeln!(md, "{}\n", w.about);
    if input.interrupted {
        let _ = writeln!(
            md,
            "**Interrupted**: {} of {} runs measured; everything below is from those.\n",
            input.runs.0, input.runs.1
        );
    }
    let _ = writeln!(md, "## Recommendation\n");
    md += &recommendation_text(input.recommendation, w);
    let _ = writeln!(md);
    let _ = writeln!(md, "## Plots\n");
    for plot in input.plots {
        let name = plot.display();
        let _ = writeln!(md, "![{name}]({name})\n");
    }
    let _ = writeln!(
        md,
        "One line per backend (and ring count). Whiskers on the p99 plot: the lowest and \
         highest repeat; dashed: the best p99 plus the tolerance; circled: the recommendation. \
         The memory plot's dashed lines are the ring's fixed cost (size x count per worker) \
         spread over the {} connections; the solid lines are measured.\n",
        w.connections
    );
    let _ = writeln!(md, "## How it was measured\n");
    let _ = writeln!(md, "- Command: `{}`", p.command);
    let _ = writeln!(md, "- Commit: `{}`", p.machine.commit);
    let _ = writeln!(
        md,
        "- Machine: {} cores ({}), kernel {}; 1-minute load average at the start {} \
         (other builds may have run on the machine meanwhile)",
        p.machine.cores, p.machine.cpu_model, p.machine.kernel, p.machine.loadavg_start
    );
    let _ = writeln!(
        md,
        "- Workload (loadgen options): `{}`",
        w.loadgen_args().join(" ")
    );
    let _ = writeln!(
        md,
        "- Server: `ringecho --threads 1 --keep-alive-interval 0` pinned to one CPU, loadgen \
         pinned to another (the shared harness in `bench/src/harness.rs`), both at niceness \
         {}{}; binaries from `{}`",
        p.niceness.map_or("unknown".to_string(), |n| n.to_string()),
        p.realtime.map_or(String::new(), |prio| format!(
            " and real-time priority {prio} (SCHED_FIFO, `--realtime`)"
        )),
        p.binaries
    );
    let _ = writeln!(
        md,
        "- Grid: `--io` {}; `--receive-buffer-size` {}; `--receive-buffers` {} (io_uring only); \
         kernel socket buffers {}",
        join(input.axes.backends.iter().map(|b| b.to_string())),
        join(input.axes.buffer_sizes.iter().map(|&s| human_bytes(s))),
        join(input.axes.buffer_counts.iter().map(|c| c.to_string())),
        join(input.axes.socket_buffers.iter().map(|s| match s {
            Some(bytes) => human_bytes(*bytes),
            None => "kernel default".to_string(),
        })),
    );
    let _ = writeln!(
        md,
        "- Each run: a fresh server, a {} warmup loadgen run (discarded), then a {} measured \
         run (after loadgen's own {} ms settle, kept out of its histograms); {} repeat(s), \
         interleaved (odd repeats in reverse order); {} of {} runs measured",
        format_duration(input.timing.warmup),
        format_duration(input.timing.measure),
        crate::plan::SETTLE.as_millis(),
        input.repeats,
        input.runs.0,
        input.runs.1
    );
    let _ = writeln!(
        md,
        "- Latency: loadgen's corrected round trip (from the intended send time). CPU: server \
         utime + stime over the measured run / its echoed messages (msg/s x (settle + window)). \
         RSS per connection: server RSS with the connections open minus RSS before the first \
         one, / connections."
    );
    let loads: Vec<f64> = input
        .samples
        .iter()
        .filter_map(|s| s.load_average)
        .collect();
    if !loads.is_empty() {
        let _ = writeln!(
            md,
            "- 1-minute load average after each run: median {:.2}, {:.2}..{:.2} on {} cores (above \
             the core count, other processes competed with the measured ones; see the CSV's \
             `load_average` per run)",
            crate::summary::median(loads.iter().copied()),
            loads.iter().copied().fold(f64::INFINITY, f64::min),
            loads.iter().copied().fold(0.0, f64::max),
            p.machine.cores
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "The epoll backend has no receive ring: `--receive-buffer-size` and \
         `--receive-buffers` do not change it. Its line is measured at every size all the \
         same, so its wiggle is the run-to-run noise of this machine, shown next to the \
         io_uring lines.\n"
    );
    if !input.failures.is_empty() {
        let _ = writeln!(md, "Failed runs (left out):\n");
        for failure in input.failures {
            let _ = writeln!(md, "- {}", failure.replace('\n', " "));
        }
        let _ = writeln!(md);
    }
    let bound: Vec<String> = input
        .summaries
        .iter()
        .filter(|s| s.loadgen_bound > 0)
        .map(|s| {
            format!(
                "{} {} x {} ({}/{} repeats)",
                s.setting.backend,
                human_bytes(s.setting.buffer_size),
                s.setting.buffers,
                s.loadgen_bound,
                s.repeats
            )
        })
        .collect();
    if !bound.is_empty() {
        let _ = writeln!(
            md,
            "**Warning:** loadgen's busiest thread was above 90% of its core in some runs of: \
             {}. Those runs measure loadgen, not the server (the CSV's `loadgen_bound` per run).\n",
            bound.join(", ")
        );
    }
    let _ = writeln!(md, "## Medians per setting\n");
    let _ = writeln!(
        md,
        "| io | buffer size | buffers | socket buffers | repeats | msg/s | p50 us | p99 us (min..max) | p99.9 us | CPU us/msg | RSS/conn KiB | ring/worker | ring ran dry | spans buffers | errors |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let largest = w.largest_message();
    for s in input.summaries {
        let setting = s.setting;
        let ring = setting.backend.uses_receive_ring();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} ({:.0}..{:.0}) | {:.0} | {:.2} | {:.1} | {} | {} | {} | {} |",
            setting.backend,
            human_bytes(setting.buffer_size),
            if ring { setting.buffers.to_string() } else { "-".into() },
            setting.socket_buffer.map_or("kernel".to_string(), human_bytes),
            s.repeats,
            s.msgs_per_sec,
            s.p50_us,
            s.p99_us,
            s.p99_range_us.0,
            s.p99_range_us.1,
            s.p99_9_us,
            s.cpu_us_per_msg,
            s.rss_per_connection_bytes / 1024.0,
            if ring { human_bytes(s.ring_bytes) } else { "-".into() },
            if ring { format!("{}/{}", s.ran_dry, s.repeats) } else { "-".into() },
            if ring && setting.buffer_size < largest {
                format!("up to {}", largest.div_ceil(setting.buffer_size))
            } else {
                "-".into()
            },
            s.errors,
        );
    }
    let _ = writeln!(
        md,
        "\nEvery run is a row of [`{}`]({}). \"spans buffers\": how many receive buffers the \
         largest message ({largest} B) fills; \"ring ran dry\": repeats in which the server \
         logged that its ring was empty when data arrived. Both cost time, never correctness \
         (`engine/tests/undersized_buffers.rs`).",
        input.csv.display(),
        input.csv.display()
    );
    md
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringecho::IoBackend;

    use crate::plan::Setting;
    use crate::recommend::recommend;
    use crate::workload::WorkloadOverrides;
    use bench::machine::Machine;

    #[test]
    fn the_report_names_its_origin_and_every_setting() {
        let workload = Workload::new(Some("shooter-128hz"), &WorkloadOverrides::default()).unwrap();
        let setting = |backend, size| Setting {
            backend,
            buffer_size: size,
            buffers: 128,
            socket_buffer: None,
        };
        let summaries: Vec<Summary> = [
            (setting(IoBackend::Uring, 32), 400.0),
            (setting(IoBackend::Uring, 1024), 300.0),
            (setting(IoBackend::Epoll, 1024), 320.0),
        ]
        .into_iter()
        .map(|(setting, p99)| Summary {
            setting,
            repeats: 2,
            msgs_per_sec: 25_600.0,
            p50_us: 100.0,
            p99_us: p99,
            p99_9_us: 2.0 * p99,
            p99_range_us: (p99 - 10.0, p99 + 10.0),
            msgs_range: (25_600.0, 25_600.0),
            cpu_us_per_msg: 11.0,
            cpu_range_us: (11.0, 11.0),
            rss_per_connection_bytes: 10_240.0,
            rss_range: (10_240.0, 10_240.0),
            ring_bytes: setting.ring_bytes(),
            errors: 0,
            ran_dry: 1,
            loadgen_bound: 0,
        })
        .collect();
        let recommendation = recommend(&summaries);
        let provenance = Provenance {
            machine: Machine {
                cores: 2,
                cpu_model: "Test CPU".into(),
                kernel: "6.18.0".into(),
                commit: "abc1234".into(),
                loadavg_start: "0.50".into(),
                started: "2026-11-21T00:00:00Z".into(),
            },
            command: "tune --preset shooter-128hz".into(),
            binaries: "target/release".into(),
            niceness: Some(-10),
            realtime: None,
        };
        let axes = Axes {
            backends: vec![IoBackend::Uring, IoBackend::Epoll],
            buffer_sizes: vec![32, 1024],
            buffer_counts: vec![128],
            socket_buffers: vec![None],
        };
        let md = render(&ReportInput {
            workload: &workload,
            provenance: &provenance,
            axes: &axes,
            timing: Timing {
                warmup: std::time::Duration::from_secs(1),
                measure: std::time::Duration::from_secs(3),
            },
            repeats: 2,
            runs: (6, 8),
            interrupted: true,
            failures: &["uring 32B x128 repeat 1: server died".to_string()],
            samples: &[],
            summaries: &summaries,
            recommendation: &recommendation,
            csv: "shooter-128hz.csv".into(),
            plots: &["shooter-128hz-p99.svg".into()],
        });
        assert!(md.contains("**Interrupted**: 6 of 8 runs"));
        assert!(
            md.contains("    ringecho --io uring --receive-buffer-size 1KiB --receive-buffers 128")
        );
        assert!(md.contains("Commit: `abc1234`"));
        assert!(md.contains("both at niceness -10"));
        assert!(md.contains("kernel 6.18.0"));
        assert!(md.contains("`--mode open --rate 128 -c 200 -s 18..64 --in-flight 1 --binary`"));
        assert!(md.contains("![shooter-128hz-p99.svg](shooter-128hz-p99.svg)"));
        assert!(md.contains("| uring | 32B | 128 | kernel | 2 | 25600 |"));
        assert!(
            md.contains("| up to 2 |"),
            "64 B messages span two 32 B buffers"
        );
        assert!(md.contains("| epoll | 1KiB | - |"));
        assert!(md.contains("server died"));
    }
}
