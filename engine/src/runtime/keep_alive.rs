//! The keep-alive and deadline rules of an open WebSocket, written once for
//! both backends' sweeps:
//! - every `--keep-alive-interval` a ping is due ([`Deadlines::check`]);
//! - a pong later than `--keep-alive-timeout` after our ping drops the
//!   connection (only while pings go out);
//! - output stuck for `--backpressure-timeout` drops it too, and is
//!   checked first;
//! - a ping or our close 1001 (shutdown) goes out at the next frame
//!   boundary, the close wins over the ping, and nothing follows our close
//!   ([`Owed`]);
//! - the sweep that checks these runs every quarter of the shortest
//!   deadline, within [`MIN_SWEEP_PERIOD`] and [`MAX_SWEEP_PERIOD`], so
//!   no deadline is noticed more than a quarter late ([`sweep_period`]).
//!
//! The rules are generic over the clock ([`Moment`]): the epoll backend
//! sweeps with tokio's `Instant`, the io_uring loop with the milliseconds
//! of its own clock, read once per tick.

use std::time::Duration;

use crate::config::Config;
use crate::protocol::frame::{GOING_AWAY_FRAME, PING_FRAME};
use crate::protocol::CloseCode;

/// The shortest sweep period.
pub const MIN_SWEEP_PERIOD: Duration = Duration::from_millis(10);
/// The longest sweep period: how late, at most, a worker notices anything
/// its sweep watches (deadlines, and on io_uring its stop flag).
pub const MAX_SWEEP_PERIOD: Duration = Duration::from_millis(100);

/// The sweep period for deadlines as short as `shortest`: a quarter of it,
/// within [`MIN_SWEEP_PERIOD`] and [`MAX_SWEEP_PERIOD`].
pub fn sweep_period(shortest: Duration) -> Duration {
    (shortest / 4).clamp(MIN_SWEEP_PERIOD, MAX_SWEEP_PERIOD)
}

/// A point on a sweep's clock.
pub trait Moment: Copy + Ord {
    /// The distance between two moments.
    type Span: Copy + Ord;
    /// The moment `span` after this one.
    fn after(self, span: Self::Span) -> Self;
    /// How long after `earlier` this moment is (zero if it is not).
    fn since(self, earlier: Self) -> Self::Span;
}

impl Moment for tokio::time::Instant {
    type Span = Duration;

    fn after(self, span: Duration) -> Self {
        self + span
    }

    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// Milliseconds on a loop's own clock.
impl Moment for u64 {
    type Span = u64;

    fn after(self, span: u64) -> Self {
        self.saturating_add(span)
    }

    fn since(self, earlier: Self) -> u64 {
        self.saturating_sub(earlier)
    }
}

/// The deadlines of the configuration, in a clock's spans.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines<S> {
    /// `--keep-alive-interval`: a ping this often (`None`: never).
    pub interval: Option<S>,
    /// `--keep-alive-timeout`: the longest a pong may take.
    pub pong_timeout: Option<S>,
    /// `--backpressure-timeout`: the longest output may stay stuck.
    pub backpressure_timeout: Option<S>,
}

/// What a WebSocket's deadlines say at a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing to do.
    Nothing,
    /// Output was stuck for the backpressure timeout: drop the connection.
    BackpressureTimeout,
    /// The pong is later than the timeout: drop the connection.
    PongTimeout,
    /// A ping is due (the next one is scheduled already).
    Ping,
}

impl Deadlines<Duration> {
    /// The deadlines `config` sets.
    pub fn new(config: &Config) -> Self {
        Self {
            interval: config.keep_alive_interval,
            pong_timeout: config.keep_alive_timeout,
            backpressure_timeout: config.backpressure_timeout,
        }
    }

    /// The shortest deadline a sweep must honour: a pong timeout counts
    /// only while pings go out. `None` when every deadline is off.
    pub fn shortest(&self) -> Option<Duration> {
        let pong_timeout = self.interval.and(self.pong_timeout);
        [self.interval, pong_timeout, self.backpressure_timeout]
            .into_iter()
            .flatten()
            .min()
    }

    /// The same deadlines in whole milliseconds, for a loop's own clock.
    pub fn in_millis(&self) -> Deadlines<u64> {
        let ms = |d: Duration| d.as_millis() as u64;
        Deadlines {
            interval: self.interval.map(ms),
            pong_timeout: self.pong_timeout.map(ms),
            backpressure_timeout: self.backpressure_timeout.map(ms),
        }
    }
}

impl<S: Copy + Ord> Deadlines<S> {
    /// The keep-alive state of a WebSocket opened at `now`: its first ping
    /// is due one interval later.
    pub fn open<M: Moment<Span = S>>(&self, now: M) -> KeepAlive<M> {
        KeepAlive {
            next_ping: self.interval.map_or(now, |interval| now.after(interval)),
            pong_wait_since: None,
        }
    }

    /// What the deadlines of a WebSocket say at `now`. `backlogged_since`
    /// is when its output got stuck, if it is; a due ping is scheduled
    /// again one interval from now.
    pub fn check<M: Moment<Span = S>>(
        &self,
        now: M,
        backlogged_since: Option<M>,
        keep_alive: &mut KeepAlive<M>,
    ) -> Due {
        if self.backpressure_expired(now, backlogged_since) {
            return Due::BackpressureTimeout;
        }
        let Some(interval) = self.interval else {
            return Due::Nothing;
        };
        if let (Some(sent), Some(timeout)) = (keep_alive.pong_wait_since, self.pong_timeout) {
            if now.since(sent) >= timeout {
                return Due::PongTimeout;
            }
        }
        if now >= keep_alive.next_ping {
            keep_alive.next_ping = now.after(interval);
            return Due::Ping;
        }
        Due::Nothing
    }
}

impl<S: Copy + Ord> Deadlines<S> {
    /// Whether output stuck since `backlogged_since` (if it is) has been
    /// stuck for the backpressure timeout at `now`.
    pub fn backpressure_expired<M: Moment<Span = S>>(
        &self,
        now: M,
        backlogged_since: Option<M>,
    ) -> bool {
        match (self.backpressure_timeout, backlogged_since) {
            (Some(limit), Some(since)) => now.since(since) >= limit,
            _ => false,
        }
    }
}

/// A WebSocket's keep-alive clock: when its next ping is due, and since
/// when it waits for a pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive<M> {
    next_ping: M,
    pong_wait_since: Option<M>,
}

impl<M: Copy> KeepAlive<M> {
    /// Our ping went out at `now`: the pong wait starts, unless an earlier
    /// ping's wait is still running.
    pub fn ping_sent(&mut self, now: M) {
        self.pong_wait_since.get_or_insert(now);
    }

    /// A pong arrived: the peer is alive.
    pub fn pong_received(&mut self) {
        self.pong_wait_since = None;
    }
}

/// The control frames a WebSocket owes at its next frame boundary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Owed {
    ping: bool,
    going_away: bool,
    close_sent: bool,
}

/// A control frame of our own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Close 1001: the server is shutting down.
    GoingAway,
    /// A keep-alive ping.
    Ping,
}

impl Control {
    /// The frame's bytes.
    pub fn frame(self) -> &'static [u8] {
        match self {
            Control::GoingAway => &GOING_AWAY_FRAME,
            Control::Ping => &PING_FRAME,
        }
    }

    /// The close code it carries, if it is a close.
    pub fn close_code(self) -> Option<CloseCode> {
        match self {
            Control::GoingAway => Some(CloseCode::GOING_AWAY),
            Control::Ping => None,
        }
    }
}

impl Owed {
    /// A ping is due.
    pub fn ping(&mut self) {
        self.ping = true;
    }

    /// Close 1001 is due (shutdown).
    pub fn going_away(&mut self) {
        self.going_away = true;
    }

    /// Whether our close frame went out: no data or control frame may
    /// follow it.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Our close frame goes out (an answer or a failure); returns whether
    /// it is the first, the only one that may be sent.
    pub fn send_close(&mut self) -> bool {
        !std::mem::replace(&mut self.close_sent, true)
    }

    /// The control frame to send now, if any: close 1001 before a ping,
    /// and nothing once our close went out.
    pub fn take(&mut self) -> Option<Control> {
        if self.close_sent {
            return None;
        }
        if std::mem::take(&mut self.going_away) {
            self.close_sent = true;
            return Some(Control::GoingAway);
        }
        if std::mem::take(&mut self.ping) {
            return Some(Control::Ping);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadlines(
        interval: Option<u64>,
        pong: Option<u64>,
        backpressure: Option<u64>,
    ) -> Deadlines<u64> {
        Deadlines {
            interval,
            pong_timeout: pong,
            backpressure_timeout: backpressure,
        }
    }

    #[test]
    fn pings_every_interval_and_drops_a_late_pong() {
        let rules = deadlines(Some(1000), Some(500), None);
        let mut state = rules.open(0u64);
        assert_eq!(rules.check(999, None, &mut state), Due::Nothing);
        assert_eq!(rules.check(1000, None, &mut state), Due::Ping);
        assert_eq!(
            rules.check(1000, None, &mut state),
            Due::Nothing,
            "scheduled again"
        );
        state.ping_sent(1000);
        assert_eq!(rules.check(1499, None, &mut state), Due::Nothing);
        assert_eq!(rules.check(1500, None, &mut state), Due::PongTimeout);
        state.pong_received();
        assert_eq!(rules.check(1600, None, &mut state), Due::Nothing);
        assert_eq!(rules.check(2000, None, &mut state), Due::Ping);
    }

    #[test]
    fn a_pong_wait_starts_at_the_first_unanswered_ping() {
        let rules = deadlines(Some(1000), Some(250), None);
        let mut state = rules.open(0u64);
        state.ping_sent(100);
        state.ping_sent(200);
        assert_eq!(rules.check(349, None, &mut state), Due::Nothing);
        assert_eq!(rules.check(350, None, &mut state), Due::PongTimeout);
    }

    #[test]
    fn backpressure_is_checked_first_and_even_without_pings() {
        let rules = deadlines(None, Some(10), Some(2000));
        let mut state = rules.open(0u64);
        assert_eq!(rules.check(5000, Some(3001), &mut state), Due::Nothing);
        assert_eq!(
            rules.check(5000, Some(3000), &mut state),
            Due::BackpressureTimeout
        );
        state.ping_sent(0);
        assert_eq!(
            rules.check(5000, None, &mut state),
            Due::Nothing,
            "no pong timeout while pings are off"
        );
    }

    #[test]
    fn the_sweep_runs_every_quarter_of_the_shortest_deadline() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let period = |interval, pong, backpressure| {
            let rules = Deadlines {
                interval,
                pong_timeout: pong,
                backpressure_timeout: backpressure,
            };
            rules.shortest().map(sweep_period)
        };
        assert_eq!(period(None, None, None), None, "nothing to sweep");
        assert_eq!(period(None, None, Some(ms(200))), Some(ms(50)));
        assert_eq!(
            period(Some(s(120)), None, Some(s(10))),
            Some(MAX_SWEEP_PERIOD)
        );
        assert_eq!(
            period(Some(s(1)), Some(ms(200)), Some(s(10))),
            Some(ms(50)),
            "the pong timeout is the shortest"
        );
        assert_eq!(
            period(None, Some(ms(1)), Some(s(10))),
            Some(MAX_SWEEP_PERIOD),
            "a pong timeout without pings does not count"
        );
        assert_eq!(period(Some(ms(8)), None, None), Some(MIN_SWEEP_PERIOD));
    }

    #[test]
    fn close_wins_over_ping_and_nothing_follows_it() {
        let mut owed = Owed::default();
        owed.ping();
        owed.going_away();
        assert_eq!(owed.take(), Some(Control::GoingAway));
        assert!(owed.close_sent());
        assert_eq!(owed.take(), None, "the ping is dropped");
        assert!(!owed.send_close(), "one close only");
        let mut answered = Owed::default();
        answered.ping();
        assert!(answered.send_close());
        assert_eq!(answered.take(), None);
    }

    #[test]
    fn control_frames_are_the_protocol_s() {
        assert_eq!(Control::GoingAway.frame(), &GOING_AWAY_FRAME);
        assert_eq!(Control::Ping.frame(), &PING_FRAME);
        assert_eq!(Control::GoingAway.close_code(), Some(CloseCode::GOING_AWAY));
    }
}
