//! What a comparison runs: the servers, the scenarios and their durations.

use std::path::Path;
use std::time::Duration;

use ringecho::IoBackend;

use crate::harness::{Binaries, ServerSpec, Window};

/// One server under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum ServerKind {
    /// ringecho, one worker, `--io uring`.
    RingechoUring,
    /// ringecho, one worker, `--io epoll` (plain tokio).
    RingechoEpoll,
    /// The fastwebsockets example on a tokio current-thread runtime (`fws_echo`).
    Fastwebsockets,
    /// A tokio-tungstenite echo on a tokio current-thread runtime (`tungstenite_echo`).
    #[value(name = "tokio-tungstenite")]
    Tungstenite,
}

impl ServerKind {
    /// Every server, in table order.
    pub const ALL: [ServerKind; 4] = [
        ServerKind::RingechoUring,
        ServerKind::RingechoEpoll,
        ServerKind::Fastwebsockets,
        ServerKind::Tungstenite,
    ];

    /// Short name used in the CSV and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::RingechoUring => "ringecho-uring",
            ServerKind::RingechoEpoll => "ringecho-epoll",
            ServerKind::Fastwebsockets => "fastwebsockets",
            ServerKind::Tungstenite => "tokio-tungstenite",
        }
    }

    /// Column heading in the Markdown table and chart label.
    pub fn label(self) -> &'static str {
        match self {
            ServerKind::RingechoUring => "ringecho io_uring",
            ServerKind::RingechoEpoll => "ringecho epoll",
            ServerKind::Fastwebsockets => "fastwebsockets",
            ServerKind::Tungstenite => "tokio-tungstenite",
        }
    }

    /// How to start it pinned to `cpu`.
    pub fn spec(self, bins: &Binaries, cpu: usize) -> ServerSpec {
        match self {
            ServerKind::RingechoUring => {
                ServerSpec::ringecho(&bins.ringecho, IoBackend::Uring, cpu)
            }
            ServerKind::RingechoEpoll => {
                ServerSpec::ringecho(&bins.ringecho, IoBackend::Epoll, cpu)
            }
            ServerKind::Fastwebsockets => ServerSpec::peer(&bins.fws_echo, cpu),
            ServerKind::Tungstenite => ServerSpec::peer(&bins.tungstenite_echo, cpu),
        }
    }

    /// The binary it runs.
    pub fn binary(self, bins: &Binaries) -> &Path {
        match self {
            ServerKind::RingechoUring | ServerKind::RingechoEpoll => &bins.ringecho,
            ServerKind::Fastwebsockets => &bins.fws_echo,
            ServerKind::Tungstenite => &bins.tungstenite_echo,
        }
    }
}

/// The kinds of scenario (for `--scenarios`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioKind {
    /// The five fastwebsockets published cases, closed loop.
    Closed,
    /// Server CPU per message at a fixed, unsaturating offered rate.
    Cpu,
    /// p50/p99/p99.9 under the game presets (open loop).
    Latency,
    /// Server RSS per idle connection.
    Idle,
}

/// One measured point, run against every server.
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    /// Closed loop, one message in flight per connection (uWS `load_test`).
    Closed {
        /// Connections.
        connections: usize,
        /// Payload bytes.
        size: usize,
    },
    /// Open loop at `connections x rate_hz` messages per second.
    FixedRate {
        /// Connections.
        connections: usize,
        /// Messages per second per connection.
        rate_hz: f64,
        /// Payload bytes.
        size: usize,
    },
    /// A loadgen game preset (open loop, corrected latency).
    Latency {
        /// The preset name (`loadgen --list-presets`).
        preset: &'static str,
        /// Connections, when not the preset's own (`--quick` caps them).
        connections: Option<usize>,
    },
    /// `connections` idle WebSockets.
    IdleRss {
        /// Connections held open.
        connections: usize,
        /// New connections per second.
        connect_rate: f64,
    },
}

/// The fastwebsockets published closed-loop cases: (connections, bytes).
pub const PUBLISHED_CASES: [(usize, usize); 5] = [
    (100, 20),
    (10, 1024),
    (10, 16 * 1024),
    (200, 16 * 1024),
    (500, 16 * 1024),
];

/// The game presets whose latency is compared.
pub const LATENCY_PRESETS: [&str; 2] = ["shooter-128hz", "action-60hz"];

/// Human size: `20 B`, `1 KiB`, `16 KiB`.
pub fn size_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

impl Scenario {
    /// Its kind.
    pub fn kind(&self) -> ScenarioKind {
        match self {
            Scenario::Closed { .. } => ScenarioKind::Closed,
            Scenario::FixedRate { .. } => ScenarioKind::Cpu,
            Scenario::Latency { .. } => ScenarioKind::Latency,
            Scenario::IdleRss { .. } => ScenarioKind::Idle,
        }
    }

    /// Stable identifier (CSV `scenario` column, chart file names).
    pub fn id(&self) -> String {
        match self {
            Scenario::Closed { connections, size } => format!("closed-{connections}x{size}"),
            Scenario::FixedRate {
                connections,
                rate_hz,
                size,
            } => format!("cpu-{connections}x{rate_hz}hzx{size}"),
            Scenario::Latency { preset, .. } => format!("latency-{preset}"),
            Scenario::IdleRss { connections, .. } => format!("idle-{connections}"),
        }
    }

    /// Description for tables and the progress bar.
    pub fn title(&self) -> String {
        match self {
            Scenario::Closed { connections, size } => {
                format!("{connections} x {} closed loop", size_label(*size))
            }
            Scenario::FixedRate {
                connections,
                rate_hz,
                size,
            } => format!(
                "{connections} x {rate_hz} Hz x {} open loop ({} msg/s offered)",
                size_label(*size),
                (*connections as f64 * rate_hz).round()
            ),
            Scenario::Latency {
                preset,
                connections: None,
            } => format!("preset {preset}"),
            Scenario::Latency {
                preset,
                connections: Some(n),
            } => format!("preset {preset}, {n} connections"),
            Scenario::IdleRss { connections, .. } => format!("{connections} idle connections"),
        }
    }

    /// Rough wall time of one point, for the progress bar's ETA.
    pub fn estimate(&self, window: &Window) -> Duration {
        let overhead = Duration::from_millis(800);
        match self {
            Scenario::Closed { .. } | Scenario::FixedRate { .. } | Scenario::Latency { .. } => {
                window.warmup + window.measure + overhead
            }
            Scenario::IdleRss {
                connections,
                connect_rate,
            } => {
                Duration::from_secs_f64(*connections as f64 / connect_rate.max(1.0))
                    + Duration::from_secs(2)
                    + overhead
            }
        }
    }
}

/// The full scenario list in run order, restricted to `kinds`.
/// `scale_down` divides every load scenario's connections (rounding up;
/// `--quick` uses 10: a check that everything runs end to end, where debug
/// builds could not open 500 connections and move 16 KiB echoes within
/// half a second). Scenario ids stay unique.
pub fn scenarios(
    kinds: &[ScenarioKind],
    idle_connections: usize,
    scale_down: Option<usize>,
) -> Vec<Scenario> {
    let cap = |n: usize| scale_down.map_or(n, |d| n.div_ceil(d.max(1)));
    let mut out = Vec::new();
    if kinds.contains(&ScenarioKind::Closed) {
        out.extend(
            PUBLISHED_CASES
                .iter()
                .map(|&(connections, size)| Scenario::Closed {
                    connections: cap(connections),
                    size,
                }),
        );
    }
    if kinds.contains(&ScenarioKind::Cpu) {
        out.push(Scenario::FixedRate {
            connections: cap(100),
            rate_hz: 500.0,
            size: 20,
        });
    }
    if kinds.contains(&ScenarioKind::Latency) {
        out.extend(LATENCY_PRESETS.iter().map(|&preset| Scenario::Latency {
            preset,
            connections: scale_down.and_then(|d| {
                loadgen::presets::find(preset).map(|p| p.connections.div_ceil(d.max(1)))
            }),
        }));
    }
    if kinds.contains(&ScenarioKind::Idle) {
        out.push(Scenario::IdleRss {
            connections: idle_connections,
            connect_rate: 3000.0,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_kind_is_planned() {
        let all = [
            ScenarioKind::Closed,
            ScenarioKind::Cpu,
            ScenarioKind::Latency,
            ScenarioKind::Idle,
        ];
        let list = scenarios(&all, 9000, None);
        assert_eq!(list.len(), 5 + 1 + 2 + 1);
        let mut ids: Vec<_> = list.iter().map(Scenario::id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), list.len());
        assert!(ids.contains(&"closed-200x16384".to_string()));
        assert_eq!(
            scenarios(&[ScenarioKind::Idle], 50, None)[0].id(),
            "idle-50"
        );
        let quick = scenarios(&all, 200, Some(10));
        assert_eq!(quick.len(), list.len(), "--quick runs every scenario");
        let mut quick_ids: Vec<_> = quick.iter().map(Scenario::id).collect();
        quick_ids.sort();
        quick_ids.dedup();
        assert_eq!(quick_ids.len(), list.len(), "ids stay unique when scaled");
        assert!(quick.iter().all(|s| match s {
            Scenario::Closed { connections, .. } | Scenario::FixedRate { connections, .. } =>
                *connections <= 50,
            Scenario::Latency { connections, .. } => connections.is_some_and(|n| n <= 26),
            Scenario::IdleRss { connections, .. } => *connections == 200,
        }));
    }

    #[test]
    fn sizes_read_like_the_published_table() {
        assert_eq!(size_label(20), "20 B");
        assert_eq!(size_label(1024), "1 KiB");
        assert_eq!(size_label(16384), "16 KiB");
        assert_eq!(size_label(1500), "1500 B");
    }

    #[test]
    fn command_line_names_match_the_csv_names() {
        use clap::ValueEnum;
        for kind in ServerKind::ALL {
            let value = kind
                .to_possible_value()
                .expect("every server is selectable");
            assert_eq!(value.get_name(), kind.name());
        }
    }
}
