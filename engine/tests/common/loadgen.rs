//! The `loadgen` binary, for tests that drive the engine with it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::server::BINARY;

/// The `loadgen` binary of the same profile as the engine under test,
/// built if needed (a no-op when it is up to date).
pub fn binary() -> PathBuf {
    let dir = Path::new(BINARY)
        .parent()
        .expect("binaries live in a directory");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the engine crate sits in the workspace");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", "loadgen", "--bin", "loadgen"]);
    if dir.file_name().is_some_and(|name| name == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build -p loadgen");
    assert!(status.success(), "cargo build -p loadgen failed");
    let loadgen = dir.join("loadgen");
    assert!(loadgen.is_file(), "{} was not built", loadgen.display());
    loadgen
}
