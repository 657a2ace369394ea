//! Per-interval measurements: latency histograms and counters.
//!
//! Each worker records into its own [`Interval`] with no locks or atomics;
//! at each interval boundary it hands the whole `Interval` to the
//! coordinator and starts a fresh one. The coordinator adds the workers'
//! intervals up (histograms add exactly: that is the point of HdrHistogram).
//!
//! Latencies are recorded in **nanoseconds** with 3 significant digits
//! (0.1% resolution), up to 60 s; longer values are clamped to 60 s.
//! Reports convert to microseconds.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::ceiling::CpuUse;
use crate::payload::Mismatch;
use crate::reasons::ReasonCounts;
use crate::reconnect::ReconnectCounts;

/// Highest latency a histogram tracks, in ns (longer values are clamped).
pub const HIST_MAX_NS: u64 = 60_000_000_000;
/// Significant decimal digits kept by the histograms.
pub const HIST_SIGFIG: u8 = 3;

/// A fresh latency histogram (ns, 1 ns .. 60 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, HIST_SIGFIG)
        .expect("static histogram bounds are valid")
}

/// Echoes that did not match what was sent, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// Right sequence number, but the echo's length differs from the message.
    pub length: u64,
    /// Echo carries another sequence number than the oldest outstanding message.
    pub order: u64,
    /// Same length and sequence, other bytes differ.
    pub content: u64,
    /// Echo opcode differs (text vs binary), or the server broke the framing.
    pub protocol: u64,
    /// An echo arrived while no message was outstanding.
    pub unexpected: u64,
}

impl ErrorCounts {
    /// Sum of all reasons.
    pub fn total(&self) -> u64 {
        self.length + self.order + self.content + self.protocol + self.unexpected
    }

    /// Counts one mismatch.
    pub fn count(&mut self, m: Mismatch) {
        match m {
            Mismatch::Length => self.length += 1,
            Mismatch::Order => self.order += 1,
            Mismatch::Content => self.content += 1,
        }
    }

    /// Adds another set of counts.
    pub fn add(&mut self, o: &ErrorCounts) {
        self.length += o.length;
        self.order += o.order;
        self.content += o.content;
        self.protocol += o.protocol;
        self.unexpected += o.unexpected;
    }
}

/// Everything one worker measured in one interval.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Round trip counted from the intended send time (ns).
    pub corrected: Histogram<u64>,
    /// Round trip counted from the actual send time (ns).
    pub uncorrected: Histogram<u64>,
    /// Round trips of messages sent exactly when intended (every message of
    /// the closed loop), whose corrected and uncorrected latency are the
    /// same sample: recorded once here instead of twice, and added to both
    /// histograms by [`Interval::fold_same`] before the interval is reported.
    pub same: Histogram<u64>,
    /// TCP connect + WebSocket handshake time (ns).
    pub connect: Histogram<u64>,
    /// Messages sent.
    pub sent: u64,
    /// Correct echoes received.
    pub messages: u64,
    /// Payload bytes of correct echoes.
    pub bytes: u64,
    /// Bad echoes.
    pub errors: ErrorCounts,
    /// Connections that never opened, by reason.
    pub connect_failures: ReasonCounts,
    /// Open connections lost before the end of the run, by reason.
    pub disconnects: ReasonCounts,
    /// Connections that completed the handshake.
    pub opened: u64,
    /// Connections open at the end of the interval (a gauge, not a count).
    pub open_now: u64,
    /// Drops, reconnects and lost echoes ([`crate::reconnect`]).
    pub reconnect: ReconnectCounts,
    /// Connections by the extensions the server agreed to (its
    /// `Sec-WebSocket-Extensions` answer), when loadgen offered any.
    pub extensions: ReasonCounts,
}

impl Default for Interval {
    fn default() -> Self {
        Interval {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            same: new_histogram(),
            connect: new_histogram(),
            sent: 0,
            messages: 0,
            bytes: 0,
            errors: ErrorCounts::default(),
            connect_failures: ReasonCounts::default(),
            disconnects: ReasonCounts::default(),
            opened: 0,
            open_now: 0,
            reconnect: ReconnectCounts::default(),
            extensions: ReasonCounts::default(),
        }
    }
}

impl Interval {
    /// Adds the [`same`](Self::same) samples to both the corrected and the
    /// uncorrected histogram, and empties it.
    pub fn fold_same(&mut self) {
        if self.same.is_empty() {
            return;
        }
        // Same bounds everywhere, so addition cannot fail.
        let _ = self.corrected.add(&self.same);
        let _ = self.uncorrected.add(&self.same);
        self.same.reset();
    }

    /// Adds another worker's interval (or another interval) into this one.
    /// `open_now` adds too, which is right for workers of the same instant.
    pub fn add(&mut self, o: &Interval) {
        // Same bounds everywhere, so addition cannot fail.
        let _ = self.corrected.add(&o.corrected);
        let _ = self.uncorrected.add(&o.uncorrected);
        let _ = self.same.add(&o.same);
        let _ = self.connect.add(&o.connect);
        self.sent += o.sent;
        self.messages += o.messages;
        self.bytes += o.bytes;
        self.errors.add(&o.errors);
        self.connect_failures.add(&o.connect_failures);
        self.disconnects.add(&o.disconnects);
        self.opened += o.opened;
        self.open_now += o.open_now;
        self.reconnect.add(&o.reconnect);
        self.extensions.add(&o.extensions);
    }
}

/// Which part of the run an interval belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before `--warmup` has passed: shown live, left out of the report.
    Warmup,
    /// Measured.
    Measure,
    /// After `--duration`: closing connections. Only failures are counted.
    Drain,
}

/// One worker's interval, sent to the coordinator.
#[derive(Debug)]
pub struct Snapshot {
    /// Which worker.
    pub worker: usize,
    /// Interval start, ns since the run start.
    pub start_ns: u64,
    /// Interval end, ns since the run start (the key that lines workers up).
    pub end_ns: u64,
    /// Warmup, measured, or drain.
    pub phase: Phase,
    /// The measurements.
    pub data: Box<Interval>,
    /// The worker's (and the process's) CPU time over the interval.
    pub cpu: CpuUse,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_add_up() {
        let mut a = Interval::default();
        let mut b = Interval::default();
        a.corrected.record(100).unwrap();
        b.corrected.record(300).unwrap();
        a.messages = 1;
        b.messages = 2;
        b.connect_failures.count("http_403", "HTTP 403 Forbidden");
        b.connect_failures.count("http_403", "HTTP 403 Forbidden");
        a.add(&b);
        assert_eq!(a.corrected.len(), 2);
        assert_eq!(a.messages, 3);
        assert_eq!(a.connect_failures.total(), 2);
        assert_eq!(a.connect_failures.describe(), "2 x HTTP 403 Forbidden");
    }

    #[test]
    fn same_samples_count_as_corrected_and_uncorrected() {
        let mut a = Interval::default();
        a.same.record(1_000).unwrap();
        a.same.record(2_000).unwrap();
        a.corrected.record(9_000).unwrap();
        a.uncorrected.record(5_000).unwrap();
        a.fold_same();
        assert_eq!((a.corrected.len(), a.uncorrected.len()), (3, 3));
        assert!(a.corrected.equivalent(a.corrected.max(), 9_000));
        assert_eq!(a.uncorrected.min(), 1_000);
        assert!(a.same.is_empty());
    }
}
