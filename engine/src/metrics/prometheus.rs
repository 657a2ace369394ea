//! `/metrics`: the engine's counters in the OpenMetrics text format (the
//! standardised Prometheus text exposition), encoded by `prometheus-client`.
//!
//! The counters themselves stay in [`super::WorkerStats`]: a
//! `prometheus_client::metrics::counter::Counter` is a shared atomic with a
//! locked `fetch_add`, which is what the hot path must avoid. So each scrape
//! takes an [`EngineSnapshot`] and a custom [`Collector`] hands its plain
//! numbers to prometheus-client's encoder as constant metrics; the crate
//! still writes every `# HELP`, `# TYPE`, `# UNIT` line, the `_total`
//! suffixes, the label escaping and the closing `# EOF`.
//!
//! Families (per-worker ones carry a `worker` label):
//! - `ringecho_info` (gauge, always 1): version, io backend, workers,
//!   receive buffer size and count, whether message counters are built in;
//! - `ringecho_connections` (gauge) and `ringecho_connections_opened_total`;
//! - `ringecho_messages_received_total`, `ringecho_messages_sent_total`,
//!   `ringecho_payload_received_bytes_total`, `ringecho_payload_sent_bytes_total`;
//! - `ringecho_pings_sent_total`, `ringecho_keep_alive_timeouts_total`;
//! - `ringecho_backpressure_closes_total`: WebSockets closed because their
//!   echoes stayed stuck above `--max-backpressure` for
//!   `--backpressure-timeout` (each also counts as a close frame 1008 sent);
//! - `ringecho_connections_dropped_total`: connections closed unserved
//!   because the process was out of file descriptors ([`crate::runtime::fd_limit`]);
//! - `ringecho_handshakes_rejected_total{reason}` with reason `origin`,
//!   `limit`, `bad_request` or `timeout`;
//! - `ringecho_close_frames_sent_total{code}` and
//!   `ringecho_close_frames_received_total{code}`: code 1000-1015 exactly,
//!   `3000-3999`, `4000-4999` or `other`; 1005 counts close frames that
//!   carried no code. Codes never seen are left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{close_code_label, EngineSnapshot, RejectReason, WorkerSnapshot};

/// The `Content-Type` of the `/metrics` answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Renders `snapshot` as an OpenMetrics text exposition.
pub fn encode(snapshot: EngineSnapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

/// Hands one snapshot to the encoder.
#[derive(Debug)]
struct SnapshotCollector(EngineSnapshot);

/// A per-worker counter family: name, help, unit, and how to read it.
type WorkerCounter = (
    &'static str,
    &'static str,
    Option<Unit>,
    fn(&WorkerSnapshot) -> u64,
);

const WORKER_COUNTERS: [WorkerCounter; 9] = [
    (
        "ringecho_connections_opened",
        "WebSockets opened (upgrades accepted).",
        None,
        |w| w.connections_total,
    ),
    (
        "ringecho_messages_received",
        "Whole WebSocket messages received (text and binary).",
        None,
        |w| w.messages_in,
    ),
    (
        "ringecho_messages_sent",
        "WebSocket messages sent (echoes).",
        None,
        |w| w.messages_out,
    ),
    (
        "ringecho_payload_received",
        "Message payload bytes received (frame headers not counted).",
        Some(Unit::Bytes),
        |w| w.bytes_in,
    ),
    (
        "ringecho_payload_sent",
        "Message payload bytes sent (frame headers not counted).",
        Some(Unit::Bytes),
        |w| w.bytes_out,
    ),
    (
        "ringecho_pings_sent",
        "Keep-alive pings sent (--keep-alive-interval).",
        None,
        |w| w.pings_sent,
    ),
    (
        "ringecho_keep_alive_timeouts",
        "WebSockets dropped because no pong came within --keep-alive-timeout.",
        None,
        |w| w.keep_alive_timeouts,
    ),
    (
        "ringecho_backpressure_closes",
        "WebSockets closed (1008) because their echoes stayed stuck above --max-backpressure for --backpressure-timeout.",
        None,
        |w| w.backpressure_closes,
    ),
    (
        "ringecho_connections_dropped",
        "TCP connections closed as soon as accepted, unserved, because the process was out of file descriptors (EMFILE/ENFILE).",
        None,
        |w| w.connections_dropped,
    ),
];

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = &self.0;
        let info = &snapshot.info;
        let info_labels = [
            ("version", info.version.to_owned()),
            ("io", info.io.name().to_owned()),
            ("workers", info.workers.to_string()),
            ("receive_buffer_size", info.receive_buffer_size.to_string()),
            ("receive_buffers", info.receive_buffers.to_string()),
            ("message_counters", info.message_counters.to_string()),
        ];
        let mut family = encoder.encode_descriptor(
            "ringecho_info",
            "Engine facts as labels; the value is always 1.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1i64).encode(family.encode_family(&info_labels)?)?;

        let mut family = encoder.encode_descriptor(
            "ringecho_connections",
            "WebSockets open now.",
            None,
            MetricType::Gauge,
        )?;
        for w in &snapshot.workers {
            ConstGauge::new(w.connections).encode(family.encode_family(&worker_label(w))?)?;
        }

        for (name, help, unit, read) in &WORKER_COUNTERS {
            let mut family =
                encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
            for w in &snapshot.workers {
                ConstCounter::new(read(w)).encode(family.encode_family(&worker_label(w))?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "ringecho_handshakes_rejected",
            "Refused WebSocket handshakes, by reason.",
            None,
            MetricType::Counter,
        )?;
        for w in &snapshot.workers {
            for (reason, count) in RejectReason::ALL.iter().zip(&w.handshakes_rejected) {
                let labels = [
                    ("worker", w.worker.to_string()),
                    ("reason", reason.label().to_owned()),
                ];
                ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
            }
        }

        for (name, help, read) in [
            (
                "ringecho_close_frames_sent",
                "Close frames sent, by close code.",
                (|w| &w.close_codes_sent) as fn(&WorkerSnapshot) -> &Vec<u64>,
            ),
            (
                "ringecho_close_frames_received",
                "Close frames received, by close code (1005: the frame had no code).",
                |w| &w.close_codes_received,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for w in &snapshot.workers {
                for (slot, count) in read(w).iter().enumerate().filter(|(_, &n)| n > 0) {
                    let labels = [
                        ("worker", w.worker.to_string()),
                        ("code", close_code_label(slot)),
                    ];
                    ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

fn worker_label(w: &WorkerSnapshot) -> [(&'static str, String); 1] {
    [("worker", w.worker.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IoBackend;
    use crate::metrics::{EngineInfo, WorkerStats};

    #[test]
    fn exposition_has_types_units_labels_and_eof() {
        let stats = WorkerStats::new(Some(0));
        stats.websocket_opened();
        stats.handshake_rejected(RejectReason::Origin);
        stats.close_received(crate::protocol::CloseCode::NORMAL);
        stats.backpressure_closed();
        let info = EngineInfo {
            version: "9.9.9",
            io: IoBackend::Epoll,
            workers: 1,
            receive_buffer_size: 4096,
            receive_buffers: 128,
            message_counters: true,
        };
        let text = encode(EngineSnapshot::take(&info, &[std::sync::Arc::new(stats)]));
        for line in [
            "# TYPE ringecho_info gauge",
            "ringecho_info{version=\"9.9.9\",io=\"epoll\",workers=\"1\",receive_buffer_size=\"4096\",receive_buffers=\"128\",message_counters=\"true\"} 1",
            "# TYPE ringecho_connections gauge",
            "ringecho_connections{worker=\"0\"} 1",
            "# TYPE ringecho_connections_opened counter",
            "ringecho_connections_opened_total{worker=\"0\"} 1",
            "# TYPE ringecho_payload_received_bytes counter",
            "# UNIT ringecho_payload_received_bytes bytes",
            "ringecho_payload_received_bytes_total{worker=\"0\"} 0",
            "ringecho_handshakes_rejected_total{worker=\"0\",reason=\"origin\"} 1",
            "ringecho_handshakes_rejected_total{worker=\"0\",reason=\"timeout\"} 0",
            "ringecho_close_frames_received_total{worker=\"0\",code=\"1000\"} 1",
            "# TYPE ringecho_backpressure_closes counter",
            "ringecho_backpressure_closes_total{worker=\"0\"} 1",
            "ringecho_close_frames_sent_total{worker=\"0\",code=\"1008\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            !text.contains("ringecho_close_frames_sent_total{worker=\"0\",code=\"1000\"}"),
            "codes never sent are left out:\n{text}"
        );
    }
}
