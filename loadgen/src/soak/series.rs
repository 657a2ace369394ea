//! The soak's time series: one [`Row`] per interval, all workers added up,
//! written to CSV as each interval ends (so `tail -f` works and a crash
//! leaves the rows so far) and kept for the JSON report.

use std::fs::File;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::soak::mix::{BURST, LOBBY, PLAYER};
use crate::soak::stats::{SoakInterval, SoakPhase};

/// One interval of the soak. Latencies are corrected round trips in
/// microseconds, empty when the class had no echo in the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// End of the interval, seconds since the soak started.
    pub t_s: f64,
    /// `ramp`, `hold` or `drain`.
    pub phase: String,
    /// WebSockets open at the end of the interval.
    pub open: u64,
    /// Handshakes completed in the interval.
    pub opened: u64,
    /// Closes started in the interval (churn, or the drain).
    pub closes: u64,
    /// Closes that ended cleanly in the interval.
    pub closed_clean: u64,
    /// Connections that ended without a clean close.
    pub unexpected_closes: u64,
    /// Connects or handshakes that failed.
    pub connect_failures: u64,
    /// Messages sent.
    pub sent: u64,
    /// Correct echoes received.
    pub echoes: u64,
    /// Correct echoes per second.
    pub echoes_per_sec: f64,
    /// Messages whose echo never came.
    pub lost: u64,
    /// Echoes that came back wrong (length, order, content, protocol).
    pub corrupted: u64,
    /// Player p50.
    pub player_p50_us: Option<f64>,
    /// Player p99.
    pub player_p99_us: Option<f64>,
    /// Player max.
    pub player_max_us: Option<f64>,
    /// Burst-message p99.
    pub burst_p99_us: Option<f64>,
    /// Burst-message max.
    pub burst_max_us: Option<f64>,
    /// Lobby p99.
    pub lobby_p99_us: Option<f64>,
    /// Lobby max.
    pub lobby_max_us: Option<f64>,
}

fn us(h: &Histogram<u64>, q: Option<f64>) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    let ns = match q {
        Some(q) => h.value_at_quantile(q),
        None => h.max(),
    };
    Some((ns as f64 / 100.0).round() / 10.0)
}

impl Row {
    /// The row of an interval (all workers added) of `len_s` seconds
    /// ending `t_s` seconds into the soak.
    pub fn from_interval(iv: &SoakInterval, phase: SoakPhase, t_s: f64, len_s: f64) -> Row {
        let c = &iv.classes;
        Row {
            t_s: (t_s * 1000.0).round() / 1000.0,
            phase: phase.name().into(),
            open: iv.open_total(),
            opened: iv.opened_total(),
            closes: iv.closes,
            closed_clean: iv.closed_clean,
            unexpected_closes: iv.unexpected.total(),
            connect_failures: iv.connect_failures_total(),
            sent: iv.sent_total(),
            echoes: iv.echoes_total(),
            echoes_per_sec: (iv.echoes_total() as f64 / len_s.max(1e-9)).round(),
            lost: iv.lost_total(),
            corrupted: iv.corrupted_total(),
            player_p50_us: us(&c[PLAYER].corrected, Some(0.5)),
            player_p99_us: us(&c[PLAYER].corrected, Some(0.99)),
            player_max_us: us(&c[PLAYER].corrected, None),
            burst_p99_us: us(&c[BURST].corrected, Some(0.99)),
            burst_max_us: us(&c[BURST].corrected, None),
            lobby_p99_us: us(&c[LOBBY].corrected, Some(0.99)),
            lobby_max_us: us(&c[LOBBY].corrected, None),
        }
    }

    /// The live line: time, phase, connections, churn, rate, p99s, problems.
    pub fn live_line(&self) -> String {
        let ms = |v: Option<f64>| match v {
            Some(us) if us >= 10_000.0 => format!("{:.0} ms", us / 1000.0),
            Some(us) if us >= 1000.0 => format!("{:.1} ms", us / 1000.0),
            Some(us) => format!("{us:.0} us"),
            None => "-".into(),
        };
        format!(
            "{:>7.1}s {:<5} conns {:>6} +{:<4} -{:<4} {:>7} echo/s  p99 player {} burst {} lobby {}  \
             lost {} bad {} unexpected {} failed {}",
            self.t_s,
            self.phase,
            self.open,
            self.opened,
            self.closes,
            self.echoes_per_sec,
            ms(self.player_p99_us),
            ms(self.burst_p99_us),
            ms(self.lobby_p99_us),
            self.lost,
            self.corrupted,
            self.unexpected_closes,
            self.connect_failures,
        )
    }
}

/// Appends rows to a CSV file as they come, flushed after each.
#[derive(Debug)]
pub struct CsvSink {
    path: PathBuf,
    writer: csv::Writer<File>,
}

impl CsvSink {
    /// Creates (truncates) the file now, so a bad path fails before the load.
    pub fn create(path: &Path) -> Result<CsvSink> {
        let writer = csv::Writer::from_path(path).map_err(|e| csv_error(path, e))?;
        Ok(CsvSink {
            path: path.to_path_buf(),
            writer,
        })
    }

    /// Writes one row and flushes it.
    pub fn append(&mut self, row: &Row) -> Result<()> {
        self.writer
            .serialize(row)
            .map_err(|e| csv_error(&self.path, e))?;
        // Flushes csv's buffer and the file, so readers see the row at once.
        self.writer.flush().map_err(|source| Error::File {
            path: self.path.clone(),
            source,
        })
    }
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    Error::File {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    }
}

/// Reads a CSV time series written by [`CsvSink`].
pub fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
    reader
        .deserialize()
        .collect::<std::result::Result<Vec<Row>, _>>()
        .map_err(|e| csv_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_csv() {
        let mut iv = SoakInterval::default();
        iv.classes[PLAYER].corrected.record(250_000).unwrap();
        iv.classes[PLAYER].messages = 1;
        iv.classes[LOBBY].open_now = 9;
        iv.lost[BURST] = 2;
        let row = Row::from_interval(&iv, SoakPhase::Hold, 12.0, 1.0);
        assert_eq!(row.open, 9);
        assert_eq!(row.lost, 2);
        assert!(row.player_p99_us.is_some_and(|us| (us - 250.0).abs() < 0.5));
        assert_eq!(row.burst_p99_us, None);
        assert!(row.live_line().contains("lost 2"));

        let dir = std::env::temp_dir().join(format!("soak-series-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.csv");
        let mut sink = CsvSink::create(&path).unwrap();
        sink.append(&row).unwrap();
        sink.append(&row).unwrap();
        let back = read_csv(&path).unwrap();
        assert_eq!(back, vec![row.clone(), row]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
