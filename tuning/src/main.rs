//! The `tune` binary: parse the options, run the sweep, print the
//! recommendation. See [`tuning::cli::Cli`] for the options.

use clap::Parser;
use tuning::cli::Cli;
use tuning::interrupt::{Interrupt, INTERRUPTED_EXIT_CODE};
use tuning::progress::format_duration;
use tuning::report::recommendation_text;

fn main() -> anyhow::Result<()> {
    let command = std::iter::once("tune".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let cli = Cli::parse();
    if cli.list_presets {
        print!("{}", loadgen::presets::describe_all());
        return Ok(());
    }
    if let Some(csv) = &cli.replot {
        for plot in tuning::sweep::replot(csv, cli.workload()?.connections)? {
            println!("{}", plot.display());
        }
        return Ok(());
    }
    if let Some(nice) = cli.nice {
        tuning::priority::set_niceness(nice).map_err(|e| anyhow::anyhow!("--nice {nice}: {e}"))?;
    }
    if let Some(priority) = cli.realtime {
        tuning::priority::set_realtime(priority)
            .map_err(|e| anyhow::anyhow!("--realtime {priority}: {e}"))?;
    }
    let (show_plan, budget) = (cli.plan, cli.budget);
    let sweep = cli.into_sweep(command)?;
    let runs = sweep.runs();
    let estimate =
        tuning::plan::estimate_run(sweep.timing, sweep.workload.connections) * runs.len() as u32;
    if show_plan {
        for run in &runs {
            println!("repeat {}: {}", run.repeat + 1, run.setting.label());
        }
        println!("{} runs, about {}", runs.len(), format_duration(estimate));
        return Ok(());
    }
    if let Some(budget) = budget {
        anyhow::ensure!(
            estimate <= budget,
            "the sweep would take about {} (> --budget {}): fewer sizes, counts or repeats, \
             or a shorter --duration",
            format_duration(estimate),
            format_duration(budget)
        );
    }
    let interrupt = Interrupt::install()?;
    let outcome = sweep.run(&interrupt)?;
    println!(
        "\n{}",
        recommendation_text(&outcome.recommendation, &sweep.workload)
    );
    println!("Files:");
    for file in &outcome.files {
        println!("  {}", file.display());
    }
    if outcome.interrupted {
        eprintln!(
            "interrupted: {} runs kept ({} failed)",
            outcome.samples.len(),
            outcome.failures.len()
        );
        std::process::exit(INTERRUPTED_EXIT_CODE);
    }
    anyhow::ensure!(
        outcome.failures.is_empty(),
        "{} of {} runs failed; see the report",
        outcome.failures.len(),
        runs.len()
    );
    Ok(())
}
