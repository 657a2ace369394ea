//! The working-set policy: how many receive buffers to keep published, and
//! which spare buffers have gone cold and may give their memory back.
//!
//! The kernel takes buffers from the ring's head in order, and a returned
//! buffer goes to the tail: a ring with every free buffer published cycles
//! through all of them, so any steady load touches the whole ring and every
//! recv lands in a buffer that left the cache long ago. So only as many
//! buffers are published as the load needs: twice the most the kernel took
//! in one turn lately, and at least [`min_published`] (32 small buffers,
//! but never more than [`MIN_PUBLISHED_BYTES`] of large ones: the kernel
//! fills an incremental buffer before it takes the next, so 32 buffers of
//! 64 KiB would make a light load cycle through 2 MiB). A receiver that found no
//! buffer counts as demand, and holds the peak for a cold window, so a
//! sustained flood does not shrink the set every sweep and run it short
//! again. The peak fades by a quarter per sweep after that.
//!
//! The spare stack (returned buffers, most recently used on top) tells
//! which buffers went unused: entries below its lowest depth in a window of
//! [`COLD_SWEEPS`] sweeps were reached by no publish, and their memory can
//! go back to the kernel. This type only counts; the ring owns the buffers
//! and does the publishing and the giving back.

use std::ops::Range;

/// The fewest buffers kept published (or the whole ring, if smaller), as
/// long as they fit in [`MIN_PUBLISHED_BYTES`].
pub const MIN_PUBLISHED: usize = 32;

/// The most bytes the fewest published buffers may span, so that a light
/// load reuses the same few cache-warm KiB whatever the buffer size.
pub const MIN_PUBLISHED_BYTES: usize = 128 * 1024;

/// The fewest buffers kept published however large they are: one being
/// filled and one ready behind it.
pub const FEWEST_PUBLISHED: usize = 2;

/// The fewest buffers of `size` bytes kept published: [`MIN_PUBLISHED`],
/// but no more than [`MIN_PUBLISHED_BYTES`] of them and never fewer than
/// [`FEWEST_PUBLISHED`] (32 of 4 KiB; 2 of 64 KiB).
pub fn min_published(size: usize) -> usize {
    (MIN_PUBLISHED_BYTES / size.max(1)).clamp(FEWEST_PUBLISHED, MIN_PUBLISHED)
}

/// Sweeps a spare buffer must go unused before its memory is given back.
pub const COLD_SWEEPS: u32 = 10;

/// The working set's counters (see the module docs).
#[derive(Debug)]
pub(super) struct WorkingSet {
    /// Buffers in the ring.
    count: usize,
    /// The fewest kept published ([`min_published`] of the buffer size).
    min_published: usize,
    /// Buffers the kernel took since the last publish, plus receivers that
    /// found none (`ENOBUFS`).
    taken_this_turn: usize,
    /// The most buffers the kernel took in one turn lately (decays).
    peak_per_turn: usize,
    /// Whether the last publish left nothing on the spare stack, i.e. the
    /// kernel has had every free buffer since.
    all_published: bool,
    /// The bottom `given_back` entries of the spare stack hold no memory:
    /// given back (or never touched), and not published since.
    given_back: usize,
    /// The shallowest the spare stack got since the cold window began:
    /// entries below it were not used in the window.
    spare_low: usize,
    /// Sweeps since the cold window began.
    sweeps: u32,
    /// Sweeps left before the peak may decay again.
    hold_peak: u32,
}

impl WorkingSet {
    /// The policy for a ring of `count` buffers of `size` bytes, all of
    /// them spare and never touched.
    pub(super) fn new(count: usize, size: usize) -> Self {
        Self {
            count,
            min_published: min_published(size),
            taken_this_turn: 0,
            peak_per_turn: 0,
            all_published: false,
            given_back: count,
            spare_low: count,
            sweeps: 0,
            hold_peak: 0,
        }
    }

    /// The kernel posted its last completion for a buffer it took.
    pub(super) fn took(&mut self) {
        self.taken_this_turn += 1;
    }

    /// A recv found no buffer (`ENOBUFS`): it counts as demand and holds
    /// the peak for a cold window. Returns whether the kernel had every
    /// free buffer (the ring is too small for the load) rather than only
    /// the working set.
    pub(super) fn ran_short(&mut self) -> bool {
        self.taken_this_turn += 1;
        self.hold_peak = COLD_SWEEPS;
        self.all_published
    }

    /// Starts a publish: folds this turn's demand into the peak and returns
    /// how many buffers should be published: twice the peak, at least
    /// [`min_published`], at most the ring.
    pub(super) fn start_publish(&mut self) -> usize {
        self.peak_per_turn = self.peak_per_turn.max(self.taken_this_turn);
        self.taken_this_turn = 0;
        (2 * self.peak_per_turn)
            .max(self.min_published)
            .min(self.count)
    }

    /// Ends a publish that left `spare` buffers on the spare stack.
    pub(super) fn end_publish(&mut self, spare: usize) {
        self.spare_low = self.spare_low.min(spare);
        self.given_back = self.given_back.min(spare);
        self.all_published = spare == 0;
    }

    /// One sweep, with `spare` buffers on the spare stack: the peak fades,
    /// and at the end of a cold window returns the positions in the spare
    /// stack (from its bottom) of the buffers no publish reached in the
    /// window and whose memory has not been given back yet.
    pub(super) fn sweep(&mut self, spare: usize) -> Option<Range<usize>> {
        if self.hold_peak > 0 {
            self.hold_peak -= 1;
        } else {
            self.peak_per_turn -= self.peak_per_turn / 4;
        }
        self.sweeps += 1;
        if self.sweeps < COLD_SWEEPS {
            return None;
        }
        let cold = self.spare_low.min(spare);
        let range = self.given_back.min(cold)..cold;
        self.given_back = self.given_back.max(cold);
        self.sweeps = 0;
        self.spare_low = spare;
        Some(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A turn in which the kernel takes `taken` buffers, then a publish
    /// that leaves `spare` on the stack; returns what the publish wanted.
    fn turn(set: &mut WorkingSet, taken: usize, spare: usize) -> usize {
        for _ in 0..taken {
            set.took();
        }
        let wanted = set.start_publish();
        set.end_publish(spare);
        wanted
    }

    #[test]
    fn the_set_is_twice_the_peak_within_the_minimum_and_the_ring() {
        let mut set = WorkingSet::new(1024, 4096);
        assert_eq!(turn(&mut set, 3, 900), MIN_PUBLISHED);
        assert_eq!(turn(&mut set, 40, 900), 80);
        assert_eq!(turn(&mut set, 2, 900), 80, "the peak holds");
        let mut small = WorkingSet::new(16, 4096);
        assert_eq!(turn(&mut small, 0, 0), 16, "never more than the ring");
    }

    #[test]
    fn large_buffers_keep_the_same_bytes_published_not_the_same_count() {
        assert_eq!(min_published(256), MIN_PUBLISHED);
        assert_eq!(min_published(4096), MIN_PUBLISHED);
        assert_eq!(min_published(16 * 1024), 8);
        assert_eq!(min_published(64 * 1024), 2);
        assert_eq!(min_published(1 << 20), FEWEST_PUBLISHED);
        let mut large = WorkingSet::new(512, 64 * 1024);
        assert_eq!(turn(&mut large, 1, 510), 2);
        assert_eq!(turn(&mut large, 5, 500), 10, "demand still widens it");
    }

    #[test]
    fn the_peak_fades_a_quarter_per_sweep_but_not_after_a_shortage() {
        let mut set = WorkingSet::new(1024, 4096);
        turn(&mut set, 100, 500);
        set.sweep(500);
        assert_eq!(set.start_publish(), 150, "a quarter of 100 faded");
        let mut short = WorkingSet::new(1024, 4096);
        turn(&mut short, 100, 0);
        assert!(short.ran_short(), "everything was published");
        for _ in 0..COLD_SWEEPS {
            short.sweep(0);
        }
        assert_eq!(short.start_publish(), 200, "held for a cold window");
        short.sweep(0);
        assert_eq!(short.start_publish(), 150);
    }

    #[test]
    fn a_shortage_of_the_working_set_is_not_a_shortage_of_the_ring() {
        let mut set = WorkingSet::new(1024, 4096);
        turn(&mut set, 32, 992);
        assert!(!set.ran_short());
    }

    #[test]
    fn spare_buffers_below_the_window_low_are_cold_once() {
        let mut set = WorkingSet::new(1024, 4096);
        // The first publish leaves 992 spare, none touched yet: nothing to
        // give back, since the bottom was never touched.
        turn(&mut set, 0, 992);
        for _ in 1..COLD_SWEEPS {
            assert_eq!(set.sweep(992), None);
        }
        assert_eq!(set.sweep(992), Some(992..992));
        // A burst publishes all but 100, which then come back.
        turn(&mut set, 500, 100);
        for _ in 1..COLD_SWEEPS {
            set.sweep(992);
        }
        assert_eq!(
            set.sweep(992),
            Some(100..100),
            "the burst's buffers were used in this window"
        );
        for _ in 1..COLD_SWEEPS {
            set.sweep(992);
        }
        assert_eq!(
            set.sweep(992),
            Some(100..992),
            "unused for a whole window: cold"
        );
        for _ in 1..COLD_SWEEPS {
            set.sweep(992);
        }
        assert_eq!(set.sweep(992), Some(992..992), "given back once");
    }
}
