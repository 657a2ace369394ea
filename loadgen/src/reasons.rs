//! Counts of events by reason (why connections failed, were lost or were
//! dropped), with a human description per reason, added up across workers
//! and intervals like the other counters.

use std::collections::BTreeMap;

/// Counts by reason key (`"refused"`, `"http_403"`, ...), with a human
/// description per key (`"HTTP 403 Forbidden"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReasonCounts {
    /// Count per reason key.
    pub counts: BTreeMap<String, u64>,
    /// A human-readable description per reason key.
    pub detail: BTreeMap<String, String>,
}

impl ReasonCounts {
    /// Counts one event with `key` and its description.
    pub fn count(&mut self, key: &str, detail: &str) {
        *self.counts.entry(key.to_string()).or_default() += 1;
        if !self.detail.contains_key(key) {
            self.detail.insert(key.to_string(), detail.to_string());
        }
    }

    /// Adds another set.
    pub fn add(&mut self, o: &ReasonCounts) {
        for (k, v) in &o.counts {
            *self.counts.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.detail {
            self.detail.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// Total count.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// `"10 x HTTP 403 Forbidden, 2 x connection refused"`.
    pub fn describe(&self) -> String {
        let mut v: Vec<_> = self.counts.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1));
        v.iter()
            .map(|(k, n)| {
                let d = self
                    .detail
                    .get(*k)
                    .map(String::as_str)
                    .unwrap_or(k.as_str());
                format!("{n} x {d}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
