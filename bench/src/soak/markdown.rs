//! `results/soak.md`: the verdict, the figures per backend, the checks,
//! the plots, the mix and why, and how ephemeral ports were kept free.

use std::fmt::Write as _;

use loadgen::report::group;

use crate::machine::Machine;
use crate::soak::plan::SoakPlan;
use crate::soak::run::{BackendRun, BackendSummary};

/// What the report names besides the runs.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The command that produced the report.
    pub command: &'a str,
    /// Machine, kernel, commit, start time.
    pub machine: &'a Machine,
    /// The plan that ran.
    pub plan: &'a SoakPlan,
    /// Wall time of the whole run, minutes.
    pub wall_minutes: f64,
    /// Directory of the plots and CSVs, relative to the report.
    pub data_dir: &'a str,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1048576.0)
}

/// Renders the report.
pub fn render(ctx: &Context<'_>, runs: &[BackendRun]) -> String {
    let plan = ctx.plan;
    let sums: Vec<BackendSummary> = runs.iter().map(BackendRun::summary).collect();
    let mut o = String::new();
    let minutes = plan.duration.as_secs_f64() / 60.0;
    let _ = writeln!(
        o,
        "# Soak: {} WebSockets for {} on {}\n",
        group(plan.connections as u64),
        if minutes >= 1.0 {
            format!("{minutes:.0} minutes")
        } else {
            format!("{:.0} s", plan.duration.as_secs_f64())
        },
        if runs.len() > 1 {
            "both backends".to_string()
        } else {
            runs.iter()
                .map(|r| r.backend.name())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    let verdict: Vec<String> = sums
        .iter()
        .map(|s| format!("{} **{}**", s.backend, if s.pass { "PASS" } else { "FAIL" }))
        .collect();
    let _ = writeln!(o, "Verdict: {}.\n", verdict.join(", "));
    for s in &sums {
        if let Some(w) = &s.loadgen_warning {
            let _ = writeln!(o, "**Warning ({}):** {w}.\n", s.backend);
        }
    }
    let m = ctx.machine;
    let _ = writeln!(o, "- command: `{}`", ctx.command);
    let _ = writeln!(o, "- commit: `{}`", m.commit);
    let _ = writeln!(
        o,
        "- machine: {} cores, {}, kernel `{}`; load average at start {}",
        m.cores, m.cpu_model, m.kernel, m.loadavg_start
    );
    let _ = writeln!(
        o,
        "- date: {} UTC, {:.1} min in all",
        m.started, ctx.wall_minutes
    );
    for r in runs {
        let _ = writeln!(
            o,
            "- {}: engine `{}` pinned to CPU {} (open files limit {}); loadgen `{}` pinned to \
             CPU {} (it logged: {})",
            r.backend,
            r.engine_command,
            plan.engine_cpu,
            r.engine_nofile.map_or("?".into(), |n| n.to_string()),
            r.loadgen_command,
            plan.loadgen_cpu,
            r.loadgen_nofile.trim_start_matches("loadgen: ")
        );
    }
    let _ = writeln!(
        o,
        "- scheduling of the engine and loadgen: {} (inherited from the runner; the machine \
         is shared with other work, which shows in the load-average and busy-core rows)",
        match (plan.realtime, plan.nice) {
            (Some(p), _) => format!("SCHED_FIFO priority {p}"),
            (None, Some(n)) => format!("niceness {n}"),
            (None, None) => "the normal scheduler, niceness 0".to_string(),
        }
    );
    let _ = writeln!(
        o,
        "- the runner raises its own soft `RLIMIT_NOFILE` to the hard limit first, so the \
         engine and loadgen inherit it; loadgen raises its own as well and logs it"
    );
    let _ = writeln!(
        o,
        "- the engine runs with its defaults otherwise: keep-alive pings every 120 s (each \
         connection answers them), 1024 x 4 KiB receive buffers, 1 MiB backpressure cap\n"
    );

    let _ = writeln!(o, "## Figures\n");
    let mut header = String::from("| |");
    let mut rule = String::from("|---|");
    for s in &sums {
        let _ = write!(header, " {} |", s.backend);
        rule.push_str("---:|");
    }
    let _ = writeln!(o, "{header}\n{rule}");
    let row = |o: &mut String, label: &str, f: &dyn Fn(&BackendSummary) -> String| {
        let cells: Vec<String> = sums.iter().map(f).collect();
        let _ = writeln!(o, "| {label} | {} |", cells.join(" | "));
    };
    let lat = |s: &BackendSummary, class: &str| {
        s.latency_us
            .iter()
            .find(|l| l.class == class)
            .map(|l| l.corrected)
    };
    row(&mut o, "verdict", &|s| {
        if s.pass {
            "PASS".into()
        } else {
            "**FAIL**".into()
        }
    });
    row(
        &mut o,
        "WebSockets open over the hold (least, at 1 s ends)",
        &|s| {
            format!(
                "{} of {}",
                group(s.least_open_in_hold),
                group(s.connections as u64)
            )
        },
    );
    row(&mut o, "churn: closes + reconnects over the hold", &|s| {
        format!(
            "{} ({:.1}/s)",
            group(s.closes_in_hold),
            s.closes_in_hold as f64 / s.duration_s.max(1e-9)
        )
    });
    row(&mut o, "handshakes / failed connects", &|s| {
        format!("{} / {}", group(s.opened), s.connect_failures)
    });
    row(&mut o, "closes: clean / unexpected", &|s| {
        format!("{} / {}", group(s.closed_clean), s.unexpected_closes)
    });
    row(&mut o, "messages sent / echoed intact", &|s| {
        format!("{} / {}", group(s.sent), group(s.echoes))
    });
    row(&mut o, "echoes per second over the hold", &|s| {
        group(s.hold_echoes_per_sec.round() as u64)
    });
    row(
        &mut o,
        "CPU per echo over the hold, us: engine / loadgen",
        &|s| {
            let per =
                |pct: Option<f64>| opt(pct.map(|p| p * 1e4 / s.hold_echoes_per_sec.max(1e-9)), 1);
            format!("{} / {}", per(s.engine_cpu_pct), per(s.loadgen_cpu_pct))
        },
    );
    row(&mut o, "**lost echoes**", &|s| format!("**{}**", s.lost));
    row(&mut o, "**corrupted echoes**", &|s| {
        format!("**{}**", s.corrupted)
    });
    for class in ["player", "lobby", "burst"] {
        row(
            &mut o,
            &format!("{class} p50 / p99 / p99.9 / max, us (hold)"),
            &|s| {
                lat(s, class).map_or("-".into(), |l| {
                    format!(
                        "{:.0} / **{:.0}** / {:.0} / {:.0}",
                        l.p50, l.p99, l.p99_9, l.max
                    )
                })
            },
        );
    }
    row(&mut o, "worst 1 s p99, player, us", &|s| {
        opt(s.worst_interval_p99_us.get("player").copied(), 0)
    });
    row(&mut o, "engine RSS over the window, MiB", &|s| {
        s.rss.map_or("-".into(), |g| {
            format!(
                "{} -> {} (peak {})",
                mib(g.start_bytes),
                mib(g.end_bytes),
                mib(g.peak_bytes)
            )
        })
    });
    row(&mut o, "**RSS growth over the window** (peak)", &|s| {
        s.rss.map_or("-".into(), |g| {
            format!(
                "**{:+.2}%** ({:+.2}%)",
                g.growth * 100.0,
                g.peak_growth * 100.0
            )
        })
    });
    row(&mut o, "**engine open fds before -> after**", &|s| {
        format!(
            "**{} -> {}**{}",
            s.fds_before,
            s.fds_after,
            s.settled_after_s.map_or(String::new(), |t| format!(
                " ({t:.1} s after the last close)"
            ))
        )
    });
    row(
        &mut o,
        "engine CPU over the hold (its core busy, any process)",
        &|s| {
            format!(
                "{}% ({}%)",
                opt(s.engine_cpu_pct, 0),
                opt(s.engine_core_busy_pct, 0)
            )
        },
    );
    row(
        &mut o,
        "loadgen CPU over the hold (its core busy, any process)",
        &|s| {
            format!(
                "{}% ({}%)",
                opt(s.loadgen_cpu_pct, 0),
                opt(s.loadgen_core_busy_pct, 0)
            )
        },
    );
    row(&mut o, "iowait / steal over the hold, all CPUs", &|s| {
        format!("{}% / {}%", opt(s.iowait_pct, 1), opt(s.steal_pct, 1))
    });
    row(
        &mut o,
        "most TIME_WAIT sockets: engine side / client side",
        &|s| {
            format!(
                "{} / {}",
                s.time_wait_server_max
                    .map_or("-".into(), |n| group(n as u64)),
                s.time_wait_client_max
                    .map_or("-".into(), |n| group(n as u64))
            )
        },
    );
    row(
        &mut o,
        "machine load average over the hold (mean / max)",
        &|s| format!("{} / {}", opt(s.loadavg_mean, 2), opt(s.loadavg_max, 2)),
    );
    row(&mut o, "engine exit on SIGTERM", &|s| s.engine_exit.clone());
    let _ = writeln!(
        o,
        "\nLatency is the round trip from the tick that wanted the message (corrected for \
         coordinated omission), over the hold; the RSS window is the last {:.0} s of the hold, \
         growth compares the medians of its first and last {:.0} s.\n",
        plan.rss_window.as_secs_f64(),
        (plan.rss_window.as_secs_f64() / 6.0).min(10.0)
    );

    let _ = writeln!(o, "## Checks\n");
    for s in &sums {
        let _ = writeln!(o, "{}:\n", s.backend);
        for c in &s.checks {
            let _ = writeln!(
                o,
                "- [{}] {}: {}",
                if c.pass { "x" } else { " " },
                c.name,
                c.detail
            );
        }
        let _ = writeln!(o);
    }

    let _ = writeln!(o, "## Over time\n");
    for (file, what) in [
        (
            "rss",
            "Engine RSS (the dashed line is the RSS at the start of the window)",
        ),
        (
            "fds",
            "Engine open file descriptors (dashed: before the load)",
        ),
        (
            "connections",
            "WebSockets open: the engine's gauge and loadgen's count",
        ),
        (
            "p99",
            "p99 per second: player (solid), lobby (dashed), burst (dotted)",
        ),
    ] {
        let _ = writeln!(o, "{what}:\n\n![{file}]({}/{file}.svg)\n", ctx.data_dir);
    }

    let _ = writeln!(o, "## The mix, and why\n");
    if let Some(r) = runs.first() {
        let c = &r.report.config;
        for class in &c.classes {
            let size = if class.size_min == class.size_max {
                format!("{} B", group(class.size_min as u64))
            } else {
                format!("{}-{} B", class.size_min, class.size_max)
            };
            let _ = writeln!(
                o,
                "- {}: {} connections, {} x {size} {} every {:.1} ms ({} msg/s offered)",
                class.class,
                group(class.connections as u64),
                class.per_tick,
                class.payload,
                1000.0 / class.rate_hz,
                group(class.offered_per_sec.round() as u64)
            );
        }
        let _ = writeln!(
            o,
            "- churn: {}/s closes and reconnects during the hold; the ramp opens all {} at {}/s\n",
            c.churn_per_sec,
            group(c.connections as u64),
            c.connect_rate
        );
    }
    let _ = writeln!(
        o,
        "A game host does not run every connection at its match tick. All {conns} at 128 Hz \
         would be {all} messages a second: more than ten times what loadgen generates on one \
         core of this 2-core machine even in a closed loop (about 170k msg/s), and an open \
         loop costs more per message, since every tick is its own timer wake-up (the \
         CPU-per-echo row above). The engine has one core too. So the mix is a host's: the \
         players in matches run shooter-128hz traffic (18-64 B of binary input every 7.8 ms), \
         as many as keep both sides clear of saturation (the CPU rows above); the others are \
         connected and mostly idle, as a lobby is, sending a small text message (presence, \
         chat) every {lobby:.0} s and answering the engine's keep-alive pings; a smaller group \
         sends bursts of 16 KiB binary messages back to back (a replay or a map upload), which \
         puts large frames and partial reads next to the tiny ones; and churn closes and \
         replaces {churn} connections a second, with a close handshake that still awaits the \
         closing connection's echoes, so the accept, upgrade, close and teardown paths run all \
         along, not only at the start and the end.\n",
        conns = group(plan.connections as u64),
        all = group((plan.connections as f64 * 128.0) as u64),
        lobby = 1.0 / plan.lobby_rate,
        churn = plan.churn,
    );

    let _ = writeln!(o, "## Ephemeral ports\n");
    let _ = writeln!(
        o,
        "{conns} connections to one address, plus {churn} new ones a second for the whole \
         hold, on loopback: the client side takes one ephemeral port per connection \
         (32768-60999, 28,232 ports). Had the client closed first, every churned connection \
         would keep its port in TIME_WAIT for 60 s ({tw} ports at {churn}/s), and the range \
         would run out. Two measures, each enough alone:\n\n\
         1. loadgen waits for the server to close TCP after the close handshake (RFC 6455 \
         §7.1.1), so TIME_WAIT lands on the engine's side, where it costs no client port: \
         the TIME_WAIT row above shows where it was;\n\
         2. loadgen spreads its connections over 16 source addresses, 127.0.0.1-127.0.0.16 \
         (`--source-addrs`, default `auto` on a 127.x target), bound with \
         `IP_BIND_ADDRESS_NO_PORT`, so each address has a whole port range.\n",
        conns = group(plan.connections as u64),
        churn = plan.churn,
        tw = group((plan.churn * 60.0) as u64),
    );

    let _ = writeln!(o, "## Files\n");
    let _ = writeln!(
        o,
        "- `{d}/<backend>-engine.csv`: the runner's samples of the engine, one a second \
         (RSS, fds, connections gauge, CPU of the engine and of loadgen, TIME_WAIT counts every 5 s)\n\
         - `{d}/<backend>-loadgen.csv`: loadgen's time series, one row a second (connections, \
         churn, echoes, lost, corrupted, p50/p99/max per class)\n\
         - `{d}/summary.json`: the figures and checks above, per backend\n\
         - `{d}/*.svg`: the plots",
        d = ctx.data_dir
    );
    o
}
