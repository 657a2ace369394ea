//! loadgen's own ceiling: the CPU it spent per message and how busy its
//! busiest thread was, so that every report says whether it measured the
//! server or loadgen itself.
//!
//! A client that saturates its core before the server does ranks nothing
//! but itself. Each worker reads its thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) and the process's (`CLOCK_PROCESS_CPUTIME_ID`,
//! every thread, the kernel's io_uring workers included) at each interval
//! end; the coordinator adds up the measured intervals. Above
//! [`SATURATED`] of a core the report carries a warning line, which the
//! benchmark scripts and `bench`'s `compare` and `soak` and `tune` carry
//! into their own outputs.

use serde::{Deserialize, Serialize};

use crate::io::IoKind;

/// Above this share of a core, loadgen's busiest thread was the limit.
pub const SATURATED: f64 = 0.90;

fn cpu_clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the CPU-time clocks of
    // the calling thread and process always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time (user and system) of one worker thread and of the whole
/// process over one interval, in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuUse {
    /// The worker's own thread.
    pub thread_ns: u64,
    /// Every thread of the process.
    pub process_ns: u64,
}

/// Reads a thread's CPU use lap by lap; lives on that thread.
#[derive(Debug)]
pub struct CpuMeter {
    last: CpuUse,
}

impl CpuMeter {
    /// Starts measuring the calling thread now.
    pub fn start() -> CpuMeter {
        CpuMeter { last: Self::read() }
    }

    fn read() -> CpuUse {
        CpuUse {
            thread_ns: cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID),
            process_ns: cpu_clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID),
        }
    }

    /// The CPU used since the last lap (or the start).
    pub fn lap(&mut self) -> CpuUse {
        let now = Self::read();
        let used = CpuUse {
            thread_ns: now.thread_ns.saturating_sub(self.last.thread_ns),
            process_ns: now.process_ns.saturating_sub(self.last.process_ns),
        };
        self.last = now;
        used
    }
}

/// The workers' CPU over the measured intervals.
#[derive(Debug, Clone, Default)]
pub struct CpuTally {
    threads_ns: Vec<u64>,
    process_ns: u64,
}

impl CpuTally {
    /// Adds worker `worker`'s use over one measured interval. Every worker
    /// reads the process's time; worker 0's readings count it once.
    pub fn add(&mut self, worker: usize, cpu: CpuUse) {
        if self.threads_ns.len() <= worker {
            self.threads_ns.resize(worker + 1, 0);
        }
        self.threads_ns[worker] += cpu.thread_ns;
        if worker == 0 {
            self.process_ns += cpu.process_ns;
        }
    }

    /// The ceiling of a run on `io` that received `messages` echoes in a
    /// measured window of `window_s` seconds.
    pub fn ceiling(&self, io: IoKind, messages: u64, window_s: f64) -> Ceiling {
        let window_ns = (window_s * 1e9).max(1.0);
        let thread_util: Vec<f64> = self
            .threads_ns
            .iter()
            .map(|&ns| round3(ns as f64 / window_ns))
            .collect();
        let (busiest_thread, busiest) =
            thread_util
                .iter()
                .copied()
                .enumerate()
                .fold(
                    (0, 0.0),
                    |best, (i, u)| if u > best.1 { (i, u) } else { best },
                );
        let cpu_per_msg_us = if messages > 0 {
            round3(self.process_ns as f64 / messages as f64 / 1e3)
        } else {
            0.0
        };
        Ceiling {
            io,
            cpu_per_msg_us,
            process_cores: round3(self.process_ns as f64 / window_ns),
            busiest_thread,
            busiest_thread_util: busiest,
            thread_util,
            warning: warning(busiest),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The warning line for a busiest thread at `util` of its core, if above
/// [`SATURATED`].
pub fn warning(util: f64) -> Option<String> {
    (util > SATURATED).then(|| {
        format!(
            "loadgen's busiest thread was at {:.0}% of its core (above {:.0}%): these figures \
             measure loadgen, not the server",
            util * 100.0,
            SATURATED * 100.0
        )
    })
}

/// loadgen's own load during the measured window (`client` in the JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    /// The I/O driver that ran (`uring` or `epoll`).
    pub io: IoKind,
    /// loadgen's CPU time (user + system, all threads) per correct echo, us.
    pub cpu_per_msg_us: f64,
    /// loadgen's CPU time over the window: cores busy on average.
    pub process_cores: f64,
    /// The worker thread that was busiest.
    pub busiest_thread: usize,
    /// Its CPU time over the window: the share of one core (0..1).
    pub busiest_thread_util: f64,
    /// Each worker thread's share of a core.
    pub thread_util: Vec<f64>,
    /// Set when the busiest thread was above 90% of its core.
    pub warning: Option<String>,
}

impl Ceiling {
    /// One line for the text report.
    pub fn line(&self) -> String {
        format!(
            "{} driver, {:.2} us of CPU per message, busiest thread at {:.0}% of a core",
            self.io.name(),
            self.cpu_per_msg_us,
            self.busiest_thread_util * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_message_and_the_busiest_thread() {
        let mut t = CpuTally::default();
        t.add(
            0,
            CpuUse {
                thread_ns: 500_000_000,
                process_ns: 1_400_000_000,
            },
        );
        t.add(
            1,
            CpuUse {
                thread_ns: 950_000_000,
                process_ns: 1_400_000_000,
            },
        );
        let c = t.ceiling(IoKind::Uring, 700_000, 1.0);
        assert_eq!(c.cpu_per_msg_us, 2.0);
        assert_eq!((c.busiest_thread, c.busiest_thread_util), (1, 0.95));
        assert_eq!(c.thread_util, vec![0.5, 0.95]);
        assert!(c.warning.unwrap().contains("95%"));
        let calm = CpuTally::default().ceiling(IoKind::Epoll, 0, 1.0);
        assert_eq!((calm.cpu_per_msg_us, calm.warning), (0.0, None));
    }

    #[test]
    fn the_meter_counts_this_threads_work() {
        let mut m = CpuMeter::start();
        // Spin until this thread has run 5 ms (however busy the machine).
        let start = cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID);
        while cpu_clock_ns(libc::CLOCK_THREAD_CPUTIME_ID) - start < 5_000_000 {
            std::hint::black_box(start);
        }
        let used = m.lap();
        assert!(used.thread_ns >= 5_000_000, "{used:?}");
        assert!(used.process_ns >= 5_000_000, "{used:?}");
        assert!(
            m.lap().thread_ns < used.thread_ns,
            "a lap starts where the last ended"
        );
    }
}
