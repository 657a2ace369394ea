//! The project's C floor server (`bench/floor/floor.c`): the least work a
//! WebSocket echo can take, on io_uring and on epoll, that ringecho's figures
//! in `results/` are stated against. This module finds its source and builds
//! it with its Makefile, as `scripts/measure-engine.py` does.

use std::path::{Path, PathBuf};
use std::process::Command;

use ringecho::IoBackend;

use crate::harness::{target_dir, workspace_root, HarnessError, Result, ServerSpec};

/// The two builds of the floor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorBinaries {
    /// 4096 receive buffers of 4 KiB (the default build).
    pub default: PathBuf,
    /// 2048 receive buffers of 32 KiB, which hold a whole 16 KiB frame.
    pub big: PathBuf,
}

/// The directory holding `floor.c` and its Makefile.
pub fn source_dir() -> PathBuf {
    workspace_root().join("bench").join("floor")
}

/// Builds both floors into `<target>/floor/` with `make` (a no-op when they
/// are newer than the source). Needs gcc and the liburing headers
/// (Debian: `liburing-dev`, which the test command installs).
pub fn build() -> Result<FloorBinaries> {
    let out = target_dir().join("floor");
    let made = Command::new("make")
        .arg("--no-print-directory")
        .arg("-s")
        .arg("-C")
        .arg(source_dir())
        .arg(format!("OUT={}", out.display()))
        .output()
        .map_err(|source| HarnessError::Io {
            what: "running make for the C floor".into(),
            source,
        })?;
    if !made.status.success() {
        return Err(HarnessError::Build(format!(
            "make -C bench/floor: {}",
            String::from_utf8_lossy(&made.stderr)
        )));
    }
    Ok(FloorBinaries {
        default: out.join("floor"),
        big: out.join("floor-32k"),
    })
}

/// The floor `binary` serving on `backend` (its first argument is the
/// engine's backend name), on a free port of 127.0.0.1, pinned to `cpu`.
pub fn spec(binary: &Path, backend: IoBackend, cpu: usize) -> ServerSpec {
    ServerSpec {
        binary: binary.to_path_buf(),
        args: vec![backend.name().to_string(), "0".to_string()],
        cpu,
        path: "/ws".into(),
    }
}
