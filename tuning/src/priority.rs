//! Scheduling priority of the measured processes: `tune --nice` and
//! `tune --realtime` (shared with the soak runner, so it lives in `bench`).

pub use bench::priority::{
    niceness, realtime_priority, set_niceness, set_realtime, NICE_RANGE, REALTIME_RANGE,
};
