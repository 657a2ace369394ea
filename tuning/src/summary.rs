//! The repeats of each setting reduced to medians, and how far the repeats
//! spread: the noise the recommendation has to respect.

use std::collections::BTreeMap;

use crate::plan::Setting;
use crate::sample::Sample;

/// The medians of one setting's repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The setting.
    pub setting: Setting,
    /// Repeats measured.
    pub repeats: usize,
    /// Median msg/s.
    pub msgs_per_sec: f64,
    /// Median p50, us.
    pub p50_us: f64,
    /// Median p99, us.
    pub p99_us: f64,
    /// Median p99.9, us.
    pub p99_9_us: f64,
    /// Lowest and highest p99 of the repeats, us.
    pub p99_range_us: (f64, f64),
    /// Lowest and highest msg/s of the repeats.
    pub msgs_range: (f64, f64),
    /// Median server CPU per message, us.
    pub cpu_us_per_msg: f64,
    /// Lowest and highest CPU per message of the repeats, us.
    pub cpu_range_us: (f64, f64),
    /// Median server RSS per connection, bytes.
    pub rss_per_connection_bytes: f64,
    /// Lowest and highest RSS per connection of the repeats, bytes.
    pub rss_range: (f64, f64),
    /// Receive-ring bytes per worker.
    pub ring_bytes: usize,
    /// Errors over all repeats (bad echoes, failed or lost connections).
    pub errors: u64,
    /// Repeats in which the server's ring ran dry.
    pub ran_dry: usize,
    /// Repeats in which loadgen was at its own ceiling (see
    /// [`crate::sample::Sample::loadgen_bound`]).
    pub loadgen_bound: usize,
}

impl Summary {
    /// The spread of the p99 repeats relative to their median,
    /// `(max - min) / median`; `None` with fewer than two repeats.
    pub fn p99_spread(&self) -> Option<f64> {
        self.spread(self.p99_range_us, self.p99_us)
    }

    /// The same spread for msg/s.
    pub fn rate_spread(&self) -> Option<f64> {
        self.spread(self.msgs_range, self.msgs_per_sec)
    }

    /// The same spread for CPU per message.
    pub fn cpu_spread(&self) -> Option<f64> {
        self.spread(self.cpu_range_us, self.cpu_us_per_msg)
    }

    /// The same spread for the server RSS per connection.
    pub fn rss_spread(&self) -> Option<f64> {
        self.spread(self.rss_range, self.rss_per_connection_bytes)
    }

    fn spread(&self, (low, high): (f64, f64), median: f64) -> Option<f64> {
        (self.repeats >= 2 && median > 0.0 && (high - low).is_finite())
            .then(|| (high - low) / median)
    }
}

/// One summary per setting, in setting order.
pub fn summarize(samples: &[Sample]) -> Vec<Summary> {
    let mut groups: BTreeMap<Setting, Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        groups.entry(sample.setting()).or_default().push(sample);
    }
    groups
        .into_iter()
        .map(|(setting, samples)| {
            let of = |field: fn(&Sample) -> f64| median(samples.iter().map(|s| field(s)));
            let range = |field: fn(&Sample) -> f64| {
                samples
                    .iter()
                    .map(|s| field(s))
                    .filter(|v| !v.is_nan())
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                        (lo.min(v), hi.max(v))
                    })
            };
            Summary {
                setting,
                repeats: samples.len(),
                msgs_per_sec: of(|s| s.msgs_per_sec),
                p50_us: of(|s| s.p50_us),
                p99_us: of(|s| s.p99_us),
                p99_9_us: of(|s| s.p99_9_us),
                p99_range_us: range(|s| s.p99_us),
                msgs_range: range(|s| s.msgs_per_sec),
                cpu_us_per_msg: of(|s| s.cpu_us_per_msg),
                cpu_range_us: range(|s| s.cpu_us_per_msg),
                rss_per_connection_bytes: of(|s| s.rss_per_connection_bytes),
                rss_range: range(|s| s.rss_per_connection_bytes),
                ring_bytes: setting.ring_bytes(),
                errors: samples.iter().map(|s| s.errors).sum(),
                ran_dry: samples.iter().filter(|s| s.ring_ran_dry).count(),
                loadgen_bound: samples.iter().filter(|s| s.loadgen_bound).count(),
            }
        })
        .collect()
}

/// The median of `values` (the mean of the middle two for an even count);
/// NaN values are ignored, and NaN is returned when nothing is left.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::tests::sample;
    use ringecho::IoBackend;

    #[test]
    fn medians_and_spread_per_setting() {
        let a = Setting {
            backend: IoBackend::Uring,
            buffer_size: 1024,
            buffers: 128,
            socket_buffer: None,
        };
        let b = Setting {
            buffer_size: 2048,
            ..a
        };
        let mut samples = vec![
            sample(a, 0, 100.0, 1000.0),
            sample(b, 0, 500.0, 900.0),
            sample(a, 1, 140.0, 1100.0),
            sample(a, 2, 120.0, 1050.0),
        ];
        samples[2].errors = 2;
        samples[3].ring_ran_dry = true;
        let summaries = summarize(&samples);
        assert_eq!(summaries.len(), 2);
        let sa = &summaries[0];
        assert_eq!(sa.setting, a);
        assert_eq!(sa.repeats, 3);
        assert_eq!(sa.p99_us, 120.0);
        assert_eq!(sa.msgs_per_sec, 1050.0);
        assert_eq!(sa.p99_range_us, (100.0, 140.0));
        assert!((sa.p99_spread().unwrap() - 40.0 / 120.0).abs() < 1e-12);
        assert_eq!(sa.errors, 2);
        assert_eq!(sa.ran_dry, 1);
        assert_eq!(summaries[1].p99_spread(), None);
        assert!((sa.rate_spread().unwrap() - 100.0 / 1050.0).abs() < 1e-12);
        assert_eq!(sa.cpu_spread(), Some(0.0));
    }

    #[test]
    fn median_of_even_counts_and_nans() {
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median([f64::NAN, 7.0]), 7.0);
        assert!(median([]).is_nan());
    }
}
