//! What every micro-benchmark here shares.

use std::time::Duration;

use criterion::Criterion;

/// Criterion settings for all the micro-benchmarks: enough samples for a
/// stable median while `cargo bench -p bench` stays within a few minutes.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}
