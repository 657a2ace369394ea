//! What `/proc` says about the server process: its open file descriptors,
//! its CPU time and its resident memory, for the tests that check nothing
//! leaked, nothing spun and memory stayed bounded.

use std::time::Duration;

/// How many file descriptors process `pid` has open (entries of
/// `/proc/PID/fd`).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|error| panic!("listing /proc/{pid}/fd: {error}"))
        .count()
}

/// The CPU time process `pid` has used so far, user and system, all
/// threads (`utime` + `stime` of `/proc/PID/stat`).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|error| panic!("reading /proc/{pid}/stat: {error}"));
    // The command name (field 2) may hold spaces; the fields after its
    // closing parenthesis start with field 3 (state).
    let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks = |index: usize| -> u64 {
        fields[index]
            .parse()
            .unwrap_or_else(|_| panic!("bad /proc/{pid}/stat field {}: {stat}", index + 3))
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
    let total = ticks(11) + ticks(12);
    Duration::from_nanos(total * 1_000_000_000 / clock_ticks_per_second())
}

/// The server's resident set size in bytes (`VmRSS` in /proc/PID/status).
pub fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("reading /proc/{pid}/status: {error}"));
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"));
    kib * 1024
}

/// The unit of the CPU times in `/proc/PID/stat` (`USER_HZ`).
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf(3) reads a configuration value; it has no
    // preconditions and touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks)
        .ok()
        .filter(|&t| t > 0)
        .expect("sysconf(_SC_CLK_TCK) is positive")
}
