//! `loadgen`: parse the options, check them and the output paths, run,
//! print the report, exit with its code (see `loadgen --help` and
//! [`loadgen::usage`] for the contract).

use std::path::Path;
use std::process::ExitCode;

use clap::Parser as _;
use loadgen::cli::{Cli, Command};
use loadgen::usage::{check_output_file, Failure, FailureKind as _};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => failure.exit("loadgen"),
    }
}

fn real_main(cli: Cli) -> Result<u8, Failure> {
    match cli.command {
        Some(Command::Merge(m)) => {
            if let Some(path) = &m.json {
                check_output_file("--json", path)?;
            }
            merge(&m)?;
            return Ok(0);
        }
        Some(Command::Soak(args)) => {
            let cfg = (*args).into_config().or_usage()?;
            check_outputs(&[
                ("--json", cfg.json.as_deref()),
                ("--csv", cfg.csv.as_deref()),
            ])?;
            prepare(cfg.quiet);
            let report = loadgen::soak::run(cfg).or_runtime()?;
            print_out(&report.to_string()).or_runtime()?;
            return Ok(report.exit.code as u8);
        }
        None => {}
    }
    if cli.run.list_presets {
        print_out(loadgen::presets::describe_all().trim_end()).or_runtime()?;
        return Ok(0);
    }
    let cfg = cli.run.into_config().or_usage()?;
    check_outputs(&[
        ("--json", cfg.json.as_deref()),
        ("--hlog", cfg.hlog.as_deref()),
    ])?;
    prepare(cfg.quiet);
    let report = loadgen::run::run(cfg).or_runtime()?;
    print_out(&report.to_string()).or_runtime()?;
    if report.exit.code != 0 {
        eprintln!("loadgen: {}", report.exit.message);
    }
    Ok(report.exit.code as u8)
}

/// Every output path can be written, before any load starts.
fn check_outputs(paths: &[(&str, Option<&Path>)]) -> Result<(), Failure> {
    for (option, path) in paths {
        if let Some(path) = path {
            check_output_file(option, path)?;
        }
    }
    Ok(())
}

/// `loadgen merge`: interval logs, or JSON reports, into one report.
fn merge(m: &loadgen::cli::MergeArgs) -> Result<(), Failure> {
    let mut kinds = m
        .files
        .iter()
        .map(|p| loadgen::report_merge::is_json_report(p))
        .collect::<Result<Vec<bool>, _>>()
        .or_usage()?;
    kinds.dedup();
    match kinds.as_slice() {
        [true] => {
            let report = loadgen::report_merge::merge_reports(&m.files).or_usage()?;
            print_out(&report.to_string()).or_runtime()?;
            if let Some(path) = &m.json {
                loadgen::run::write_json(path, &report).or_runtime()?;
            }
        }
        [false] => {
            let report = loadgen::hlog::merge(&m.files).or_usage()?;
            print_out(&report.to_string()).or_runtime()?;
            if let Some(path) = &m.json {
                loadgen::run::write_json(path, &report).or_runtime()?;
            }
        }
        _ => {
            return Err(Failure::Usage(
                "give either interval logs (.hlog) or JSON reports to merge, not both".into(),
            ))
        }
    }
    Ok(())
}

/// What every load does before it starts: raise the soft open-files limit
/// to the hard one (every connection is a descriptor) and say so unless
/// `quiet`; warn about a real-time policy (always: it changes the figures).
fn prepare(quiet: bool) {
    match loadgen::nofile::raise_to_hard_limit() {
        Ok(limit) if !quiet => eprintln!("loadgen: {limit}"),
        Ok(_) => {}
        Err(e) => eprintln!("loadgen: warning: cannot raise the open files limit: {e}"),
    }
    if let Some(warning) = loadgen::clock::realtime_warning() {
        eprintln!("loadgen: warning: {warning}");
    }
}

/// Prints `text` and a newline on stdout. A closed pipe (`loadgen ... | head`)
/// is not an error: the reader has seen what it wanted.
fn print_out(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
