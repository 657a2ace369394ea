//! The `ringecho` binary: parse options, set up logging, run the engine.
//! Exit codes (also in `--help`): 0 after a clean stop, 1 a runtime error,
//! 2 a usage error; an error is one line on stderr, never a backtrace.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Exit code of a usage error, as clap's own.
const USAGE_ERROR: u8 = 2;
/// Exit code of a runtime error.
const RUNTIME_ERROR: u8 = 1;

fn main() -> ExitCode {
    let options = ringecho::Options::parse();
    // RUST_LOG decides when set; otherwise info, or warn with -q.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(if options.quiet { "warn" } else { "info" }));
    // Colour codes only for a person at a terminal (a log file gets none).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
    let config = match options.into_config() {
        Ok(config) => config,
        Err(e) => return fail(USAGE_ERROR, &e),
    };
    match ringecho::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(RUNTIME_ERROR, &e),
    }
}

/// Prints `ringecho: error: WHAT` on stderr and returns `code`.
fn fail(code: u8, error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("ringecho: error: {error}");
    ExitCode::from(code)
}
