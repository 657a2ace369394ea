//! The command-line contract that `loadgen`, `tune` and the bench binaries
//! share, so a script can rely on it:
//!
//! * every usage error exits [`USAGE_ERROR`] (2), the code the argument
//!   parser itself uses, including errors found after parsing (a bad URL, a
//!   contradiction, an unknown preset, an output path that cannot be
//!   written); a failure while running exits [`RUNTIME_ERROR`] (1); each
//!   tool documents its other codes in `--help`;
//! * an error is one line on stderr, `TOOL: error: WHAT`, with the causes
//!   joined and never repeated, and never a backtrace (even with
//!   `RUST_BACKTRACE=1`: that is for panics, not for a user's typo);
//! * output paths are checked before any load starts, so a run is never
//!   lost to a path that cannot be written at its end.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;

/// Exit code of a usage error: the same as clap's own.
pub const USAGE_ERROR: u8 = 2;
/// Exit code of a failure while running.
pub const RUNTIME_ERROR: u8 = 1;

/// Why a tool stops before it could finish.
#[derive(Debug)]
pub enum Failure {
    /// The command line cannot be run as given (exit 2).
    Usage(String),
    /// Something failed while running (exit 1).
    Runtime(String),
}

impl Failure {
    /// A usage error from anything printable (an error chain is joined on one line).
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure::Usage(one_line(&error.into()))
    }

    /// A runtime error from anything printable (an error chain is joined on one line).
    pub fn runtime(error: impl Into<anyhow::Error>) -> Failure {
        Failure::Runtime(one_line(&error.into()))
    }

    /// The exit code of this failure.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => USAGE_ERROR,
            Failure::Runtime(_) => RUNTIME_ERROR,
        }
    }

    /// Prints `TOOL: error: WHAT` on stderr and returns the exit code.
    pub fn exit(self, tool: &str) -> ExitCode {
        eprintln!("{tool}: error: {self}");
        ExitCode::from(self.code())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message) | Failure::Runtime(message) => f.write_str(message),
        }
    }
}

/// Turns `Result<T, E>` into `Result<T, Failure>` of one kind.
pub trait FailureKind<T> {
    /// The error is a usage error (exit 2).
    fn or_usage(self) -> Result<T, Failure>;
    /// The error is a runtime error (exit 1).
    fn or_runtime(self) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> FailureKind<T> for Result<T, E> {
    fn or_usage(self) -> Result<T, Failure> {
        self.map_err(Failure::usage)
    }

    fn or_runtime(self) -> Result<T, Failure> {
        self.map_err(Failure::runtime)
    }
}

/// An error and its causes on one line, `outer: cause: root`, leaving out a
/// cause whose text the message before it already ends with (a typed error
/// that prints its source, wrapped again, would otherwise say it twice).
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Checks, before any load, that `path` can be written: it is created
/// (and removed again if it did not exist) or opened for writing without
/// being truncated. `option` names the flag in the message.
pub fn check_output_file(option: &str, path: &Path) -> Result<(), Failure> {
    let existed = path.exists();
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Ok(_) => {
            if !existed {
                let _ = std::fs::remove_file(path);
            }
            Ok(())
        }
        Err(e) => Err(Failure::Usage(format!(
            "{option} {}: cannot write there: {e}",
            path.display()
        ))),
    }
}

/// Checks, before any load, that `dir` is (or can be made) a directory that
/// files can be written into; it is created if it is missing.
pub fn check_output_dir(option: &str, dir: &Path) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        Failure::Usage(format!(
            "{option} {}: cannot write there: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    tempfile_probe(dir).map_err(fail)
}

fn tempfile_probe(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_join_on_one_line_without_repeats() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        #[derive(Debug, thiserror::Error)]
        #[error("x.json: {source}")]
        struct Typed {
            source: std::io::Error,
        }
        let e = anyhow::Error::new(Typed { source: io }).context("writing the report");
        assert_eq!(one_line(&e), "writing the report: x.json: No such file");
    }

    #[test]
    fn output_paths_are_checked_without_leaving_files() {
        let dir = std::env::temp_dir().join(format!("usage-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("report.json");
        check_output_file("--json", &file).unwrap();
        assert!(!file.exists(), "the probe leaves nothing behind");
        std::fs::write(&file, b"kept").unwrap();
        check_output_file("--json", &file).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"kept", "not truncated");
        let missing = dir.join("no/such/dir/report.json");
        let err = check_output_file("--json", &missing).unwrap_err();
        assert_eq!(err.code(), USAGE_ERROR);
        assert!(err.to_string().starts_with("--json "), "{err}");
        assert!(check_output_file("--json", &dir).is_err(), "a directory");
        check_output_dir("--out-dir", &dir.join("made/here")).unwrap();
        assert!(dir.join("made/here").is_dir());
        assert!(check_output_dir("--out-dir", &file).is_err(), "a file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
