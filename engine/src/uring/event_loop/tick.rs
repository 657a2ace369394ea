//! The loop's tick: a multishot timeout that completes every sweep period,
//! so the turn's wait needs no timeout of its own and the loop reads the
//! clock only when it ticks. On kernels without multishot timeouts (before
//! 6.4) the waits carry the period instead, and a tick is due once a period
//! has passed since the last one.

use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types};

use super::ops::{user_data, Op};

/// The tick's state.
pub(super) struct Tick {
    period: Duration,
    /// The period as the kernel reads it while the timeout is armed, so it
    /// is boxed: it must not move.
    timespec: Box<types::Timespec>,
    /// The multishot timeout is armed.
    armed: bool,
    /// The kernel refused multishot timeouts: waits carry a timeout instead.
    by_wait: bool,
    /// A tick arrived since the last [`Tick::take`].
    due: bool,
    /// When the last tick was taken (only read with `by_wait`).
    last: Instant,
}

impl Tick {
    /// A tick every `period`, not armed yet.
    pub(super) fn new(period: Duration, now: Instant) -> Self {
        Self {
            period,
            timespec: Box::new(types::Timespec::from(period)),
            armed: false,
            by_wait: false,
            due: false,
            last: now,
        }
    }

    /// The SQE that arms the multishot timeout, unless it is armed already
    /// or the loop ticks by its waits; the caller submits it.
    pub(super) fn arm(&mut self) -> Option<squeue::Entry> {
        if self.armed || self.by_wait {
            return None;
        }
        self.armed = true;
        Some(
            opcode::Timeout::new(&*self.timespec)
                .flags(types::TimeoutFlags::MULTISHOT)
                .build()
                .user_data(user_data(0, Op::Tick)),
        )
    }

    /// A completion of the timeout: `more` is its `IORING_CQE_F_MORE`. A
    /// refusal (`EINVAL`) makes the loop tick by its waits from now on.
    pub(super) fn completed(&mut self, result: i32, more: bool) {
        if !more {
            self.armed = false;
        }
        if result == -libc::EINVAL {
            tracing::debug!("multishot timeouts unsupported; the loop's waits carry a timeout");
            self.by_wait = true;
        }
        self.due = true;
    }

    /// How long a turn that may sleep waits in its enter: with no timeout
    /// (`None`, the armed tick bounds it), or at most a period.
    pub(super) fn wait_limit(&self) -> Option<Duration> {
        self.by_wait.then_some(self.period)
    }

    /// After a turn's enter: when ticking by waits, a tick is due once a
    /// period has passed. Reads the clock only in that mode.
    pub(super) fn after_wait(&mut self) {
        if self.by_wait {
            self.after_wait_at(Instant::now());
        }
    }

    fn after_wait_at(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last) >= self.period {
            self.last = now;
            self.due = true;
        }
    }

    /// Whether a tick came since the last call.
    pub(super) fn take(&mut self) -> bool {
        std::mem::take(&mut self.due)
    }

    /// The timeout is in flight (it names memory of this tick).
    pub(super) fn is_armed(&self) -> bool {
        self.armed
    }

    /// Never arms again (the loop is exiting).
    pub(super) fn stop(&mut self) {
        self.by_wait = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_millis(100);

    #[test]
    fn armed_once_and_re_armed_when_the_multishot_ends() {
        let mut tick = Tick::new(PERIOD, Instant::now());
        assert!(tick.arm().is_some());
        assert!(tick.arm().is_none(), "already armed");
        tick.completed(-libc::ETIME, true);
        assert!(tick.take());
        assert!(!tick.take(), "taken once");
        assert!(tick.arm().is_none(), "the multishot goes on");
        tick.completed(-libc::ETIME, false);
        assert!(!tick.is_armed() && tick.arm().is_some());
        assert_eq!(tick.wait_limit(), None, "the armed tick bounds the wait");
    }

    #[test]
    fn a_kernel_without_multishot_timeouts_ticks_by_waits() {
        let start = Instant::now();
        let mut tick = Tick::new(PERIOD, start);
        assert!(tick.arm().is_some());
        tick.completed(-libc::EINVAL, false);
        assert!(tick.take(), "the refusal counts as a tick");
        assert!(tick.arm().is_none(), "never armed again");
        assert_eq!(tick.wait_limit(), Some(PERIOD));
        tick.after_wait_at(start + PERIOD / 2);
        assert!(!tick.take());
        tick.after_wait_at(start + PERIOD);
        assert!(tick.take());
        tick.after_wait_at(start + PERIOD + PERIOD / 2);
        assert!(
            !tick.take(),
            "a period from the last tick, not from the start"
        );
    }

    #[test]
    fn a_stopped_tick_is_not_armed_again() {
        let mut tick = Tick::new(PERIOD, Instant::now());
        tick.stop();
        assert!(tick.arm().is_none());
    }
}
