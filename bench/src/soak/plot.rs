//! The soak's plots over time, drawn with plotters as SVG like the tuning
//! plots: engine RSS, open fds, connections and p99, one line (or three,
//! for p99) per backend.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use loadgen::soak::series::Row;

use crate::log_axis::log_label;
use crate::soak::sample::Sample;

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
#[error("plot {path}: {detail}")]
pub struct PlotError {
    /// The file being written.
    pub path: PathBuf,
    /// What went wrong.
    pub detail: String,
}

/// One backend's data for the plots.
#[derive(Debug, Clone, Copy)]
pub struct BackendSeries<'a> {
    /// `uring` or `epoll`.
    pub backend: &'a str,
    /// The runner's samples of the engine.
    pub samples: &'a [Sample],
    /// loadgen's intervals.
    pub rows: &'a [Row],
    /// The RSS window (seconds since loadgen started), marked on the RSS plot.
    pub rss_window: Option<(f64, f64)>,
    /// Engine fds before the load, drawn as a dashed line.
    pub fds_before: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stroke {
    Solid,
    Dashed,
    Dotted,
}

/// A per-class figure of a loadgen row.
type RowValue = fn(&Row) -> Option<f64>;

struct Line {
    label: String,
    colour: RGBColor,
    stroke: Stroke,
    points: Vec<(f64, f64)>,
}

struct Chart {
    title: String,
    y_label: &'static str,
    log_y: bool,
    lines: Vec<Line>,
}

fn colour(index: usize, shade: usize) -> RGBColor {
    // Blues for the first backend (uring), reds for the second (epoll).
    const PALETTE: [[RGBColor; 3]; 2] = [
        [
            RGBColor(31, 119, 180),
            RGBColor(23, 190, 207),
            RGBColor(148, 103, 189),
        ],
        [
            RGBColor(214, 39, 40),
            RGBColor(255, 127, 14),
            RGBColor(140, 86, 75),
        ],
    ];
    PALETTE[index % 2][shade % 3]
}

/// Writes `rss.svg`, `fds.svg`, `connections.svg` and `p99.svg` into
/// `dir` and returns their paths.
pub fn write_plots(
    dir: &Path,
    title: &str,
    runs: &[BackendSeries<'_>],
) -> Result<Vec<PathBuf>, PlotError> {
    let mib = |b: u64| b as f64 / 1048576.0;
    let mut rss = Chart {
        title: format!("{title}: engine RSS"),
        y_label: "RSS (MiB)",
        log_y: false,
        lines: Vec::new(),
    };
    let mut fds = Chart {
        title: format!("{title}: engine open file descriptors"),
        y_label: "open fds",
        log_y: false,
        lines: Vec::new(),
    };
    let mut conns = Chart {
        title: format!("{title}: WebSockets open"),
        y_label: "connections",
        log_y: false,
        lines: Vec::new(),
    };
    let mut p99 = Chart {
        title: format!("{title}: p99 round trip per second (corrected)"),
        y_label: "p99 (us)",
        log_y: true,
        lines: Vec::new(),
    };
    for (i, run) in runs.iter().enumerate() {
        let b = run.backend;
        rss.lines.push(Line {
            label: b.to_string(),
            colour: colour(i, 0),
            stroke: Stroke::Solid,
            points: run
                .samples
                .iter()
                .map(|s| (s.t_s, mib(s.rss_bytes)))
                .collect(),
        });
        if let Some((from, to)) = run.rss_window {
            let inside: Vec<(f64, f64)> = run
                .samples
                .iter()
                .filter(|s| s.t_s >= from && s.t_s <= to)
                .map(|s| (s.t_s, mib(s.rss_bytes)))
                .collect();
            if let (Some(first), Some(last)) = (inside.first(), inside.last()) {
                rss.lines.push(Line {
                    label: format!("{b}: window for the 2% check"),
                    colour: colour(i, 1),
                    stroke: Stroke::Dashed,
                    points: vec![(first.0, first.1), (last.0, first.1)],
                });
            }
        }
        fds.lines.push(Line {
            label: b.to_string(),
            colour: colour(i, 0),
            stroke: Stroke::Solid,
            points: run.samples.iter().map(|s| (s.t_s, s.fds as f64)).collect(),
        });
        if let (Some(first), Some(last)) = (run.samples.first(), run.samples.last()) {
            fds.lines.push(Line {
                label: format!("{b}: before the load ({})", run.fds_before),
                colour: colour(i, 1),
                stroke: Stroke::Dashed,
                points: vec![
                    (first.t_s, run.fds_before as f64),
                    (last.t_s, run.fds_before as f64),
                ],
            });
        }
        conns.lines.push(Line {
            label: format!("{b}: engine gauge (/metrics)"),
            colour: colour(i, 0),
            stroke: Stroke::Solid,
            points: run
                .samples
                .iter()
                .filter_map(|s| Some((s.t_s, s.connections? as f64)))
                .collect(),
        });
        conns.lines.push(Line {
            label: format!("{b}: open at loadgen"),
            colour: colour(i, 1),
            stroke: Stroke::Dashed,
            points: run.rows.iter().map(|r| (r.t_s, r.open as f64)).collect(),
        });
        let classes: [(&str, RowValue, Stroke); 3] = [
            ("player", |r| r.player_p99_us, Stroke::Solid),
            ("lobby", |r| r.lobby_p99_us, Stroke::Dashed),
            ("burst", |r| r.burst_p99_us, Stroke::Dotted),
        ];
        for (shade, (class, value, stroke)) in classes.into_iter().enumerate() {
            p99.lines.push(Line {
                label: format!("{b}: {class}"),
                colour: colour(i, shade),
                stroke,
                points: run
                    .rows
                    .iter()
                    .filter_map(|r| Some((r.t_s, value(r)?)))
                    .collect(),
            });
        }
    }
    let mut paths = Vec::new();
    for (name, chart) in [
        ("rss", &rss),
        ("fds", &fds),
        ("connections", &conns),
        ("p99", &p99),
    ] {
        let path = dir.join(format!("{name}.svg"));
        draw(&path, chart).map_err(|detail| PlotError {
            path: path.clone(),
            detail,
        })?;
        paths.push(path);
    }
    Ok(paths)
}

fn draw(path: &Path, chart: &Chart) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let y_of = |v: f64| if chart.log_y { v.max(1.0).log10() } else { v };
    let all = || chart.lines.iter().flat_map(|l| l.points.iter());
    let x_max = all().map(|p| p.0).fold(0.0, f64::max);
    let y_hi = all().map(|p| y_of(p.1)).fold(f64::NEG_INFINITY, f64::max);
    let y_lo = all().map(|p| y_of(p.1)).fold(f64::INFINITY, f64::min);
    if !y_hi.is_finite() {
        return Err("nothing to plot".into());
    }
    let minutes = x_max > 180.0;
    let x_scale = if minutes { 60.0 } else { 1.0 };
    let (y_min, y_max) = if chart.log_y {
        (y_lo.floor(), y_hi + 0.3 + 0.12 * chart.lines.len() as f64)
    } else {
        (
            0.0,
            y_hi.max(1e-9) * (1.15 + 0.05 * chart.lines.len() as f64),
        )
    };
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut c = ChartBuilder::on(&root)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..(x_max / x_scale).max(1e-9), y_min..y_max)
        .map_err(|e| err(&e))?;
    let log_y = chart.log_y;
    c.configure_mesh()
        .light_line_style(WHITE)
        .x_desc(if minutes {
            "minutes since the soak started"
        } else {
            "seconds since the soak started"
        })
        .y_desc(chart.y_label)
        .y_labels(if log_y { 40 } else { 10 })
        .y_label_formatter(&|y| {
            if log_y {
                log_label(*y)
            } else if y.abs() >= 100.0 {
                format!("{y:.0}")
            } else {
                format!("{y:.1}")
            }
        })
        .draw()
        .map_err(|e| err(&e))?;
    for line in &chart.lines {
        if line.points.is_empty() {
            continue;
        }
        let points: Vec<(f64, f64)> = line
            .points
            .iter()
            .map(|&(x, y)| (x / x_scale, y_of(y)))
            .collect();
        let style = line
            .colour
            .stroke_width(if line.stroke == Stroke::Solid { 2 } else { 1 });
        let colour = line.colour;
        let drawn = match line.stroke {
            Stroke::Solid => c.draw_series(LineSeries::new(points, style)),
            Stroke::Dashed => c.draw_series(DashedLineSeries::new(points, 8, 5, style)),
            Stroke::Dotted => c.draw_series(DashedLineSeries::new(points, 2, 4, style)),
        }
        .map_err(|e| err(&e))?;
        let dash = match line.stroke {
            Stroke::Solid => 18,
            Stroke::Dashed => 8,
            Stroke::Dotted => 3,
        };
        drawn.label(line.label.clone()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + dash, y)], colour.stroke_width(2))
        });
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t_s: f64, open: u64, p99: f64) -> Row {
        Row {
            t_s,
            phase: "hold".into(),
            open,
            opened: 1,
            closes: 1,
            closed_clean: 1,
            unexpected_closes: 0,
            connect_failures: 0,
            sent: 10,
            echoes: 10,
            echoes_per_sec: 10.0,
            lost: 0,
            corrupted: 0,
            player_p50_us: Some(p99 / 2.0),
            player_p99_us: Some(p99),
            player_max_us: Some(p99 * 2.0),
            burst_p99_us: None,
            burst_max_us: None,
            lobby_p99_us: Some(p99 * 3.0),
            lobby_max_us: Some(p99 * 4.0),
        }
    }

    #[test]
    fn writes_four_svgs_with_a_line_per_backend() {
        let samples: Vec<Sample> = (0..20)
            .map(|t| Sample {
                engine_cpu_pct: Some(30.0),
                loadgen_cpu_pct: Some(20.0),
                ..Sample::new(t as f64, 40 << 20, 1000 + t, Some(1000))
            })
            .collect();
        let rows: Vec<Row> = (0..20).map(|t| row(t as f64, 1000, 300.0)).collect();
        let runs = [
            BackendSeries {
                backend: "uring",
                samples: &samples,
                rows: &rows,
                rss_window: Some((4.0, 19.0)),
                fds_before: 12,
            },
            BackendSeries {
                backend: "epoll",
                samples: &samples,
                rows: &rows,
                rss_window: None,
                fds_before: 9,
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let paths = write_plots(dir.path(), "soak", &runs).unwrap();
        assert_eq!(paths.len(), 4);
        let p99 = std::fs::read_to_string(dir.path().join("p99.svg")).unwrap();
        assert!(p99.starts_with("<svg"));
        for label in [
            "uring: player",
            "epoll: player",
            "uring: lobby",
            "epoll: lobby",
        ] {
            assert!(p99.contains(label), "{label}");
        }
        assert!(!p99.contains("burst"), "a class without echoes has no line");
        let fds = std::fs::read_to_string(dir.path().join("fds.svg")).unwrap();
        assert!(fds.contains("before the load (12)"));
        assert!(std::fs::read_to_string(dir.path().join("rss.svg"))
            .unwrap()
            .contains("window for the 2% check"));
    }
}
