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
    if let Some(Command::Merge(m)) = cli.command {
        let report = loadgen::hlog::merge(&m.files)?;
        println!("{report}");
        if let Some(path) = &m.json {
            loadgen::run::write_json(path, &report)?;
        }
        return Ok(0);
    }
    if cli.run.list_presets {
        print!("{}", loadgen::presets::describe_all());
        return Ok(0);
    }
    let cfg = cli.run.into_config().context("bad options")?;
    let report = loadgen::run::run(cfg)?;
    println!("{report}");
    if report.exit.code != 0 {
        eprintln!("loadgen: {}", report.exit.message);
    }
    Ok(report.exit.code as u8)
}
