//! One measured run (a [`Sample`]) and the CSV file that keeps every sample
//! the moment it is measured, so an interrupted sweep loses at most the run
//! in progress.

use std::fs::File;
use std::io;
use std::path::Path;

use ringecho::IoBackend;
use serde::{Deserialize, Serialize};

use crate::plan::Setting;

/// What one run of one setting measured. Latencies are loadgen's corrected
/// ones (from the intended send time in open mode), in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The workload's name.
    pub workload: String,
    /// 0-based repeat.
    pub repeat: usize,
    /// `--io`.
    pub backend: IoBackend,
    /// `--receive-buffer-size`, bytes.
    pub receive_buffer_size: usize,
    /// `--receive-buffers`.
    pub receive_buffers: usize,
    /// `--socket-receive-buffer`/`--socket-send-buffer`, bytes; empty: kernel default.
    pub socket_buffer: Option<usize>,
    /// Correct echoes per second in the measured window.
    pub msgs_per_sec: f64,
    /// Median round trip.
    pub p50_us: f64,
    /// 99th percentile round trip.
    pub p99_us: f64,
    /// 99.9th percentile round trip.
    pub p99_9_us: f64,
    /// Slowest round trip.
    pub max_us: f64,
    /// Server CPU time (user + system) per echoed message.
    pub cpu_us_per_msg: f64,
    /// Server RSS with the load running minus RSS before the first
    /// connection, divided by the connections open.
    pub rss_per_connection_bytes: f64,
    /// Receive-ring bytes per worker (size x count; 0 on epoll).
    pub ring_bytes: usize,
    /// Connections open during the measured run (from `/proc`).
    pub connections_open: usize,
    /// Bad echoes plus failed and lost connections; 0 for a clean run.
    pub errors: u64,
    /// Whether the server logged that its receive ring ran dry.
    pub ring_ran_dry: bool,
    /// Whether loadgen warned that its busiest thread was above 90% of its
    /// core: the run then measured loadgen, not the server.
    #[serde(default)]
    pub loadgen_bound: bool,
    /// The machine's 1-minute load average after the run (empty if unknown).
    pub load_average: Option<f64>,
}

impl Sample {
    /// The setting this sample measured.
    pub fn setting(&self) -> Setting {
        Setting {
            backend: self.backend,
            buffer_size: self.receive_buffer_size,
            buffers: self.receive_buffers,
            socket_buffer: self.socket_buffer,
        }
    }
}

/// An append-only CSV file of samples; every row is flushed when written.
pub struct SampleLog {
    writer: csv::Writer<File>,
}

impl SampleLog {
    /// Creates (truncates) `path` and writes the header.
    pub fn create(path: &Path) -> io::Result<SampleLog> {
        let writer = csv::WriterBuilder::new()
            .has_headers(true)
            .from_path(path)
            .map_err(csv_to_io)?;
        Ok(SampleLog { writer })
    }

    /// Appends `sample` and flushes it to disk.
    pub fn append(&mut self, sample: &Sample) -> io::Result<()> {
        self.writer.serialize(sample).map_err(csv_to_io)?;
        self.writer.flush()
    }
}

/// Reads every sample of a CSV written by [`SampleLog`].
pub fn read_samples(path: &Path) -> io::Result<Vec<Sample>> {
    let mut reader = csv::Reader::from_path(path).map_err(csv_to_io)?;
    reader
        .deserialize()
        .collect::<Result<Vec<Sample>, _>>()
        .map_err(csv_to_io)
}

fn csv_to_io(error: csv::Error) -> io::Error {
    io::Error::other(error)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A clean sample of `setting` with the given p99 and msg/s; the other
    /// figures derived from them so tests can tell samples apart.
    pub(crate) fn sample(
        setting: Setting,
        repeat: usize,
        p99_us: f64,
        msgs_per_sec: f64,
    ) -> Sample {
        Sample {
            workload: "test".into(),
            repeat,
            backend: setting.backend,
            receive_buffer_size: setting.buffer_size,
            receive_buffers: setting.buffers,
            socket_buffer: setting.socket_buffer,
            msgs_per_sec,
            p50_us: p99_us / 4.0,
            p99_us,
            p99_9_us: p99_us * 2.0,
            max_us: p99_us * 3.0,
            cpu_us_per_msg: 10.0,
            rss_per_connection_bytes: 10_000.0,
            ring_bytes: setting.ring_bytes(),
            connections_open: 100,
            errors: 0,
            ring_ran_dry: false,
            loadgen_bound: false,
            load_average: Some(0.5),
        }
    }

    #[test]
    fn rows_survive_a_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let setting = Setting {
            backend: IoBackend::Uring,
            buffer_size: 256,
            buffers: 8,
            socket_buffer: None,
        };
        let mut with_socket = sample(setting, 1, 300.0, 2000.0);
        with_socket.socket_buffer = Some(65536);
        with_socket.ring_ran_dry = true;
        let rows = vec![sample(setting, 0, 250.0, 1000.0), with_socket];
        let mut log = SampleLog::create(&path).unwrap();
        log.append(&rows[0]).unwrap();
        // Flushed: readable before the log is dropped (as after a Ctrl-C).
        assert_eq!(read_samples(&path).unwrap(), rows[..1]);
        log.append(&rows[1]).unwrap();
        drop(log);
        assert_eq!(read_samples(&path).unwrap(), rows);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("workload,repeat,backend,receive_buffer_size"));
    }
}
