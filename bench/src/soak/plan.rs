//! What one soak run does: which backends, how many connections for how
//! long, the traffic mix handed to `loadgen soak`, and the pass criteria.

use std::path::Path;
use std::time::Duration;

use ringecho::IoBackend;

/// A soak of both backends (or one).
#[derive(Debug, Clone, PartialEq)]
pub struct SoakPlan {
    /// `uring` and/or `epoll`, run one after the other on fresh engines.
    pub backends: Vec<IoBackend>,
    /// WebSockets held at once.
    pub connections: usize,
    /// The hold, after the ramp.
    pub duration: Duration,
    /// Connects per second of the ramp.
    pub connect_rate: f64,
    /// Closes and reconnects per second during the hold.
    pub churn: f64,
    /// Connections in matches (128 Hz shooter input).
    pub players: usize,
    /// Connections sending 16 KiB bursts.
    pub bursts: usize,
    /// Messages per second of each lobby connection.
    pub lobby_rate: f64,
    /// The engine's RSS must grow less than [`SoakPlan::rss_growth_limit`]
    /// over this last part of the hold (after the warm-up before it).
    pub rss_window: Duration,
    /// Largest RSS growth over `rss_window` that passes (0.02 = 2%).
    pub rss_growth_limit: f64,
    /// CPU the engine is pinned to.
    pub engine_cpu: usize,
    /// CPU loadgen is pinned to.
    pub loadgen_cpu: usize,
    /// Niceness the runner sets for itself before starting anything (the
    /// engine and loadgen inherit it); `None` leaves it alone.
    pub nice: Option<i32>,
    /// SCHED_FIFO priority the runner sets for itself first (inherited the
    /// same way); `None` keeps the normal scheduler.
    pub realtime: Option<i32>,
    /// More `loadgen soak` options, appended last (they win).
    pub extra_loadgen_args: Vec<String>,
    /// True for the quick variant of the test suite.
    pub quick: bool,
}

impl SoakPlan {
    /// The full soak of issue 12: 15,000 WebSockets for 10 minutes, 200
    /// connects and closes a second; RSS growth under 2% over the last 8
    /// minutes.
    pub fn full() -> SoakPlan {
        SoakPlan {
            backends: IoBackend::ALL.to_vec(),
            connections: 15_000,
            duration: Duration::from_secs(600),
            connect_rate: 2000.0,
            churn: 200.0,
            players: 150,
            bursts: 100,
            lobby_rate: 0.2,
            rss_window: Duration::from_secs(480),
            rss_growth_limit: 0.02,
            engine_cpu: 1,
            loadgen_cpu: 0,
            nice: None,
            realtime: None,
            extra_loadgen_args: Vec::new(),
            quick: false,
        }
    }

    /// The quick variant run by the test suite: 1,000 WebSockets for 30 s,
    /// the same mix scaled down (and churn at 20/s), the same criteria,
    /// with the RSS window over the last 80% of the hold as in the full soak.
    pub fn quick() -> SoakPlan {
        SoakPlan {
            connections: 1_000,
            duration: Duration::from_secs(30),
            churn: 20.0,
            players: 20,
            bursts: 10,
            rss_window: Duration::from_secs(24),
            quick: true,
            ..SoakPlan::full()
        }
    }

    /// The ramp that opens the connections.
    pub fn ramp(&self) -> Duration {
        Duration::from_secs_f64(self.connections as f64 / self.connect_rate)
    }

    /// The engine's arguments: one worker on `backend`, a free loopback
    /// port, every other option at its default (keep-alive pings included:
    /// a deployment runs with them).
    pub fn engine_args(&self, backend: IoBackend) -> Vec<String> {
        [
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--io",
            backend.name(),
        ]
        .map(String::from)
        .to_vec()
    }

    /// `loadgen soak` arguments for `url`, writing its series to `csv` and
    /// its report to `json`.
    pub fn loadgen_args(&self, url: &str, csv: &Path, json: &Path) -> Vec<String> {
        let mut args: Vec<String> = vec!["soak".into(), url.into()];
        let mut opt = |name: &str, value: String| {
            args.push(name.into());
            args.push(value);
        };
        opt("--connections", self.connections.to_string());
        opt("--duration", format!("{}s", self.duration.as_secs_f64()));
        opt("--connect-rate", self.connect_rate.to_string());
        opt("--churn", self.churn.to_string());
        opt("--players", self.players.to_string());
        opt("--bursts", self.bursts.to_string());
        opt("--lobby-rate", self.lobby_rate.to_string());
        opt("--pin", self.loadgen_cpu.to_string());
        opt("--csv", csv.display().to_string());
        opt("--json", json.display().to_string());
        args.push("--quiet".into());
        args.extend(self.extra_loadgen_args.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_is_the_full_soak_scaled_down() {
        let full = SoakPlan::full();
        let quick = SoakPlan::quick();
        assert_eq!((full.connections, full.duration.as_secs()), (15_000, 600));
        assert_eq!((quick.connections, quick.duration.as_secs()), (1_000, 30));
        assert_eq!(quick.rss_growth_limit, full.rss_growth_limit);
        // Both watch the RSS over the last 80% of the hold.
        assert_eq!(full.rss_window.as_secs() * 10, full.duration.as_secs() * 8);
        assert_eq!(
            quick.rss_window.as_secs() * 10,
            quick.duration.as_secs() * 8
        );
        let args = quick.loadgen_args(
            "ws://127.0.0.1:1/ws",
            Path::new("a.csv"),
            Path::new("a.json"),
        );
        assert_eq!(&args[..2], ["soak", "ws://127.0.0.1:1/ws"]);
        let at = args.iter().position(|a| a == "--connections").unwrap();
        assert_eq!(args[at + 1], "1000");
        assert_eq!(quick.engine_args(IoBackend::Epoll).last().unwrap(), "epoll");
    }
}
