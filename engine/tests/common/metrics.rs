//! Scraping `/metrics` the way Prometheus does and reading values from it.
//!
//! Samples are parsed with the `prometheus-parse` crate; on top of that,
//! [`Scrape::fetch`] checks the OpenMetrics rules a scraper relies on: the
//! content type, `# HELP` and `# TYPE` for every family, counter samples
//! named `<family>_total`, and the closing `# EOF`.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::http::Request;

/// One parsed `/metrics` answer.
pub struct Scrape {
    /// The raw exposition, for failure messages.
    pub text: String,
    samples: Vec<prometheus_parse::Sample>,
}

impl Scrape {
    /// Fetches `/metrics` from `addr`, checks its format and parses it.
    pub async fn fetch(addr: SocketAddr) -> Scrape {
        let response = Request::get("/metrics").send(addr).await;
        assert_eq!(response.status, 200, "/metrics answered {response:?}");
        let content_type = response.header("Content-Type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/openmetrics-text; version=1.0.0"),
            "/metrics content type {content_type:?}"
        );
        Scrape::parse(response.body_text())
    }

    /// Checks the format of `text` and parses it.
    pub fn parse(text: String) -> Scrape {
        check_openmetrics_structure(&text);
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        let samples = prometheus_parse::Scrape::parse(lines)
            .unwrap_or_else(|error| panic!("/metrics does not parse: {error}\n{text}"))
            .samples;
        Scrape { text, samples }
    }

    /// The sum of every sample named `metric` whose labels include all of
    /// `labels` (summing over the `worker` label unless it is given).
    pub fn sum(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|sample| sample.metric == metric)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(name, value)| sample.labels.get(name) == Some(*value))
            })
            .map(|sample| match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{metric} is not a plain value: {other:?}"),
            })
            .sum()
    }

    /// The `worker` label values that carry `metric`, sorted.
    pub fn workers(&self, metric: &str) -> Vec<String> {
        let mut workers: Vec<String> = self
            .samples
            .iter()
            .filter(|sample| sample.metric == metric)
            .filter_map(|sample| sample.labels.get("worker").map(str::to_owned))
            .collect();
        workers.sort();
        workers.dedup();
        workers
    }

    /// The labels of the only sample named `metric`.
    pub fn only_labels(&self, metric: &str) -> HashMap<String, String> {
        let matching: Vec<_> = self
            .samples
            .iter()
            .filter(|sample| sample.metric == metric)
            .collect();
        assert_eq!(matching.len(), 1, "one {metric} sample in:\n{}", self.text);
        (*matching[0].labels).clone()
    }
}

/// Every family has HELP then TYPE; counter samples end in `_total`, other
/// samples carry the family name; the exposition ends with `# EOF`.
fn check_openmetrics_structure(text: &str) {
    assert!(text.ends_with("# EOF\n"), "no closing # EOF:\n{text}");
    let mut family: Option<(String, String)> = None;
    let mut help_for: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help_for = rest.split(' ').next().map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert_eq!(help_for.as_deref(), Some(name), "HELP before TYPE {name}");
            family = Some((name.to_owned(), kind.to_owned()));
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
        } else {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let (family_name, kind) = family
                .as_ref()
                .unwrap_or_else(|| panic!("sample {line:?} before any TYPE"));
            let expected = match kind.as_str() {
                "counter" => format!("{family_name}_total"),
                _ => family_name.clone(),
            };
            assert_eq!(
                name, expected,
                "sample name in family {family_name} ({kind})"
            );
        }
    }
}
