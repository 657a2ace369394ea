//! One SVG bar chart per published closed-loop case (msg/s per server, the
//! medians), in the spirit of the fastwebsockets README charts.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One bar: a label and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Server label under the bar.
    pub label: String,
    /// msg/s (the median).
    pub value: f64,
}

const COLORS: [RGBColor; 4] = [
    RGBColor(0xd6, 0x45, 0x1b), // ringecho io_uring
    RGBColor(0xf0, 0x9a, 0x5a), // ringecho epoll
    RGBColor(0x3b, 0x6e, 0xa8), // fastwebsockets
    RGBColor(0x7f, 0x8c, 0x8d), // tokio-tungstenite
];

/// Draws a bar chart of `bars` to `path` (SVG, 720 x 420).
pub fn bar_chart(path: &Path, title: &str, y_label: &str, bars: &[Bar]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1.0) * 1.15;
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .y_desc(y_label)
        .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                bars.get(i as usize)
                    .map(|b| b.label.clone())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()?;
    let value_style =
        TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (i, bar) in bars.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let x = i as f64;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x - 0.35, 0.0), (x + 0.35, bar.value)],
            color.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{:.0}k", bar.value / 1000.0),
            (x, bar.value + top * 0.01),
            value_style.clone(),
        )))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_label() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        let bars = vec![
            Bar {
                label: "ringecho io_uring".into(),
                value: 150_000.0,
            },
            Bar {
                label: "fastwebsockets".into(),
                value: 120_000.0,
            },
        ];
        bar_chart(&path, "200 x 16 KiB", "msg/s", &bars).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        for text in [
            "200 x 16 KiB",
            "ringecho io_uring",
            "fastwebsockets",
            "150k",
            "120k",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
    }
}
