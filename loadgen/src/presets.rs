//! Named workloads: the fastwebsockets published scenarios and game traffic.
//!
//! A preset only supplies defaults; any option given on the command line
//! wins (`--preset shooter-128hz --connections 500`).
//!
//! The game presets follow common game traffic: tick rates of real games (VALORANT
//! 128 Hz, Source 66/30 Hz, Colyseus patches 20 Hz), input commands of
//! about 18-64 B per tick, state snapshots of a few hundred bytes up to
//! ~1,400 B (one MTU), rooms of 2-64 players. Each runs in open mode with
//! one message in flight, so a server that cannot keep up shows as
//! corrected latency, the number a game feels.

use crate::config::{Mode, SizeRange};
use crate::payload::PayloadKind;

/// A named workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    /// Name used with `--preset`.
    pub name: &'static str,
    /// What it models and where the numbers come from.
    pub about: &'static str,
    /// Closed or open loop.
    pub mode: Mode,
    /// Connections.
    pub connections: usize,
    /// Payload sizes.
    pub size: SizeRange,
    /// Messages in flight per connection.
    pub in_flight: usize,
    /// Payload kind.
    pub payload: PayloadKind,
    /// Offer permessage-deflate and compress every message.
    pub permessage_deflate: bool,
}

const fn fixed(n: usize) -> SizeRange {
    SizeRange { min: n, max: n }
}

const fn closed(
    name: &'static str,
    about: &'static str,
    connections: usize,
    size: usize,
) -> Preset {
    Preset {
        name,
        about,
        mode: Mode::Closed,
        connections,
        size: fixed(size),
        in_flight: 1,
        payload: PayloadKind::Binary,
        permessage_deflate: false,
    }
}

const fn game(
    name: &'static str,
    about: &'static str,
    rate_hz: f64,
    connections: usize,
    min: usize,
    max: usize,
) -> Preset {
    Preset {
        name,
        about,
        mode: Mode::Open { rate_hz },
        connections,
        size: SizeRange { min, max },
        in_flight: 1,
        payload: PayloadKind::Binary,
        permessage_deflate: false,
    }
}

/// All presets, in the order `--list-presets` shows them.
pub const PRESETS: &[Preset] = &[
    closed(
        "fws-100x20",
        "fastwebsockets table: 100 connections x 20 B, closed loop, 1 in flight (uWS load_test)",
        100,
        20,
    ),
    closed(
        "fws-10x1k",
        "fastwebsockets table: 10 connections x 1 KiB, closed loop, 1 in flight",
        10,
        1024,
    ),
    closed(
        "fws-10x16k",
        "fastwebsockets table: 10 connections x 16 KiB, closed loop, 1 in flight",
        10,
        16 * 1024,
    ),
    closed(
        "fws-200x16k",
        "fastwebsockets table: 200 connections x 16 KiB, closed loop, 1 in flight",
        200,
        16 * 1024,
    ),
    closed(
        "fws-500x16k",
        "fastwebsockets table: 500 connections x 16 KiB, closed loop, 1 in flight",
        500,
        16 * 1024,
    ),
    game(
        "shooter-128hz",
        "competitive shooter (VALORANT-style 128 Hz, 7.8 ms frame): small input commands \
         18-64 B every tick; 200 players (e.g. 20 rooms of 10)",
        128.0,
        200,
        18,
        64,
    ),
    game(
        "action-60hz",
        "action game at 60 Hz (Source-style 66 Hz class): inputs plus small events, \
         32-128 B; 256 players (4 rooms of 64)",
        60.0,
        256,
        32,
        128,
    ),
    game(
        "moba-30hz",
        "MOBA at 30 Hz (Source's lower tick class): commands and partial state, \
         64-512 B; 500 players (50 rooms of 10)",
        30.0,
        500,
        64,
        512,
    ),
    game(
        "casual-20hz",
        "casual / state-sync game at 20 Hz (Colyseus patch rate): state snapshots from a few \
         hundred bytes up to one MTU, 200-1400 B; 1000 players",
        20.0,
        1000,
        200,
        1400,
    ),
    Preset {
        payload: PayloadKind::Json,
        permessage_deflate: true,
        ..game(
            "snapshots-deflate",
            "state sync with compression: JSON state snapshots of 200-1400 B at 20 Hz, sent \
             compressed with permessage-deflate (no context takeover); 1000 players",
            20.0,
            1000,
            200,
            1400,
        )
    },
];

/// Looks a preset up by name.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The text of `--list-presets`.
pub fn describe_all() -> String {
    let mut out = String::from("presets (command-line options override any field):\n");
    for p in PRESETS {
        let mode = match p.mode {
            Mode::Closed => format!("closed, {} in flight", p.in_flight),
            Mode::Open { rate_hz } => format!("open at {rate_hz} Hz"),
        };
        let deflate = if p.permessage_deflate {
            ", permessage-deflate"
        } else {
            ""
        };
        out.push_str(&format!(
            "\n  {:<14} {} conns x {} {}, {mode}{deflate}\n  {:<14} {}\n",
            p.name,
            p.connections,
            p.size,
            p.payload.name(),
            "",
            p.about
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_unique() {
        for (i, p) in PRESETS.iter().enumerate() {
            assert!(p.size.min >= p.payload.min_size(), "{}", p.name);
            assert!(p.size.min <= p.size.max);
            assert!(PRESETS[..i].iter().all(|q| q.name != p.name));
            assert_eq!(find(p.name), Some(p));
        }
        assert!(describe_all().contains("shooter-128hz"));
    }
}
