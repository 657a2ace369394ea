//! Scheduling priority of the measured processes: `tune --nice`, and the
//! real-time policy a report names when tune was started under one
//! (shared with the soak runner, so it lives in `bench`).

pub use bench::priority::{niceness, realtime_priority, set_niceness, NICE_RANGE};
