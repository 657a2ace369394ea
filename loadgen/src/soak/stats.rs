//! What one soak worker counts in one interval.
//!
//! Latency, echoes and bad echoes go into one [`Interval`] (the same type
//! the plain load uses) per traffic class; the soak adds what only it has:
//! lost echoes, closes it started and how they ended.

use serde::Serialize;

use crate::ceiling::CpuUse;
use crate::reasons::ReasonCounts;
use crate::soak::mix::CLASSES;
use crate::stats::Interval;

/// Which part of the soak an interval belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SoakPhase {
    /// The initial set of connections is being opened.
    Ramp,
    /// All connections held, with churn: the part the verdict's latency covers.
    Hold,
    /// Every connection is being closed.
    Drain,
}

impl SoakPhase {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            SoakPhase::Ramp => "ramp",
            SoakPhase::Hold => "hold",
            SoakPhase::Drain => "drain",
        }
    }
}

/// One worker's (or all workers') counts over one interval.
#[derive(Debug, Clone, Default)]
pub struct SoakInterval {
    /// Per class: latency, echoes, bad echoes, connects, failed connects,
    /// unexpected closes (`disconnects`) and the open gauge (`open_now`).
    pub classes: [Interval; CLASSES],
    /// Per class: messages whose echo never came (left in flight when the
    /// connection ended, however it ended).
    pub lost: [u64; CLASSES],
    /// Connects started (initial set and churn).
    pub connects: u64,
    /// Closes we started (churn and the final drain).
    pub closes: u64,
    /// Closes that ended as they should: the server answered our Close
    /// with 1000 after the last echo.
    pub closed_clean: u64,
    /// Clean closes after which the server did not close its end of the
    /// TCP connection within the close timeout (the client then did).
    pub tcp_left_open: u64,
    /// Connections that ended without a clean close, by reason (also
    /// counted per class in `disconnects`).
    pub unexpected: ReasonCounts,
}

impl SoakInterval {
    /// Adds another worker's interval of the same moment.
    pub fn add(&mut self, o: &SoakInterval) {
        for c in 0..CLASSES {
            self.classes[c].add(&o.classes[c]);
            self.lost[c] += o.lost[c];
        }
        self.connects += o.connects;
        self.closes += o.closes;
        self.closed_clean += o.closed_clean;
        self.tcp_left_open += o.tcp_left_open;
        self.unexpected.add(&o.unexpected);
    }

    /// Messages lost over all classes.
    pub fn lost_total(&self) -> u64 {
        self.lost.iter().sum()
    }

    /// Bad echoes (length, order, content, protocol, unexpected) over all classes.
    pub fn corrupted_total(&self) -> u64 {
        self.classes.iter().map(|c| c.errors.total()).sum()
    }

    /// Connects that failed, over all classes.
    pub fn connect_failures_total(&self) -> u64 {
        self.classes
            .iter()
            .map(|c| c.connect_failures.total())
            .sum()
    }

    /// Open connections at the end of the interval, over all classes.
    pub fn open_total(&self) -> u64 {
        self.classes.iter().map(|c| c.open_now).sum()
    }

    /// Correct echoes over all classes.
    pub fn echoes_total(&self) -> u64 {
        self.classes.iter().map(|c| c.messages).sum()
    }

    /// Messages sent over all classes.
    pub fn sent_total(&self) -> u64 {
        self.classes.iter().map(|c| c.sent).sum()
    }

    /// Handshakes completed over all classes.
    pub fn opened_total(&self) -> u64 {
        self.classes.iter().map(|c| c.opened).sum()
    }
}

/// One worker's interval, sent to the coordinator.
#[derive(Debug)]
pub struct SoakSnapshot {
    /// Interval start, ns since the soak's start.
    pub start_ns: u64,
    /// Interval end, ns since the soak's start (the key that lines workers
    /// up); `u64::MAX` for a worker's last, partial interval.
    pub end_ns: u64,
    /// Which worker.
    pub worker: usize,
    /// Ramp, hold or drain.
    pub phase: SoakPhase,
    /// The counts.
    pub data: Box<SoakInterval>,
    /// The worker's (and the process's) CPU time over the interval.
    pub cpu: CpuUse,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_add_up_per_class() {
        let mut a = SoakInterval::default();
        let mut b = SoakInterval::default();
        a.lost[0] = 1;
        b.lost[2] = 2;
        b.classes[1].errors.content = 3;
        b.classes[2].open_now = 7;
        b.unexpected.count("eof", "server closed the connection");
        a.add(&b);
        assert_eq!(a.lost_total(), 3);
        assert_eq!(a.corrupted_total(), 3);
        assert_eq!(a.open_total(), 7);
        assert_eq!(a.unexpected.total(), 1);
    }
}
