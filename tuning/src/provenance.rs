//! Where a result came from: the commit and the machine (the shared
//! [`bench::machine::Machine`]) plus what only a sweep knows: the command,
//! the binaries measured and the niceness they ran at.

use bench::machine::Machine;

/// The facts a results file names.
#[derive(Debug, Clone, PartialEq)]
pub struct Provenance {
    /// Commit, cores, CPU model, kernel and load average at the start.
    pub machine: Machine,
    /// The command line, as typed.
    pub command: String,
    /// The directory of the ringecho and loadgen binaries measured.
    pub binaries: String,
    /// The niceness the server and loadgen ran at.
    pub niceness: Option<i32>,
    /// Their SCHED_FIFO/SCHED_RR priority, if they ran real-time.
    pub realtime: Option<i32>,
}

impl Provenance {
    /// Describes this machine and the workspace's commit for `command`.
    pub fn describe(command: String) -> Provenance {
        Provenance {
            machine: Machine::describe(),
            command,
            binaries: String::new(),
            niceness: crate::priority::niceness(),
            realtime: crate::priority::realtime_priority(),
        }
    }
}

/// The machine's 1-minute load average now: above the core count, other
/// work (builds) competed with the measured processes.
pub fn load_average() -> Option<f64> {
    bench::machine::loadavg().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_this_machine_and_commit() {
        let p = Provenance::describe("tune --quick".into());
        assert!(p.machine.cores >= 1);
        assert!(!p.machine.kernel.is_empty());
        assert_ne!(
            p.machine.commit, "unknown",
            "the crate lives in a git checkout"
        );
        assert_eq!(p.command, "tune --quick");
    }
}
