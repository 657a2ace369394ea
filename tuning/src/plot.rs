//! The three SVG plots of a sweep, drawn with plotters: p99, throughput and
//! memory per connection against the receive-buffer size (log2 axis), one
//! line per backend (and ring count, socket buffers).
//!
//! The p99 plot has a log y axis (tails span orders of magnitude, and one
//! stalled repeat must not flatten every line) and shows each setting's
//! lowest and highest repeat as a whisker, the rule's tolerance limit as a dashed line, and the recommended
//! point circled. The memory plot shows the measured RSS per connection as
//! solid lines and, dashed, the receive ring's fixed cost spread over the
//! workload's connections (size x count / connections per worker).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use bench::log_axis::log_label;
use ringecho::IoBackend;

use crate::plan::{human_bytes, Series};
use crate::summary::Summary;

/// What the p99 plot marks besides the lines.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Marks {
    /// best p99 x (1 + tolerance), us.
    pub tolerance_limit_us: Option<f64>,
    /// The recommended point: buffer size and p99, us.
    pub chosen: Option<(usize, f64)>,
}

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
#[error("plot {path}: {detail}")]
pub struct PlotError {
    /// The file being written.
    pub path: PathBuf,
    /// What went wrong.
    pub detail: String,
}

/// One metric of a summary, for the y axis.
struct Metric {
    /// Whether the y axis is logarithmic.
    log_y: bool,
    file_suffix: &'static str,
    title: &'static str,
    y_label: &'static str,
    value: fn(&Summary) -> f64,
}

const P99: Metric = Metric {
    log_y: true,
    file_suffix: "p99",
    title: "p99 round trip",
    y_label: "p99 (us, corrected)",
    value: |s| s.p99_us,
};
const THROUGHPUT: Metric = Metric {
    log_y: false,
    file_suffix: "throughput",
    title: "throughput",
    y_label: "echoed messages per second",
    value: |s| s.msgs_per_sec,
};
const MEMORY: Metric = Metric {
    log_y: false,
    file_suffix: "memory",
    title: "server memory per connection",
    y_label: "KiB per connection",
    value: |s| s.rss_per_connection_bytes / 1024.0,
};

/// The plots' paths: `<dir>/<name>-p99.svg`, `-throughput.svg` and `-memory.svg`.
pub fn paths(dir: &Path, name: &str) -> Vec<PathBuf> {
    METRICS
        .iter()
        .map(|metric| plot_path(dir, name, metric))
        .collect()
}

const METRICS: [&Metric; 3] = [&P99, &THROUGHPUT, &MEMORY];

fn plot_path(dir: &Path, name: &str, metric: &Metric) -> PathBuf {
    dir.join(format!("{name}-{}.svg", metric.file_suffix))
}

/// Writes the plots ([`paths`]) and returns their paths.
pub fn write_plots(
    dir: &Path,
    name: &str,
    summaries: &[Summary],
    connections: usize,
    marks: Marks,
) -> Result<Vec<PathBuf>, PlotError> {
    let mut paths = Vec::new();
    for metric in METRICS {
        let path = plot_path(dir, name, metric);
        draw(&path, name, metric, summaries, connections, marks).map_err(|detail| PlotError {
            path: path.clone(),
            detail,
        })?;
        paths.push(path);
    }
    Ok(paths)
}

/// The summaries of each line, sorted by buffer size.
fn lines(summaries: &[Summary]) -> BTreeMap<Series, Vec<&Summary>> {
    let mut lines: BTreeMap<Series, Vec<&Summary>> = BTreeMap::new();
    for summary in summaries {
        lines
            .entry(summary.setting.series())
            .or_default()
            .push(summary);
    }
    for line in lines.values_mut() {
        line.sort_by_key(|s| s.setting.buffer_size);
    }
    lines
}

fn colour(index: usize, backend: IoBackend) -> RGBColor {
    const URING: [RGBColor; 4] = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(23, 190, 207),
    ];
    const EPOLL: [RGBColor; 2] = [RGBColor(214, 39, 40), RGBColor(255, 127, 14)];
    match backend {
        IoBackend::Uring => URING[index % URING.len()],
        IoBackend::Epoll => EPOLL[index % EPOLL.len()],
    }
}

fn draw(
    path: &Path,
    name: &str,
    metric: &Metric,
    summaries: &[Summary],
    connections: usize,
    marks: Marks,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let lines = lines(summaries);
    // On a log axis, y is log10 of the value (and labelled with the value).
    let y_of = |v: f64| if metric.log_y { v.log10() } else { v };
    let finite = |v: f64| {
        let y = y_of(v);
        (v.is_finite() && y.is_finite()).then_some(y)
    };
    // x is log2 of the buffer size, so every swept power of two gets a label.
    let x_of = |s: &Summary| (s.setting.buffer_size as f64).log2();
    let x_min = summaries.iter().map(x_of).fold(f64::INFINITY, f64::min);
    let x_max = summaries.iter().map(x_of).fold(f64::NEG_INFINITY, f64::max);
    if !x_min.is_finite() {
        return Err("nothing measured".into());
    }
    let (x_lo, x_hi) = (x_min - 0.4, x_max + 0.4);
    let is_p99 = std::ptr::eq(metric, &P99);
    let is_memory = std::ptr::eq(metric, &MEMORY);
    let ring_kib = |s: &Summary| s.ring_bytes as f64 / connections.max(1) as f64 / 1024.0;
    let mut y_values: Vec<f64> = summaries
        .iter()
        .filter_map(|s| finite((metric.value)(s)))
        .collect();
    if is_p99 {
        y_values.extend(summaries.iter().filter_map(|s| finite(s.p99_range_us.0)));
        y_values.extend(summaries.iter().filter_map(|s| finite(s.p99_range_us.1)));
        y_values.extend(marks.tolerance_limit_us.and_then(finite));
    }
    if is_memory {
        y_values.extend(summaries.iter().map(ring_kib));
    }
    let highest = y_values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lowest = y_values.iter().copied().fold(f64::INFINITY, f64::min);
    if !highest.is_finite() {
        return Err("no finite value to plot".into());
    }
    // Headroom above the highest point for the legend in the upper right.
    let (y_min, y_max) = if metric.log_y {
        (lowest - 0.15, highest + 0.5 + 0.15 * lines.len() as f64)
    } else {
        (lowest.min(0.0) * 1.1, highest.max(1e-9) * 1.4)
    };

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{name}: {} vs receive buffer size", metric.title),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(x_lo..x_hi, y_min..y_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("--receive-buffer-size (log scale)")
        .y_desc(metric.y_label)
        .y_labels(if metric.log_y { 40 } else { 10 })
        .y_label_formatter(&|y| {
            if metric.log_y {
                log_label(*y)
            } else if y.abs() >= 100.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        })
        .x_labels((x_max - x_min) as usize + 3)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 0.01 && *x >= 0.0 {
                human_bytes(2f64.powf(x.round()) as usize)
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(|e| err(&e))?;

    let (mut uring_index, mut epoll_index) = (0, 0);
    for (series, line) in &lines {
        let index = match series.backend {
            IoBackend::Uring => {
                uring_index += 1;
                uring_index - 1
            }
            IoBackend::Epoll => {
                epoll_index += 1;
                epoll_index - 1
            }
        };
        let colour = colour(index, series.backend);
        let points: Vec<(f64, f64)> = line
            .iter()
            .filter_map(|s| Some((x_of(s), finite((metric.value)(s))?)))
            .collect();
        let label = if is_memory {
            format!("{series}: measured RSS")
        } else {
            series.to_string()
        };
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| err(&e))?;
        if is_p99 {
            chart
                .draw_series(line.iter().filter(|s| s.repeats > 1).map(|s| {
                    ErrorBar::new_vertical(
                        x_of(s),
                        y_of(s.p99_range_us.0),
                        y_of(s.p99_us),
                        y_of(s.p99_range_us.1),
                        colour.stroke_width(1),
                        6,
                    )
                }))
                .map_err(|e| err(&e))?;
        }
        if is_memory && series.backend.uses_receive_ring() {
            let ring: Vec<(f64, f64)> = line.iter().map(|s| (x_of(s), ring_kib(s))).collect();
            chart
                .draw_series(DashedLineSeries::new(ring, 6, 4, colour.stroke_width(1)))
                .map_err(|e| err(&e))?
                .label(format!(
                    "{series}: ring size x count / {connections} connections"
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 6, y)], colour.stroke_width(1))
                });
        }
    }
    if is_p99 {
        if let Some(limit) = marks.tolerance_limit_us {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x_lo, y_of(limit)), (x_hi, y_of(limit))],
                    8,
                    5,
                    BLACK.stroke_width(1),
                ))
                .map_err(|e| err(&e))?
                .label("best p99 + tolerance")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], BLACK.stroke_width(1)));
        }
        if let Some((size, p99)) = marks.chosen {
            chart
                .draw_series(std::iter::once(Circle::new(
                    ((size as f64).log2(), y_of(p99)),
                    9,
                    BLACK.stroke_width(2),
                )))
                .map_err(|e| err(&e))?
                .label("recommended")
                .legend(|(x, y)| Circle::new((x + 6, y), 5, BLACK.stroke_width(2)));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(if is_memory {
            // The ring's cost rises to the right; the left is free.
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::UpperRight
        })
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Setting;

    fn summary(backend: IoBackend, size: usize, p99: f64) -> Summary {
        let setting = Setting {
            backend,
            buffer_size: size,
            buffers: 128,
            socket_buffer: None,
        };
        Summary {
            setting,
            repeats: 3,
            msgs_per_sec: 25_000.0,
            p50_us: p99 / 3.0,
            p99_us: p99,
            p99_9_us: p99 * 2.0,
            p99_range_us: (p99 * 0.9, p99 * 1.1),
            msgs_range: (25_000.0, 25_000.0),
            cpu_us_per_msg: 10.0,
            cpu_range_us: (10.0, 10.0),
            rss_per_connection_bytes: 9_000.0,
            rss_range: (9_000.0, 9_000.0),
            ring_bytes: setting.ring_bytes(),
            errors: 0,
            ran_dry: 0,
            loadgen_bound: 0,
        }
    }

    #[test]
    fn writes_three_svgs_with_one_line_per_backend() {
        let dir = tempfile::tempdir().unwrap();
        let summaries = vec![
            summary(IoBackend::Uring, 256, 500.0),
            summary(IoBackend::Uring, 1024, 300.0),
            summary(IoBackend::Epoll, 256, 320.0),
            summary(IoBackend::Epoll, 1024, 310.0),
        ];
        let marks = Marks {
            tolerance_limit_us: Some(330.0),
            chosen: Some((1024, 300.0)),
        };
        let paths = write_plots(dir.path(), "game", &summaries, 200, marks).unwrap();
        assert_eq!(paths.len(), 3);
        let p99 = std::fs::read_to_string(&paths[0]).unwrap();
        assert!(p99.starts_with("<svg"), "{}", &p99[..80.min(p99.len())]);
        assert!(p99.contains("uring x128 buffers"));
        assert!(p99.contains("epoll (ring knobs unused)"));
        assert!(p99.contains("recommended"));
        assert!(p99.contains("1KiB"), "x axis labels are sizes");
        let memory = std::fs::read_to_string(&paths[2]).unwrap();
        assert!(memory.contains("ring size x count / 200 connections"));
        assert!(paths[1].ends_with("game-throughput.svg"));
    }
}
