//! Holding a server to a share of its core, so that closed-loop msg/s ranks
//! servers by capacity rather than by how fast the client is.
//!
//! In a closed loop every server that is faster than the client shows the
//! client's ceiling: the figures rank noise. A CPU quota on the server
//! (a cgroup v1 CPU group with `cpu.cfs_quota_us` = share x 100 per
//! `cpu.cfs_period_us` 10000, so 4000 for 40%) leaves the client a whole
//! core while the server gets a fixed slice of its own, so the client is
//! never the bottleneck and msg/s tells what each server does with the same
//! CPU. The client's CPU is still reported beside every row
//! ([`crate::harness::Measurement::client_cpu`]): a row whose client was
//! above [`CLIENT_BOUND_PERCENT`] of its core measures the client.

use std::io;
use std::path::{Path, PathBuf};

/// The cgroup v1 CPU controller's mount point.
pub const CPU_CGROUP_ROOT: &str = "/sys/fs/cgroup/cpu";
/// `cpu.cfs_period_us` of a held group: 10 ms.
pub const PERIOD_US: u32 = 10_000;
/// Above this share of its core the client measures itself: its row is
/// client-bound and ranks nothing.
pub const CLIENT_BOUND_PERCENT: f64 = 90.0;

/// A CPU group that holds the processes put in it to `share` percent of
/// one core. Removed when dropped (once its processes have exited).
#[derive(Debug)]
pub struct HeldCore {
    path: PathBuf,
    share: u32,
}

impl HeldCore {
    /// Creates the group `ringecho-bench-PID` under [`CPU_CGROUP_ROOT`]
    /// holding to `share` percent (1..=100) of a core. Needs root and
    /// cgroup v1's cpu controller.
    pub fn create(share: u32) -> io::Result<HeldCore> {
        Self::create_under(Path::new(CPU_CGROUP_ROOT), share)
    }

    /// [`HeldCore::create`] under another mount point of the controller.
    pub fn create_under(root: &Path, share: u32) -> io::Result<HeldCore> {
        if !(1..=100).contains(&share) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a held share is 1-100 percent of a core, not {share}"),
            ));
        }
        if !root.join("cpu.cfs_quota_us").is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no cgroup v1 cpu controller at {}", root.display()),
            ));
        }
        let path = root.join(format!("ringecho-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        let held = HeldCore { path, share };
        std::fs::write(held.path.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
        std::fs::write(
            held.path.join("cpu.cfs_quota_us"),
            held.quota_us().to_string(),
        )?;
        Ok(held)
    }

    /// The share of one core, in percent.
    pub fn share(&self) -> u32 {
        self.share
    }

    /// `cpu.cfs_quota_us` per [`PERIOD_US`].
    pub fn quota_us(&self) -> u32 {
        PERIOD_US * self.share / 100
    }

    /// Moves process `pid`, every thread of it, into the group, and puts
    /// those threads under SCHED_OTHER: the quota binds only the fair
    /// scheduler's tasks, and a measurement run under `--realtime` would
    /// otherwise hand its SCHED_FIFO to the server. Threads the server
    /// starts later inherit both.
    pub fn hold(&self, pid: u32) -> io::Result<()> {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string())?;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let Some(tid) = task?
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<libc::pid_t>().ok())
            else {
                continue;
            };
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: sched_setscheduler(2) reads `param`, a live local, and
            // touches no other memory; `tid` is a thread of a child we spawned.
            unsafe { libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param) };
        }
        Ok(())
    }
}

impl Drop for HeldCore {
    fn drop(&mut self) {
        // The group's processes have exited; an rmdir that fails leaves an
        // empty group behind, which holds nothing.
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Whether a client that used `percent` of its core was the bottleneck.
pub fn is_client_bound(percent: f64) -> bool {
    percent > CLIENT_BOUND_PERCENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_share_outside_one_to_a_hundred() {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("cpu.cfs_quota_us"), "-1").expect("fake controller");
        for share in [0, 101] {
            let error = HeldCore::create_under(dir.path(), share).expect_err("refused");
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn writes_the_quota_for_the_share() {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("cpu.cfs_quota_us"), "-1").expect("fake controller");
        let held = HeldCore::create_under(dir.path(), 40).expect("group");
        assert_eq!(held.quota_us(), 4000);
        let read = |file: &str| std::fs::read_to_string(held.path.join(file)).expect(file);
        assert_eq!(read("cpu.cfs_quota_us"), "4000");
        assert_eq!(read("cpu.cfs_period_us"), "10000");
        // A plain directory is no cgroup: drop's rmdir fails on the files
        // written into it, which is harmless here.
    }

    #[test]
    fn says_where_the_controller_is_missing() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let error = HeldCore::create_under(dir.path(), 40).expect_err("no controller");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(error.to_string().contains("cgroup v1"), "{error}");
    }

    #[test]
    fn a_client_above_ninety_percent_is_the_bottleneck() {
        assert!(!is_client_bound(90.0));
        assert!(is_client_bound(90.5));
    }
}
