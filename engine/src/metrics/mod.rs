//! Engine counters: written by the workers, read by `/healthz`, `/metrics`
//! and the `/stats` stream.
//!
//! # Why the hot path costs (almost) nothing
//!
//! Each worker owns one [`WorkerStats`] block, aligned to a cache line so
//! that no two workers ever write the same line. Only the owning worker
//! thread writes its block: every counter is bumped from that worker's
//! connection tasks, its keep-alive sweeper or its HTTP service (rejected
//! handshakes are counted on the worker that handled the request).
//!
//! With a single writer, an increment needs no read-modify-write
//! instruction: [`Counter::add`] is a relaxed load followed by a relaxed
//! store, which compiles to a plain `mov`/`add`/`mov` on x86-64 and to
//! `ldr`/`add`/`str` on arm64 — no `lock` prefix, no cache line bouncing
//! between cores, and no increment can be lost because nobody else stores.
//! The values live in `AtomicU64` only so that readers on other threads see
//! whole (never torn) values; a reader may see a count a few messages old,
//! which is what a 1 Hz panel or a Prometheus scrape wants anyway.
//! Thread-local `Cell`s published periodically would cost the same on the
//! hot path but add a publishing task and a staleness window; the atomic
//! single-writer form needs neither.
//!
//! The per-message counters (messages and bytes in and out) are the only
//! ones on the echo hot path. The cargo feature `metrics` (on by default)
//! keeps them; building with `--no-default-features` compiles those four
//! updates to nothing, which is how `results/metrics-cost.md` measures
//! their cost. Per-connection counters (opens, closes, pings, rejections)
//! are always kept: they are not on the per-message path.
//!
//! Readers take a [`EngineSnapshot`] (plain numbers, per worker) and render
//! it: JSON for `/healthz` and `/stats`, the Prometheus text format in
//! [`prometheus`].

pub mod prometheus;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::config::{Config, IoBackend};
use crate::protocol::CloseCode;

/// A monotonically growing count written by one thread only (see the module
/// docs for why a load and a store are enough).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Must only be called by the owning worker thread.
    #[inline]
    pub fn add(&self, n: u64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_add(n), Ordering::Relaxed);
    }

    /// Subtracts `n` (for gauges kept in a counter cell). Owner thread only.
    #[inline]
    fn sub(&self, n: u64) {
        let value = self.0.load(Ordering::Relaxed);
        self.0.store(value.wrapping_sub(n), Ordering::Relaxed);
    }

    /// The current value, from any thread.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a WebSocket handshake was refused, as counted in
/// `ringecho_handshakes_rejected_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// `Origin` not in `--allowed-origin` (403).
    Origin,
    /// `--max-connections` reached, or shutting down (503).
    Limit,
    /// Malformed upgrade request (400/426).
    BadRequest,
    /// No complete HTTP request within `--handshake-timeout`.
    Timeout,
}

impl RejectReason {
    /// Every reason, in label order.
    pub const ALL: [RejectReason; 4] = [
        RejectReason::Origin,
        RejectReason::Limit,
        RejectReason::BadRequest,
        RejectReason::Timeout,
    ];

    /// The value of the `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::Origin => "origin",
            RejectReason::Limit => "limit",
            RejectReason::BadRequest => "bad_request",
            RejectReason::Timeout => "timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Close codes are counted in fixed slots so that counting needs no map:
/// one slot per code 1000..=1015, then the application ranges, then the rest.
const CLOSE_CODE_SLOTS: usize = 19;
const SLOT_3000_3999: usize = 16;
const SLOT_4000_4999: usize = 17;
const SLOT_OTHER: usize = 18;

/// The slot a close code is counted in.
fn close_code_slot(code: CloseCode) -> usize {
    let code = code.get();
    match code {
        1000..=1015 => usize::from(code - 1000),
        3000..=3999 => SLOT_3000_3999,
        4000..=4999 => SLOT_4000_4999,
        _ => SLOT_OTHER,
    }
}

/// The `code` label of a close-code slot.
pub fn close_code_label(slot: usize) -> String {
    match slot {
        SLOT_3000_3999 => "3000-3999".to_owned(),
        SLOT_4000_4999 => "4000-4999".to_owned(),
        SLOT_OTHER => "other".to_owned(),
        code => (1000 + code).to_string(),
    }
}

/// Counters one worker owns (see the module docs).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerStats {
    /// The core this worker is pinned to, if pinned.
    pub cpu: Option<usize>,
    open_websockets: Counter,
    websockets_opened: Counter,
    messages_received: Counter,
    messages_sent: Counter,
    bytes_received: Counter,
    bytes_sent: Counter,
    pings_sent: Counter,
    keep_alive_timeouts: Counter,
    backpressure_closes: Counter,
    connections_dropped: Counter,
    handshakes_rejected: [Counter; 4],
    close_codes_sent: [Counter; CLOSE_CODE_SLOTS],
    close_codes_received: [Counter; CLOSE_CODE_SLOTS],
}

impl WorkerStats {
    /// Stats for a worker pinned to `cpu` (or unpinned).
    pub fn new(cpu: Option<usize>) -> Self {
        Self {
            cpu,
            ..Self::default()
        }
    }

    /// WebSockets currently open on this worker.
    pub fn open_websockets(&self) -> u64 {
        self.open_websockets.get()
    }

    /// A WebSocket opened on this worker.
    pub fn websocket_opened(&self) {
        self.open_websockets.add(1);
        self.websockets_opened.add(1);
    }

    /// A WebSocket of this worker closed.
    pub fn websocket_closed(&self) {
        self.open_websockets.sub(1);
    }

    /// A whole message of `bytes` payload bytes arrived (hot path).
    #[inline]
    pub fn message_received(&self, bytes: usize) {
        #[cfg(feature = "metrics")]
        {
            self.messages_received.add(1);
            self.bytes_received.add(bytes as u64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = bytes;
    }

    /// A message of `bytes` payload bytes went out (hot path).
    #[inline]
    pub fn message_sent(&self, bytes: usize) {
        #[cfg(feature = "metrics")]
        {
            self.messages_sent.add(1);
            self.bytes_sent.add(bytes as u64);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = bytes;
    }

    /// A keep-alive ping went out.
    pub fn ping_sent(&self) {
        self.pings_sent.add(1);
    }

    /// A WebSocket was dropped because its pong was too late.
    pub fn keep_alive_timed_out(&self) {
        self.keep_alive_timeouts.add(1);
    }

    /// A WebSocket was closed because its echoes stayed stuck above
    /// `--max-backpressure` for `--backpressure-timeout`.
    ///
    /// This also counts close code 1008 in [`close_sent`](Self::close_sent),
    /// so callers must not count it again: every backpressure close is a
    /// 1008 close by the engine's policy (close 1008 queued, then the TCP
    /// connection dropped). On the epoll backend the frame cannot get
    /// through the full send buffer, so there the 1008 is the close the
    /// engine decided on rather than one the peer can read.
    pub fn backpressure_closed(&self) {
        self.backpressure_closes.add(1);
        self.close_sent(CloseCode::POLICY_VIOLATION);
    }

    /// `n` connections were closed as soon as they were accepted, because
    /// the process had run out of file descriptors (see [`crate::runtime::fd_limit`]).
    pub fn connections_dropped(&self, n: usize) {
        self.connections_dropped.add(n as u64);
    }

    /// A handshake handled by this worker was refused.
    pub fn handshake_rejected(&self, reason: RejectReason) {
        self.handshakes_rejected[reason.index()].add(1);
    }

    /// This worker sent a close frame with `code`.
    pub fn close_sent(&self, code: CloseCode) {
        self.close_codes_sent[close_code_slot(code)].add(1);
    }

    /// A peer sent a close frame with `code` ([`CloseCode::NO_STATUS_RECEIVED`] when
    /// the frame had none).
    pub fn close_received(&self, code: CloseCode) {
        self.close_codes_received[close_code_slot(code)].add(1);
    }

    /// The current values.
    pub fn snapshot(&self, worker: usize) -> WorkerSnapshot {
        let values = |counters: &[Counter]| counters.iter().map(Counter::get).collect();
        WorkerSnapshot {
            worker,
            cpu: self.cpu,
            connections: self.open_websockets.get(),
            connections_total: self.websockets_opened.get(),
            messages_in: self.messages_received.get(),
            messages_out: self.messages_sent.get(),
            bytes_in: self.bytes_received.get(),
            bytes_out: self.bytes_sent.get(),
            pings_sent: self.pings_sent.get(),
            keep_alive_timeouts: self.keep_alive_timeouts.get(),
            backpressure_closes: self.backpressure_closes.get(),
            connections_dropped: self.connections_dropped.get(),
            handshakes_rejected: values(&self.handshakes_rejected),
            close_codes_sent: values(&self.close_codes_sent),
            close_codes_received: values(&self.close_codes_received),
        }
    }
}

/// One worker's counters at one moment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerSnapshot {
    /// Worker index.
    pub worker: usize,
    /// Pinned core, if any.
    pub cpu: Option<usize>,
    /// Open WebSockets.
    pub connections: u64,
    /// WebSockets opened since start.
    pub connections_total: u64,
    /// Whole messages received.
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Message payload bytes received.
    pub bytes_in: u64,
    /// Message payload bytes sent.
    pub bytes_out: u64,
    /// Keep-alive pings sent.
    pub pings_sent: u64,
    /// WebSockets dropped for a late pong.
    pub keep_alive_timeouts: u64,
    /// WebSockets closed because their echoes stayed stuck too long.
    pub backpressure_closes: u64,
    /// Connections closed unserved because file descriptors ran out.
    pub connections_dropped: u64,
    /// Refused handshakes, indexed like [`RejectReason::ALL`].
    #[serde(skip)]
    pub handshakes_rejected: Vec<u64>,
    /// Close frames sent, by slot (see [`close_code_label`]).
    #[serde(skip)]
    pub close_codes_sent: Vec<u64>,
    /// Close frames received, by slot.
    #[serde(skip)]
    pub close_codes_received: Vec<u64>,
}

/// The engine's static facts, for `ringecho_info` and the stats panel.
#[derive(Debug, Clone, Serialize)]
pub struct EngineInfo {
    /// The crate version.
    pub version: &'static str,
    /// The io backend in use.
    pub io: IoBackend,
    /// Number of workers.
    pub workers: usize,
    /// Bytes per provided receive buffer.
    pub receive_buffer_size: usize,
    /// Provided receive buffers per worker.
    pub receive_buffers: usize,
    /// Whether the per-message counters are compiled in (cargo feature `metrics`).
    pub message_counters: bool,
}

impl EngineInfo {
    /// The facts for an engine running `config` on `io`.
    pub fn new(config: &Config, io: IoBackend) -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            io,
            workers: config.threads,
            receive_buffer_size: config.receive_buffer_size,
            receive_buffers: config.receive_buffers,
            message_counters: cfg!(feature = "metrics"),
        }
    }
}

/// Every worker's counters at one moment, plus the engine's facts.
#[derive(Debug, Clone)]
pub struct EngineSnapshot {
    /// Static facts.
    pub info: EngineInfo,
    /// One entry per worker, in worker order.
    pub workers: Vec<WorkerSnapshot>,
}

impl EngineSnapshot {
    /// Reads every worker's block.
    pub fn take(info: &EngineInfo, workers: &[impl AsRef<WorkerStats>]) -> Self {
        Self {
            info: info.clone(),
            workers: workers
                .iter()
                .enumerate()
                .map(|(index, stats)| stats.as_ref().snapshot(index))
                .collect(),
        }
    }

    /// The per-worker counters added up (`worker` and `cpu` stay 0 and `None`;
    /// per-label arrays are left empty).
    pub fn totals(&self) -> WorkerSnapshot {
        let mut sum = WorkerSnapshot::default();
        for w in &self.workers {
            sum.connections += w.connections;
            sum.connections_total += w.connections_total;
            sum.messages_in += w.messages_in;
            sum.messages_out += w.messages_out;
            sum.bytes_in += w.bytes_in;
            sum.bytes_out += w.bytes_out;
            sum.pings_sent += w.pings_sent;
            sum.keep_alive_timeouts += w.keep_alive_timeouts;
            sum.backpressure_closes += w.backpressure_closes;
            sum.connections_dropped += w.connections_dropped;
        }
        sum
    }
}

/// One worker's line in the `/healthz` report.
#[derive(Debug, Serialize)]
pub struct WorkerHealth {
    /// Worker index.
    pub worker: usize,
    /// Pinned core, if any.
    pub cpu: Option<usize>,
    /// Open WebSockets.
    pub connections: u64,
}

/// The `/healthz` body.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always "ok" while the engine serves requests.
    pub status: &'static str,
    /// The io backend in use.
    pub io: IoBackend,
    /// Per-worker state.
    pub workers: Vec<WorkerHealth>,
}

impl Health {
    /// Snapshot of all workers.
    pub fn collect(io: IoBackend, workers: &[impl AsRef<WorkerStats>]) -> Self {
        Self {
            status: "ok",
            io,
            workers: workers
                .iter()
                .enumerate()
                .map(|(worker, stats)| WorkerHealth {
                    worker,
                    cpu: stats.as_ref().cpu,
                    connections: stats.as_ref().open_websockets(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_land_in_their_slots() {
        for (code, label) in [
            (1000, "1000"),
            (1001, "1001"),
            (1005, "1005"),
            (1015, "1015"),
            (3000, "3000-3999"),
            (4999, "4000-4999"),
            (1016, "other"),
            (5000, "other"),
        ] {
            assert_eq!(
                close_code_label(close_code_slot(CloseCode::new(code))),
                label,
                "{code}"
            );
        }
    }

    #[test]
    fn snapshot_reads_what_the_owner_wrote() {
        let stats = WorkerStats::new(Some(3));
        stats.websocket_opened();
        stats.websocket_opened();
        stats.websocket_closed();
        stats.message_received(20);
        stats.message_sent(20);
        stats.handshake_rejected(RejectReason::Timeout);
        stats.close_sent(CloseCode::NORMAL);
        stats.close_received(CloseCode::new(4001));
        stats.backpressure_closed();
        stats.connections_dropped(3);
        let snapshot = stats.snapshot(7);
        assert_eq!((snapshot.worker, snapshot.cpu), (7, Some(3)));
        assert_eq!(snapshot.connections, 1);
        assert_eq!(snapshot.connections_total, 2);
        let expected = u64::from(cfg!(feature = "metrics"));
        assert_eq!(
            (snapshot.messages_in, snapshot.bytes_out),
            (expected, 20 * expected)
        );
        assert_eq!(snapshot.handshakes_rejected, [0, 0, 0, 1]);
        assert_eq!(snapshot.close_codes_sent[0], 1);
        assert_eq!(snapshot.backpressure_closes, 1);
        assert_eq!(snapshot.connections_dropped, 3);
        assert_eq!(
            snapshot.close_codes_sent[close_code_slot(CloseCode::POLICY_VIOLATION)],
            1,
            "a backpressure close counts its 1008 too"
        );
        assert_eq!(snapshot.close_codes_received[SLOT_4000_4999], 1);
    }

    #[test]
    fn stats_blocks_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<WorkerStats>(), 64);
        assert_eq!(std::mem::size_of::<WorkerStats>() % 64, 0);
    }
}
