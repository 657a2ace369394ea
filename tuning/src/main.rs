//! The `tune` binary: parse the options, check them and the output
//! directory, run the sweep, print the recommendation. See
//! [`tuning::cli::Cli`] for the options and `tune --help` for the exit codes
//! (the contract is [`loadgen::usage`]'s).

use std::process::ExitCode;

use clap::Parser;
use loadgen::usage::{check_output_dir, Failure, FailureKind as _};
use tuning::cli::Cli;
use tuning::interrupt::{Interrupt, INTERRUPTED_EXIT_CODE};
use tuning::progress::format_duration;
use tuning::report::recommendation_text;

fn main() -> ExitCode {
    let command = std::iter::once("tune".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let cli = Cli::parse();
    match real_main(cli, command) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => failure.exit("tune"),
    }
}

fn real_main(cli: Cli, command: String) -> Result<u8, Failure> {
    if cli.list_presets {
        print!("{}", loadgen::presets::describe_all());
        return Ok(0);
    }
    if let Some(csv) = &cli.replot {
        if !csv.is_file() {
            return Err(Failure::Usage(format!(
                "--replot {}: no such file (give the CSV of a finished sweep)",
                csv.display()
            )));
        }
        let connections = cli.workload().or_usage()?.connections;
        for plot in tuning::sweep::replot(csv, connections).or_runtime()? {
            println!("{}", plot.display());
        }
        return Ok(0);
    }
    if let Some(nice) = cli.nice {
        tuning::priority::set_niceness(nice)
            .map_err(|e| Failure::Usage(format!("--nice {nice}: {e}")))?;
    }
    let (show_plan, budget) = (cli.plan, cli.budget);
    let sweep = cli.into_sweep(command)?;
    if show_plan {
        print!("{}", sweep.plan_text());
        return Ok(0);
    }
    let runs = sweep.runs();
    let estimate =
        tuning::plan::estimate_run(sweep.timing, sweep.workload.connections) * runs.len() as u32;
    if let Some(budget) = budget {
        if estimate > budget {
            return Err(Failure::Usage(format!(
                "the sweep would take about {} (> --budget {}): fewer sizes, counts or repeats, \
                 or a shorter --duration",
                format_duration(estimate),
                format_duration(budget)
            )));
        }
    }
    check_output_dir("--out-dir", &sweep.out_dir)?;
    let interrupt = Interrupt::install().or_runtime()?;
    let outcome = sweep.run(&interrupt).or_runtime()?;
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
            "tune: interrupted: {} runs kept ({} failed)",
            outcome.samples.len(),
            outcome.failures.len()
        );
        return Ok(INTERRUPTED_EXIT_CODE as u8);
    }
    if !outcome.failures.is_empty() {
        return Err(Failure::Runtime(format!(
            "{} of {} runs failed; see the report",
            outcome.failures.len(),
            runs.len()
        )));
    }
    Ok(0)
}
