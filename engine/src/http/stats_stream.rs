//! `GET /stats`: the engine's counters as server-sent events, for the live
//! panel on the sample page.
//!
//! One event right away, then one per [`INTERVAL`]; each `data:` line is a
//! JSON [`StatsEvent`]: the engine's facts, per-worker counters, their sum,
//! and per-second rates computed from the previous event. The stream is
//! read-only and ends when the worker shuts down, so it never holds up a
//! graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream;
use http_body_util::StreamBody;
use hyper::body::Frame;
use serde::Serialize;

use super::Body;
use crate::metrics::{EngineInfo, EngineSnapshot, WorkerSnapshot};

/// Time between two events.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// One event's JSON.
#[derive(Debug, Serialize)]
pub struct StatsEvent<'a> {
    /// Engine facts (io backend, receive buffers, ...).
    pub info: &'a EngineInfo,
    /// All workers added up.
    pub totals: Totals,
    /// Per second since the previous event; `None` in the first event.
    pub rates: Option<Rates>,
    /// One entry per worker.
    pub workers: &'a [WorkerSnapshot],
}

/// The per-worker counters added up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Open WebSockets.
    pub connections: u64,
    /// WebSockets opened since start.
    pub connections_total: u64,
    /// Whole messages received.
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Message payload bytes received.
    pub bytes_in: u64,
    /// Message payload bytes sent.
    pub bytes_out: u64,
    /// Keep-alive pings sent.
    pub pings_sent: u64,
    /// WebSockets dropped for a late pong.
    pub keep_alive_timeouts: u64,
    /// WebSockets closed because their echoes stayed stuck too long.
    pub backpressure_closes: u64,
}

impl From<&WorkerSnapshot> for Totals {
    fn from(sum: &WorkerSnapshot) -> Self {
        Self {
            connections: sum.connections,
            connections_total: sum.connections_total,
            messages_in: sum.messages_in,
            messages_out: sum.messages_out,
            bytes_in: sum.bytes_in,
            bytes_out: sum.bytes_out,
            pings_sent: sum.pings_sent,
            keep_alive_timeouts: sum.keep_alive_timeouts,
            backpressure_closes: sum.backpressure_closes,
        }
    }
}

/// Per-second rates over the last interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Messages received per second.
    pub messages_in: f64,
    /// Messages sent per second.
    pub messages_out: f64,
    /// Payload bytes received per second.
    pub bytes_in: f64,
    /// Payload bytes sent per second.
    pub bytes_out: f64,
}

impl Rates {
    /// The rates between two totals taken `elapsed` apart.
    pub fn between(earlier: &WorkerSnapshot, later: &WorkerSnapshot, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-3);
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / seconds;
        Self {
            messages_in: rate(earlier.messages_in, later.messages_in),
            messages_out: rate(earlier.messages_out, later.messages_out),
            bytes_in: rate(earlier.bytes_in, later.bytes_in),
            bytes_out: rate(earlier.bytes_out, later.bytes_out),
        }
    }
}

/// The event stream: `snapshot` is read once per event, one event now and
/// then one per [`INTERVAL`] (slept with `sleep`); the stream ends when
/// `stop` completes.
pub fn body<F, S, Z>(snapshot: F, stop: S, sleep: Z) -> Body
where
    F: Fn() -> EngineSnapshot + 'static,
    S: Future<Output = ()> + 'static,
    Z: Fn(Duration) -> Pin<Box<dyn Future<Output = ()>>> + 'static,
{
    let state = State {
        previous: None,
        stop: Box::pin(stop),
        snapshot,
        sleep: Box::new(sleep),
        first: true,
    };
    let events = stream::unfold(state, |mut state| async move {
        if !std::mem::take(&mut state.first) {
            let tick = (state.sleep)(INTERVAL);
            let stopped = futures_util::future::select(tick, &mut state.stop).await;
            if let futures_util::future::Either::Right(_) = stopped {
                return None;
            }
        } else if futures_util::FutureExt::now_or_never(&mut state.stop).is_some() {
            return None;
        }
        let chunk = state.event(Instant::now());
        Some((Ok::<_, Infallible>(Frame::data(chunk)), state))
    });
    Box::pin(StreamBody::new(events))
}

/// Makes a future that completes after the given time.
type SleepFn = Box<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()>>>>;

struct State<F> {
    previous: Option<(Instant, WorkerSnapshot)>,
    stop: Pin<Box<dyn Future<Output = ()>>>,
    snapshot: F,
    /// The worker runtime's sleep: tokio's on epoll workers, the loop's own
    /// timers on io_uring workers.
    sleep: SleepFn,
    first: bool,
}

impl<F: Fn() -> EngineSnapshot> State<F> {
    /// The next event, as SSE bytes.
    fn event(&mut self, now: Instant) -> Bytes {
        let snapshot = (self.snapshot)();
        let totals = snapshot.totals();
        let rates = self
            .previous
            .as_ref()
            .map(|(then, earlier)| Rates::between(earlier, &totals, now - *then));
        let first = self.previous.is_none();
        let json = serde_json::to_string(&StatsEvent {
            info: &snapshot.info,
            totals: Totals::from(&totals),
            rates,
            workers: &snapshot.workers,
        })
        .expect("stats serialise");
        self.previous = Some((now, totals));
        // The first event also tells EventSource to reconnect after 1 s.
        let retry = if first { "retry: 1000\n" } else { "" };
        Bytes::from(format!("{retry}data: {json}\n\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_deltas() {
        let earlier = WorkerSnapshot {
            messages_in: 100,
            bytes_out: 1_000,
            ..WorkerSnapshot::default()
        };
        let later = WorkerSnapshot {
            messages_in: 300,
            bytes_out: 5_000,
            ..WorkerSnapshot::default()
        };
        let rates = Rates::between(&earlier, &later, Duration::from_secs(2));
        assert_eq!(rates.messages_in, 100.0);
        assert_eq!(rates.bytes_out, 2_000.0);
        assert_eq!(rates.messages_out, 0.0);
    }
}
