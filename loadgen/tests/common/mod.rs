//! What the loadgen integration tests share: every test runs once on each
//! I/O driver, through [`on_both_drivers!`].

#![allow(dead_code)] // each test binary uses its own part of this

use std::process::Command;

use serde_json::Value;

/// An I/O driver of loadgen (`--io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// The io_uring driver.
    Uring,
    /// The epoll driver.
    Epoll,
}

impl Io {
    /// The name `--io` and the report use.
    pub fn name(self) -> &'static str {
        match self {
            Io::Uring => "uring",
            Io::Epoll => "epoll",
        }
    }
}

impl std::fmt::Display for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The real `loadgen` binary, set to run on `io` (`LOADGEN_IO`, which
/// `loadgen` and `loadgen soak` take as the default of `--io`).
pub fn loadgen_command(io: Io) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    cmd.env("LOADGEN_IO", io.name());
    cmd
}

/// Asserts that a run's JSON report says it ran on `io`.
pub fn assert_ran_on(report: &Value, io: Io) {
    assert_eq!(
        report["client"]["io"],
        io.name(),
        "the report names the driver that ran: {:#}",
        report["client"]
    );
}

/// For each `fn name(io: Io)`, a module `name` with one test per driver:
/// `name::uring` and `name::epoll`.
#[macro_export]
macro_rules! on_both_drivers {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn uring() {
                    super::$name($crate::common::Io::Uring)
                }
                #[test]
                fn epoll() {
                    super::$name($crate::common::Io::Epoll)
                }
            }
        )*
    };
}
