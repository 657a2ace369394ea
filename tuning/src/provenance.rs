//! Where a result came from: the commit, the machine and the command, as
//! every file in `results/` must say.

use std::path::Path;
use std::process::Command;

/// The facts a results file names.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// Short commit hash, `+uncommitted` when tracked files differ from it.
    pub commit: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// `model name` from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// `uname -r`.
    pub kernel: String,
    /// The 1-minute load average when the sweep started (others may be building).
    pub load_average: String,
    /// The command line, as typed.
    pub command: String,
    /// The directory of the ringecho and loadgen binaries measured.
    pub binaries: String,
    /// The niceness the server and loadgen ran at.
    pub niceness: Option<i32>,
}

impl Provenance {
    /// Reads the commit of the repository at `repo` and this machine.
    pub fn describe(repo: &Path, command: String) -> Provenance {
        let git = |args: &[&str]| {
            Command::new("git")
                .arg("-C")
                .arg(repo)
                .args(args)
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|status| !status.is_empty());
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split(':').nth(1))
            .map_or_else(|| "unknown".to_string(), |model| model.trim().to_string());
        Provenance {
            commit: if dirty {
                format!("{commit}+uncommitted")
            } else {
                commit
            },
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load_average: load_average().map_or_else(|| "unknown".into(), |l| l.to_string()),
            command,
            binaries: String::new(),
            niceness: crate::priority::niceness(),
        }
    }
}

/// The machine's 1-minute load average now: above the core count, other
/// work (builds) competed with the measured processes.
pub fn load_average() -> Option<f64> {
    read("/proc/loadavg")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_this_machine_and_commit() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let p = Provenance::describe(repo, "tune --quick".into());
        assert!(p.cores >= 1);
        assert!(!p.kernel.is_empty());
        assert_ne!(p.commit, "unknown", "the crate lives in a git checkout");
        assert_eq!(p.command, "tune --quick");
    }
}
