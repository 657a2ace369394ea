//! Monotonic time in nanoseconds and a precise one-shot timer.
//!
//! Why not `std::time::Instant` and the poll timeout? Two reasons:
//!
//! * Latency in open mode counts from the *intended* send time, so a timer
//!   that fires late adds its lateness to every corrected sample. `epoll_wait`
//!   takes its timeout in whole milliseconds (mio rounds up), which at a
//!   128 Hz tick (7.8 ms) would add up to 1 ms of fake latency. A `timerfd`
//!   armed with an absolute `CLOCK_MONOTONIC` deadline wakes the poll with
//!   microsecond precision.
//! * The timer deadline and the timestamps must come from the same clock, so
//!   both use raw `CLOCK_MONOTONIC` nanoseconds (`clock_gettime` through the
//!   vDSO, about 20 ns here with the `tsc` clocksource).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Nanoseconds per second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Current `CLOCK_MONOTONIC` time in nanoseconds.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * NANOS_PER_SEC + ts.tv_nsec as u64
}

/// Sets this thread's timer slack to 1 ns (default 50 us), so sleeps and
/// timer wakeups are not deferred to be coalesced with others. The open
/// loop's corrected latency counts every microsecond a tick fires late.
pub fn minimize_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// A warning when this process runs under a real-time policy (SCHED_FIFO or
/// SCHED_RR) while the kernel throttles real-time processes
/// (`/proc/sys/kernel/sched_rt_runtime_us` below the period): a load that
/// needs more of its core than the budget is stopped for the rest of each
/// period, often 50 ms of every second, and the open loop's corrected
/// latency rightly counts every tick that falls into the gap.
pub fn realtime_warning() -> Option<String> {
    // SAFETY: sched_getscheduler(0) only reads this thread's policy.
    let policy = unsafe { libc::sched_getscheduler(0) };
    let name = match policy {
        libc::SCHED_FIFO => "SCHED_FIFO",
        libc::SCHED_RR => "SCHED_RR",
        _ => return None,
    };
    let read = |name: &str| -> Option<i64> {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let (runtime, period) = (read("sched_rt_runtime_us")?, read("sched_rt_period_us")?);
    (runtime >= 0 && runtime < period).then(|| {
        format!(
            "running under {name} with real-time throttling on ({} of every {} ms): if loadgen              needs more than that of its core, the kernel stops it for the rest of each period              and the corrected latency counts every tick in the gap; run it under the normal              policy",
            runtime / 1000,
            period / 1000
        )
    })
}

/// A one-shot `timerfd` on `CLOCK_MONOTONIC`, armed with absolute deadlines.
///
/// Register it with the poller (it becomes readable when the deadline
/// passes) and call [`Timer::clear`] when it fires.
#[derive(Debug)]
pub struct Timer {
    fd: OwnedFd,
    armed_at: u64,
}

impl Timer {
    /// Creates a disarmed, non-blocking timer.
    pub fn new() -> io::Result<Timer> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd, armed_at: 0 })
    }

    /// Arms the timer for the absolute monotonic time `deadline_ns`.
    ///
    /// Re-arming for the deadline already set is free (no syscall), which
    /// matters in closed mode where the deadline only moves once a second.
    pub fn arm(&mut self, deadline_ns: u64) -> io::Result<()> {
        if deadline_ns == self.armed_at {
            return Ok(());
        }
        // A zero it_value would disarm the timer; 1 ns is "already expired".
        let deadline_ns = deadline_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (deadline_ns / NANOS_PER_SEC) as libc::time_t,
                tv_nsec: (deadline_ns % NANOS_PER_SEC) as libc::c_long,
            },
        };
        // SAFETY: valid fd and a valid itimerspec; the old value is not requested.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed_at = deadline_ns;
        Ok(())
    }

    /// Consumes the expiration so the next one produces a new edge.
    pub fn clear(&mut self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a valid 8-byte buffer. EAGAIN is fine.
        unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        self.armed_at = 0;
    }
}

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }

    #[test]
    fn timer_fires_after_deadline() {
        let mut t = Timer::new().unwrap();
        let deadline = now_ns() + 2_000_000;
        t.arm(deadline).unwrap();
        let mut pfd = libc::pollfd {
            fd: t.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 1000) };
        assert_eq!(n, 1);
        assert!(now_ns() >= deadline);
        t.clear();
    }
}
