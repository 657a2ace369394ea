//! Scheduling priority of the measured processes. On a shared machine,
//! builds running next to a measurement preempt the server and loadgen for
//! whole scheduler slices, which shows up as milliseconds of p99 that have
//! nothing to do with what is measured. `tune --nice -10` and
//! `soak --nice -10` lower their own niceness before anything is started;
//! the server and loadgen inherit it, so they win the CPU from nice-0
//! neighbours. `--realtime N` goes further: SCHED_FIFO, so a runnable
//! server or loadgen always preempts the builds on its CPU.

use std::io;

/// The lowest and highest niceness Linux accepts.
pub const NICE_RANGE: std::ops::RangeInclusive<i32> = -20..=19;

/// Sets this process's niceness (inherited by every child started later).
/// Negative values need root or `CAP_SYS_NICE`.
pub fn set_niceness(nice: i32) -> io::Result<()> {
    if !NICE_RANGE.contains(&nice) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("niceness {nice} is outside -20..=19"),
        ));
    }
    // SAFETY: setpriority(2) takes three integers and touches no memory of
    // ours; PRIO_PROCESS with who = 0 names this process.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The real-time priorities SCHED_FIFO accepts.
pub const REALTIME_RANGE: std::ops::RangeInclusive<i32> = 1..=99;

/// Puts this process under SCHED_FIFO at `priority` (inherited by every
/// child started later). Needs root or `CAP_SYS_NICE`.
pub fn set_realtime(priority: i32) -> io::Result<()> {
    if !REALTIME_RANGE.contains(&priority) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("real-time priority {priority} is outside 1..=99"),
        ));
    }
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a live, initialised sched_param that the call only
    // reads; pid 0 names this process.
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Puts this process back under the normal scheduler (SCHED_OTHER), for a
/// runner that started its children real-time but must not compete with
/// them itself. Children started earlier keep their policy.
pub fn set_normal_scheduler() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a live, initialised sched_param that the call only
    // reads; pid 0 names this process.
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// This process's real-time priority, if it runs under SCHED_FIFO or
/// SCHED_RR (`None` under the normal scheduler or when unreadable).
pub fn realtime_priority() -> Option<i32> {
    // SAFETY: sched_getscheduler(2) takes a pid and touches no memory.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy != libc::SCHED_FIFO && policy != libc::SCHED_RR {
        return None;
    }
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a live sched_param the call writes into.
    let result = unsafe { libc::sched_getparam(0, &mut param) };
    (result == 0).then_some(param.sched_priority)
}

/// This process's niceness now (from `/proc/self/stat`, field 19).
pub fn niceness() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(16)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_refuses() {
        let now = niceness().expect("readable");
        assert!(NICE_RANGE.contains(&now));
        // Setting the current value again is always allowed.
        set_niceness(now).unwrap();
        assert_eq!(niceness(), Some(now));
        assert!(set_niceness(40).is_err());
        assert!(set_realtime(0).is_err());
        assert!(set_realtime(100).is_err());
        // The test runs under the normal scheduler.
        assert_eq!(realtime_priority(), None);
    }
}
