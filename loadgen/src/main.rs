//! `loadgen`: parse the options, run, print the report, exit with its code.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use loadgen::cli::{Cli, Command};

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main() -> anyhow::Result<u8> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Merge(m)) => {
            merge(&m)?;
            return Ok(0);
        }
        Some(Command::Soak(args)) => {
            let cfg = (*args).into_config().context("bad options")?;
            log_open_files_limit();
            let report = loadgen::soak::run(cfg)?;
            print_out(&report.to_string())?;
            return Ok(report.exit.code as u8);
        }
        None => {}
    }
    if cli.run.list_presets {
        print_out(loadgen::presets::describe_all().trim_end())?;
        return Ok(0);
    }
    let cfg = cli.run.into_config().context("bad options")?;
    log_open_files_limit();
    let report = loadgen::run::run(cfg)?;
    print_out(&report.to_string())?;
    if report.exit.code != 0 {
        eprintln!("loadgen: {}", report.exit.message);
    }
    Ok(report.exit.code as u8)
}

/// `loadgen merge`: interval logs, or JSON reports, into one report.
fn merge(m: &loadgen::cli::MergeArgs) -> anyhow::Result<()> {
    let mut kinds = m
        .files
        .iter()
        .map(|p| loadgen::report_merge::is_json_report(p))
        .collect::<Result<Vec<bool>, _>>()?;
    kinds.dedup();
    match kinds.as_slice() {
        [true] => {
            let report = loadgen::report_merge::merge_reports(&m.files)?;
            print_out(&report.to_string())?;
            if let Some(path) = &m.json {
                loadgen::run::write_json(path, &report)?;
            }
        }
        [false] => {
            let report = loadgen::hlog::merge(&m.files)?;
            print_out(&report.to_string())?;
            if let Some(path) = &m.json {
                loadgen::run::write_json(path, &report)?;
            }
        }
        _ => anyhow::bail!("give either interval logs (.hlog) or JSON reports to merge, not both"),
    }
    Ok(())
}

/// Raises the soft open-files limit to the hard limit (every connection
/// is a descriptor) and says on stderr what it is.
fn log_open_files_limit() {
    match loadgen::nofile::raise_to_hard_limit() {
        Ok(limit) => eprintln!("loadgen: {limit}"),
        Err(e) => eprintln!("loadgen: warning: cannot raise the open files limit: {e}"),
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
