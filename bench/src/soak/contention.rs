//! What else was going on: the machine is shared, so when the engine or
//! loadgen stops making progress the samples must say whether another
//! process had their core, the disk held them (threads in `D` state,
//! major page faults, iowait) or the hypervisor did (steal).

use std::time::Instant;

/// Per-CPU jiffies from one line of `/proc/stat`: (busy, total).
fn cpu_jiffies(line: &str) -> Option<(u64, u64, u64, u64)> {
    // cpuN user nice system idle iowait irq softirq steal ...
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 8 {
        return None;
    }
    let (idle, iowait, steal) = (v[3], v[4], v[7]);
    let total: u64 = v.iter().sum();
    Some((total - idle - iowait, total, iowait, steal))
}

/// Busy share of CPUs from `/proc/stat` deltas.
#[derive(Debug, Default)]
pub struct CpuStatMeter {
    last: Option<Vec<(u64, u64, u64, u64)>>,
}

/// One reading of [`CpuStatMeter`], in percent of the interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuShares {
    /// Busy share of each watched CPU (any process), in the order asked.
    pub busy: [f64; 2],
    /// iowait share over all CPUs.
    pub iowait: f64,
    /// Steal share over all CPUs (the hypervisor ran something else).
    pub steal: f64,
}

fn parse_stat(text: &str) -> Vec<(u64, u64, u64, u64)> {
    // Index 0 is the "cpu" total line, then cpu0, cpu1, ...
    text.lines()
        .take_while(|l| l.starts_with("cpu"))
        .filter_map(cpu_jiffies)
        .collect()
}

impl CpuStatMeter {
    /// Reads `/proc/stat`; returns the shares since the previous reading
    /// of CPUs `cpus` (`None` on the first reading).
    pub fn read(&mut self, cpus: [usize; 2]) -> Option<CpuShares> {
        let now = parse_stat(&std::fs::read_to_string("/proc/stat").ok()?);
        let shares = self.last.as_ref().and_then(|last| shares(last, &now, cpus));
        self.last = Some(now);
        shares
    }
}

/// The shares between two parsed `/proc/stat` readings.
fn shares(
    last: &[(u64, u64, u64, u64)],
    now: &[(u64, u64, u64, u64)],
    cpus: [usize; 2],
) -> Option<CpuShares> {
    let delta = |i: usize| {
        let (b0, t0, w0, s0) = *last.get(i)?;
        let (b1, t1, w1, s1) = *now.get(i)?;
        let total = (t1.saturating_sub(t0)).max(1) as f64;
        Some((
            b1.saturating_sub(b0) as f64 / total * 100.0,
            w1.saturating_sub(w0) as f64 / total * 100.0,
            s1.saturating_sub(s0) as f64 / total * 100.0,
        ))
    };
    let (_, iowait, steal) = delta(0)?;
    Some(CpuShares {
        busy: [delta(cpus[0] + 1)?.0, delta(cpus[1] + 1)?.0],
        iowait,
        steal,
    })
}

/// Major page faults and blocked threads of one process.
#[derive(Debug)]
pub struct ProcessWaits {
    pid: u32,
    last: Option<(Instant, u64)>,
}

/// One reading of [`ProcessWaits`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Waits {
    /// Major page faults per second since the previous reading (a fault
    /// that had to read from disk).
    pub major_faults_per_sec: Option<f64>,
    /// Threads in uninterruptible sleep (`D`, usually disk) right now.
    pub blocked_threads: usize,
}

impl ProcessWaits {
    /// A reader for `pid`.
    pub fn new(pid: u32) -> ProcessWaits {
        ProcessWaits { pid, last: None }
    }

    /// Reads `/proc/PID/stat` and the states of `/proc/PID/task/*`.
    pub fn read(&mut self) -> Option<Waits> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        let majflt = stat_field(&stat, 12)?;
        let now = Instant::now();
        let major_faults_per_sec = self
            .last
            .map(|(t, m)| majflt.saturating_sub(m) as f64 / (now - t).as_secs_f64().max(1e-9));
        self.last = Some((now, majflt));
        let blocked_threads = std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .ok()?
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("stat"))
                    .ok()
                    .and_then(|s| state_of(&s))
                    == Some('D')
            })
            .count();
        Some(Waits {
            major_faults_per_sec,
            blocked_threads,
        })
    }
}

/// Field `n` (1-based, as in proc(5)) of a `/proc/PID/stat` line, for the
/// numeric fields after the command name.
fn stat_field(stat: &str, n: usize) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(n - 3)?.parse().ok()
}

/// The state letter (field 3) of a `/proc/PID/stat` line.
fn state_of(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_two_stat_readings() {
        let a = "cpu  100 0 100 700 100 0 0 0 0 0\n\
                 cpu0 50 0 50 350 50 0 0 0 0 0\n\
                 cpu1 50 0 50 350 50 0 0 0 0 0\nintr 1\n";
        // cpu0: 100 busy of 100; cpu1: 10 busy, 80 idle, 10 steal.
        let b = "cpu  210 0 100 780 100 0 0 10 0 0\n\
                 cpu0 150 0 50 350 50 0 0 0 0 0\n\
                 cpu1 60 0 50 430 50 0 0 10 0 0\nintr 1\n";
        let s = shares(&parse_stat(a), &parse_stat(b), [0, 1]).unwrap();
        assert!((s.busy[0] - 100.0).abs() < 1e-9);
        assert!((s.busy[1] - 20.0).abs() < 1e-9, "{:?}", s.busy);
        assert!((s.steal - 5.0).abs() < 1e-9);
        assert_eq!(s.iowait, 0.0);
        let mut meter = CpuStatMeter::default();
        assert!(meter.read([0, 1]).is_none());
    }

    #[test]
    fn reads_fields_past_a_name_with_spaces() {
        let stat = "42 (a b) D 1 42 42 0 -1 4194560 100 0 7 0 250 75";
        assert_eq!(state_of(stat), Some('D'));
        assert_eq!(stat_field(stat, 12), Some(7));
        let mut me = ProcessWaits::new(std::process::id());
        let first = me.read().unwrap();
        assert_eq!(first.major_faults_per_sec, None);
        assert!(me.read().unwrap().major_faults_per_sec.is_some());
    }
}
