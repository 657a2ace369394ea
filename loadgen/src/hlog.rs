//! HdrHistogram interval logs: writing one while a run goes on, and
//! merging several.
//!
//! The log is the standard format read by the HdrHistogram tools
//! (`HistogramLogProcessor`, HdrHistogramVisualizer, the `hdrhistogram`
//! crate): the usual `#[...]` header with `StartTime` and `BaseTime`, the
//! CSV legend, then one line per measured second with the interval
//! histogram serialized as **V2 compressed** (deflate) and base64-encoded.
//! Values are round-trip latencies in **nanoseconds**. The untagged
//! histograms are the corrected latency (from the intended send time);
//! lines tagged `Tag=uncorrected` carry the latency from the actual send.
//! Warmup intervals are not written, so the log holds exactly what the
//! report measured. The header is written when the run starts and each
//! interval as soon as it closes ([`HlogWriter`]), so a long run can be
//! watched with `tail -f`, and an interrupted or crashed run still leaves
//! a valid log of everything up to its last complete interval.
//!
//! # Merging
//!
//! `loadgen merge A.hlog B.hlog ...` adds every interval histogram of every
//! file into one histogram and reports *its* percentiles. That is the only
//! correct way to combine runs (or the loads of several client machines):
//! **averaging percentiles is wrong**. The mean of two p99s is not the p99 of
//! anything: if one client saw 1% of its messages take 100 ms and the other
//! none, the combined p99 is at the edge of that slow 0.5% of all samples,
//! while the average of the p99s (~50 ms) corresponds to no sample at all.
//! Histograms add exactly; percentiles don't.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::report::{latency_header, latency_row, Latency, LatencyPair};
use crate::stats::new_histogram;

/// Tag of the uncorrected-latency histograms.
pub const TAG_UNCORRECTED: &str = "uncorrected";

/// One measured interval of a run.
#[derive(Debug, Clone)]
pub struct LogInterval {
    /// Start, relative to the log's StartTime/BaseTime.
    pub start: Duration,
    /// Length.
    pub length: Duration,
    /// Corrected latencies (ns).
    pub corrected: Histogram<u64>,
    /// Uncorrected latencies (ns).
    pub uncorrected: Histogram<u64>,
}

/// How the histogram lines are written: `Interval_Max` in ms, as the Java
/// `HistogramLogWriter` does.
fn line_format() -> IntervalLogWriterBuilder {
    let mut b = IntervalLogWriterBuilder::new();
    b.with_max_value_divisor(1e6);
    b
}

/// An interval log being written while the run goes on.
///
/// [`HlogWriter::create`] writes the whole header at once; each
/// [`HlogWriter::append`] writes one interval (its corrected and its
/// uncorrected line) with a single `write(2)`, straight to the file with no
/// user-space buffer. So `tail -f` shows each interval as it closes, and a
/// run that crashes or is killed leaves a log that ends after its last
/// complete interval, readable by every HdrHistogram tool.
pub struct HlogWriter {
    path: PathBuf,
    file: File,
    serializer: V2DeflateSerializer,
    line: Vec<u8>,
    /// Length of what `begin_log_with` writes before any histogram (the
    /// `#[MaxValueDivisor]` comment): part of the header, skipped on appends.
    preamble_len: usize,
}

impl std::fmt::Debug for HlogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlogWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl HlogWriter {
    /// Creates (or truncates) `path` and writes the header. `start` is the
    /// wall-clock time the interval starts are relative to; `description`
    /// goes into the header.
    pub fn create(path: &Path, start: SystemTime, description: &str) -> Result<HlogWriter> {
        let secs = start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let mut header: Vec<u8> = Vec::new();
        let _ = writeln!(
            header,
            "#[Logged with loadgen {}: {description}]",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(header, "#[Histogram log format version 1.3]");
        let _ = writeln!(
            header,
            "#[StartTime: {secs:.3} (seconds since epoch), {}]",
            humantime::format_rfc3339_millis(start)
        );
        let _ = writeln!(header, "#[BaseTime: {secs:.3} (seconds since epoch)]");
        let _ = writeln!(
            header,
            "#[Values: round-trip latency in ns. Untagged: corrected for coordinated omission \
             (from the intended send time). Tag={TAG_UNCORRECTED}: from the actual send time.]"
        );
        let _ = writeln!(
            header,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        );
        let mut serializer = V2DeflateSerializer::new();
        let before = header.len();
        line_format()
            .begin_log_with(&mut header, &mut serializer)
            .map_err(|e| hlog_error(path, e.to_string()))?;
        let preamble_len = header.len() - before;
        let mut file = File::create(path).map_err(|source| file_error(path, source))?;
        file.write_all(&header)
            .map_err(|source| file_error(path, source))?;
        Ok(HlogWriter {
            path: path.to_path_buf(),
            file,
            serializer,
            line: Vec::new(),
            preamble_len,
        })
    }

    /// Appends one interval: the corrected histogram untagged, then the
    /// uncorrected one tagged [`TAG_UNCORRECTED`].
    pub fn append(&mut self, iv: &LogInterval) -> Result<()> {
        self.line.clear();
        {
            let mut w = line_format()
                .begin_log_with(&mut self.line, &mut self.serializer)
                .map_err(|e| hlog_error(&self.path, e.to_string()))?;
            w.write_histogram(&iv.corrected, iv.start, iv.length, None)
                .map_err(|e| hlog_error(&self.path, e.to_string()))?;
            w.write_histogram(
                &iv.uncorrected,
                iv.start,
                iv.length,
                Tag::new(TAG_UNCORRECTED),
            )
            .map_err(|e| hlog_error(&self.path, e.to_string()))?;
        }
        self.file
            .write_all(&self.line[self.preamble_len..])
            .map_err(|source| file_error(&self.path, source))
    }
}

/// Writes a whole interval log at once (header and `intervals`) to `path`.
pub fn write_log(
    path: &Path,
    start: SystemTime,
    description: &str,
    intervals: &[LogInterval],
) -> Result<()> {
    let mut w = HlogWriter::create(path, start, description)?;
    intervals.iter().try_for_each(|iv| w.append(iv))
}

fn hlog_error(path: &Path, reason: String) -> Error {
    Error::Hlog {
        path: path.to_path_buf(),
        reason,
    }
}

fn file_error(path: &Path, source: std::io::Error) -> Error {
    Error::File {
        path: path.to_path_buf(),
        source,
    }
}

/// The histograms of one log, added up.
#[derive(Debug, Clone)]
pub struct LogTotals {
    /// Number of untagged (corrected) intervals.
    pub intervals: usize,
    /// Sum of the untagged histograms.
    pub corrected: Histogram<u64>,
    /// Sum of the `uncorrected` histograms.
    pub uncorrected: Histogram<u64>,
}

/// Reads an interval log and adds up its histograms (untagged ones and
/// `Tag=uncorrected` ones separately; other tags are ignored).
pub fn read_log(path: &Path) -> Result<LogTotals> {
    let hlog_err = |reason: String| Error::Hlog {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = fs::read(path).map_err(|source| Error::File {
        path: path.to_path_buf(),
        source,
    })?;
    let mut totals = LogTotals {
        intervals: 0,
        corrected: new_histogram(),
        uncorrected: new_histogram(),
    };
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| hlog_err(format!("{e:?}")))?;
        let LogEntry::Interval(iv) = entry else {
            continue;
        };
        let target = match iv.tag().map(|t| t.as_str()) {
            None => {
                totals.intervals += 1;
                &mut totals.corrected
            }
            Some(TAG_UNCORRECTED) => &mut totals.uncorrected,
            Some(_) => continue,
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(iv.encoded_histogram())
            .map_err(|e| hlog_err(format!("bad base64: {e}")))?;
        let h: Histogram<u64> = deserializer
            .deserialize(&mut raw.as_slice())
            .map_err(|e| hlog_err(format!("bad histogram: {e:?}")))?;
        target
            .add(&h)
            .map_err(|e| hlog_err(format!("cannot add histogram: {e:?}")))?;
    }
    if totals.intervals == 0 {
        return Err(hlog_err("no interval histograms in the log".into()));
    }
    Ok(totals)
}

/// One input file of a merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedFile {
    /// The file.
    pub path: PathBuf,
    /// Intervals it held.
    pub intervals: usize,
    /// Its own corrected percentiles.
    pub corrected: Latency,
}

/// The result of `loadgen merge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeReport {
    /// JSON schema version (same numbering as the run report).
    pub schema_version: u32,
    /// The inputs.
    pub files: Vec<MergedFile>,
    /// Percentiles of the sum of all histograms: the correct combined numbers.
    pub latency_us: LatencyPair,
    /// The mean of the files' corrected p99, shown only to warn: it is NOT a
    /// percentile of anything.
    pub mean_of_file_p99_us_do_not_use: f64,
}

/// Merges interval logs into one report.
pub fn merge(paths: &[PathBuf]) -> Result<MergeReport> {
    let mut corrected = new_histogram();
    let mut uncorrected = new_histogram();
    let mut files = Vec::new();
    for p in paths {
        let t = read_log(p)?;
        let add_err = |e| Error::Hlog {
            path: p.clone(),
            reason: format!("cannot add histogram: {e:?}"),
        };
        corrected.add(&t.corrected).map_err(add_err)?;
        uncorrected.add(&t.uncorrected).map_err(add_err)?;
        files.push(MergedFile {
            path: p.clone(),
            intervals: t.intervals,
            corrected: Latency::from_histogram(&t.corrected),
        });
    }
    let mean_p99 = files.iter().map(|f| f.corrected.p99).sum::<f64>() / files.len().max(1) as f64;
    Ok(MergeReport {
        schema_version: crate::report::SCHEMA_VERSION,
        files,
        latency_us: LatencyPair {
            corrected: Latency::from_histogram(&corrected),
            uncorrected: Latency::from_histogram(&uncorrected),
        },
        mean_of_file_p99_us_do_not_use: (mean_p99 * 10.0).round() / 10.0,
    })
}

impl std::fmt::Display for MergeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut o = String::new();
        o.push_str("merged interval logs (histograms added, percentiles of the sum):\n");
        for file in &self.files {
            o.push_str(&format!(
                "  {}  {} intervals, {} samples\n",
                file.path.display(),
                file.intervals,
                file.corrected.count
            ));
        }
        latency_header(&mut o, "latency (us)");
        latency_row(&mut o, "corrected", &self.latency_us.corrected);
        latency_row(&mut o, "uncorrected", &self.latency_us.uncorrected);
        o.push_str(&format!(
            "  samples      {}\n  note: the mean of the files' p99s would be {:.1} us; averaging \
             percentiles is wrong, use the merged p99 above.",
            self.latency_us.corrected.count, self.mean_of_file_p99_us_do_not_use
        ));
        f.write_str(&o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(values: &[u64], start_s: u64) -> LogInterval {
        let mut c = new_histogram();
        let mut u = new_histogram();
        for &v in values {
            c.record(v).unwrap();
            u.record(v / 2 + 1).unwrap();
        }
        LogInterval {
            start: Duration::from_secs(start_s),
            length: Duration::from_secs(1),
            corrected: c,
            uncorrected: u,
        }
    }

    #[test]
    fn merge_equals_one_combined_histogram() {
        let dir = std::env::temp_dir().join(format!("loadgen-hlog-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let a_vals: Vec<u64> = (1..=5000).map(|i| i * 1_000).collect();
        let b_vals: Vec<u64> = (1..=100).map(|i| 50_000_000 + i * 10_000).collect();
        let a = dir.join("a.hlog");
        let b = dir.join("b.hlog");
        write_log(
            &a,
            SystemTime::now(),
            "test a",
            &[interval(&a_vals[..2500], 0), interval(&a_vals[2500..], 1)],
        )
        .unwrap();
        write_log(&b, SystemTime::now(), "test b", &[interval(&b_vals, 0)]).unwrap();
        let text = fs::read_to_string(&a).unwrap();
        assert!(text.contains("#[StartTime: "));
        assert!(text.contains("\"StartTimestamp\",\"Interval_Length\""));
        assert!(text.contains("Tag=uncorrected,"));
        assert!(text.contains(",HISTFAAA"), "V2 compressed histograms");

        let m = merge(&[a, b]).unwrap();
        let mut all = new_histogram();
        for v in a_vals.iter().chain(&b_vals) {
            all.record(*v).unwrap();
        }
        assert_eq!(m.latency_us.corrected, Latency::from_histogram(&all));
        assert_eq!(m.files[0].intervals, 2);
        // The averaged p99 (~27 ms) is far from the true one (~50 ms: the
        // slowest 2% of all samples are b's).
        assert!(m.mean_of_file_p99_us_do_not_use < 0.6 * m.latency_us.corrected.p99);
        fs::remove_dir_all(&dir).unwrap();
    }
}
