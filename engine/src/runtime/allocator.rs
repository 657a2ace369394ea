//! The allocator (mimalloc, set as the global allocator in `main.rs`) and
//! giving its free pages back once a worker goes quiet.
//!
//! mimalloc returns the pages of freed memory to the kernel lazily: a page
//! whose blocks are all free is purged after `purge_delay` (1 s in
//! mimalloc v3), but only when the thread calls into the allocator again.
//! An io_uring worker whose connections all went idle makes no such call:
//! the echo path allocates nothing. So the memory its last burst of
//! handshakes used (hyper's buffers and connection state, freed after the
//! 101) stayed resident for as long as the worker stayed idle, and was
//! charged to its idle WebSockets. [`QuietCollector`] asks mimalloc to
//! collect once a worker has seen no completion for [`QUIET_AFTER`] after
//! some activity: a busy worker never pays for it, and an idle one pays
//! once. Measured in `results/engine-io.md` ("Server RSS per idle
//! WebSocket").

use std::time::{Duration, Instant};

/// How long a worker must see no completions before it collects.
pub const QUIET_AFTER: Duration = Duration::from_secs(1);

/// Watches a worker's activity and collects the allocator's free pages
/// once the worker goes quiet (see the module docs).
#[derive(Debug)]
pub struct QuietCollector {
    /// The activity count seen last.
    activity: u64,
    /// When the activity count last changed.
    changed_at: Instant,
    /// Activity since the last collection.
    dirty: bool,
}

impl QuietCollector {
    /// A collector for a worker starting now with nothing to collect.
    pub fn new(now: Instant) -> Self {
        Self {
            activity: 0,
            changed_at: now,
            dirty: false,
        }
    }

    /// Called on the worker's periodic tick with a count that grows with
    /// every completion the worker handled. Returns whether it collected.
    pub fn tick(&mut self, now: Instant, activity: u64) -> bool {
        if activity != self.activity {
            self.activity = activity;
            self.changed_at = now;
            self.dirty = true;
            return false;
        }
        if !self.dirty || now.duration_since(self.changed_at) < QUIET_AFTER {
            return false;
        }
        self.dirty = false;
        collect();
        true
    }
}

/// Frees this thread's empty allocator pages and purges every free page
/// now (`mi_collect(true)`), instead of at the thread's next allocation.
pub fn collect() {
    // SAFETY: mi_collect takes a plain bool and may be called at any time
    // from any thread; it only frees pages that hold no live block, so no
    // allocation of ours is touched. When mimalloc is not the global
    // allocator (library tests) it has nothing to collect.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_once_per_quiet_period_after_activity() {
        let start = Instant::now();
        let mut quiet = QuietCollector::new(start);
        // Nothing happened yet: nothing to collect, however long it waits.
        assert!(!quiet.tick(start + QUIET_AFTER * 3, 0));
        // Activity, then ticks before the quiet period is over.
        let t = start + QUIET_AFTER * 4;
        assert!(!quiet.tick(t, 5));
        assert!(!quiet.tick(t + QUIET_AFTER / 2, 5));
        // Quiet long enough: one collection, then none while it stays quiet.
        assert!(quiet.tick(t + QUIET_AFTER, 5));
        assert!(!quiet.tick(t + QUIET_AFTER * 2, 5));
        // Busy: every tick sees new activity, so it never collects.
        for i in 0..10u32 {
            assert!(!quiet.tick(t + QUIET_AFTER * (3 + i), 6 + u64::from(i)));
        }
        // Quiet again after that: one more collection.
        assert!(quiet.tick(t + QUIET_AFTER * 14, 15));
    }
}
