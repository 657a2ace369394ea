//! Every file a measurement writes into `results/` names the commit it
//! describes. The Markdown reports say so in their header; the data files
//! beside them (CSV rows, SVG charts, JSON summaries) are stamped here after
//! they are written, so a file that travels alone still says where it came
//! from: a `commit` column in a CSV, a caption line in an SVG, a `commit`
//! field in JSON.

use std::io;
use std::path::Path;

/// Stamps each file by its extension (`.csv`, `.svg`, `.json`; others are
/// left alone) with `commit` (for example `abc1234` or `abc1234+uncommitted`).
pub fn stamp_files<'a>(paths: impl IntoIterator<Item = &'a Path>, commit: &str) -> io::Result<()> {
    for path in paths {
        let stamped = match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => stamp_csv(&std::fs::read_to_string(path)?, commit),
            Some("svg") => stamp_svg(&std::fs::read_to_string(path)?, commit),
            Some("json") => stamp_json(&std::fs::read_to_string(path)?, commit)?,
            _ => continue,
        };
        std::fs::write(path, stamped)?;
    }
    Ok(())
}

/// A `commit` column at the end of every row (the header names it). The
/// files stamped here hold numbers and plain names, one record per line.
pub fn stamp_csv(text: &str, commit: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.lines().count() * (commit.len() + 2));
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        if i == 0 && line.split(',').any(|field| field == "commit") {
            return text.to_string(); // stamped already
        }
        out.push_str(line);
        out.push(',');
        out.push_str(if i == 0 { "commit" } else { commit });
        out.push('\n');
    }
    out
}

/// A small grey caption `ringecho COMMIT` in the chart's bottom-left corner.
pub fn stamp_svg(text: &str, commit: &str) -> String {
    let caption = format!("ringecho {commit}");
    if text.contains(&caption) {
        return text.to_string();
    }
    let height = svg_height(text).unwrap_or(20.0);
    let label = format!(
        "<text x=\"4\" y=\"{:.0}\" font-family=\"sans-serif\" font-size=\"10\" \
         fill=\"#808080\">{caption}</text>\n",
        (height - 4.0).max(10.0)
    );
    match text.rfind("</svg>") {
        Some(end) => format!("{}{label}{}", &text[..end], &text[end..]),
        None => text.to_string(),
    }
}

fn svg_height(text: &str) -> Option<f64> {
    let svg = &text[text.find("<svg")?..];
    let rest = &svg[svg.find("height=\"")? + 8..];
    rest[..rest.find('"')?].trim_end_matches("px").parse().ok()
}

/// A `commit` field in the JSON object, or in each object of a JSON array.
pub fn stamp_json(text: &str, commit: &str) -> io::Result<String> {
    let mut value: serde_json::Value = serde_json::from_str(text).map_err(io::Error::other)?;
    let stamp = |v: &mut serde_json::Value| {
        if let Some(object) = v.as_object_mut() {
            object.insert("commit".into(), commit.into());
        }
    };
    match &mut value {
        serde_json::Value::Array(items) => items.iter_mut().for_each(stamp),
        other => stamp(other),
    }
    Ok(serde_json::to_string_pretty(&value).map_err(io::Error::other)? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_gets_a_commit_column_once() {
        let csv = "a,b\n1,2\n3,\"x,y\"\n";
        let once = stamp_csv(csv, "abc1234");
        assert_eq!(once, "a,b,commit\n1,2,abc1234\n3,\"x,y\",abc1234\n");
        assert_eq!(stamp_csv(&once, "abc1234"), once);
    }

    #[test]
    fn svg_gets_a_caption_inside_its_height() {
        let svg = "<svg width=\"800\" height=\"400\" viewBox=\"0 0 800 400\">\n<rect/>\n</svg>\n";
        let stamped = stamp_svg(svg, "abc1234");
        assert!(stamped.contains("y=\"396\""), "{stamped}");
        assert!(
            stamped.contains(">ringecho abc1234</text>\n</svg>"),
            "{stamped}"
        );
        assert_eq!(stamp_svg(&stamped, "abc1234"), stamped);
    }

    #[test]
    fn json_objects_get_a_commit_field() {
        let stamped = stamp_json("[{\"a\":1},{\"a\":2}]", "abc1234").unwrap();
        let v: serde_json::Value = serde_json::from_str(&stamped).unwrap();
        assert_eq!(v[1]["commit"], "abc1234");
        let stamped = stamp_json("{\"a\":1}", "abc1234").unwrap();
        assert!(stamped.contains("\"commit\": \"abc1234\""));
    }
}
