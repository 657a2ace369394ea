//! The options of `loadgen soak` and how they become a [`SoakConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::{parse_cpus, parse_duration, SizeRange};
use crate::error::{Error, Result};
use crate::io::IoChoice;
use crate::payload::PayloadKind;
use crate::soak::config::SoakConfig;
use crate::soak::mix::{ClassSpec, Mix};
use crate::soak::source;
use crate::target::Target;

/// Options of `loadgen soak`.
#[derive(Debug, Args)]
#[command(after_help = "\
The mix: --players connections in matches send shooter input (--player-size at \
--player-rate), --bursts connections send --burst-messages messages of --burst-size \
back to back every --burst-every, and the rest (the lobby) send a small text message \
at --lobby-rate. --churn connections a second are closed (a close handshake that \
still awaits their echoes) and replaced by new ones of the same class.

Every echo is checked (content, order, length). A message whose echo never came \
before the server's Close is lost. The verdict needs 0 lost, 0 corrupted, 0 \
unexpected closes and 0 failed connects.

Exit codes: 0 clean, 1 runtime error, 2 usage error, 3 every connection failed, \
4 lost or corrupted echoes, 5 unexpected closes or failed connects, 130 stopped by \
Ctrl-C.

Example: loadgen soak ws://127.0.0.1:5000/ws -c 15000 -d 10m --churn 200 --pin 0 \
--csv soak.csv --json soak.json")]
pub struct SoakArgs {
    /// Target URL, e.g. ws://127.0.0.1:5000/ws
    #[arg(value_name = "URL")]
    pub url: String,
    /// WebSockets held at once (players + bursts + lobby).
    #[arg(short, long, value_name = "N", default_value_t = 15_000)]
    pub connections: usize,
    /// How long all of them are held, after the ramp that opens them.
    #[arg(short, long, value_name = "DURATION", default_value = "10m", value_parser = duration_arg)]
    pub duration: Duration,
    /// New connections per second while the ramp opens them.
    #[arg(long, value_name = "PER_SEC", default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Connections closed and replaced per second during the hold.
    #[arg(long, value_name = "PER_SEC", default_value_t = 200.0)]
    pub churn: f64,
    /// Connections in matches, sending input every tick (15 matches of 10).
    #[arg(long, value_name = "N", default_value_t = 150)]
    pub players: usize,
    /// Player tick rate.
    #[arg(long, value_name = "HZ", default_value_t = 128.0)]
    pub player_rate: f64,
    /// Player message size (binary): BYTES or MIN..MAX.
    #[arg(long, value_name = "BYTES|MIN..MAX", default_value = "18..64")]
    pub player_size: String,
    /// Connections that send bursts of large messages.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub bursts: usize,
    /// Size of each burst message (binary).
    #[arg(long, value_name = "BYTES", default_value = "16KiB")]
    pub burst_size: String,
    /// Messages per burst, sent back to back.
    #[arg(long, value_name = "K", default_value_t = 4)]
    pub burst_messages: usize,
    /// Time between a connection's bursts.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration_arg)]
    pub burst_every: Duration,
    /// Messages per second of each lobby connection.
    #[arg(long, value_name = "HZ", default_value_t = 0.2)]
    pub lobby_rate: f64,
    /// Lobby message size (text, at least 32 B): BYTES or MIN..MAX.
    #[arg(long, value_name = "BYTES|MIN..MAX", default_value = "32..256")]
    pub lobby_size: String,
    /// Length of one time-series interval (a row of --csv, a live line).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration_arg)]
    pub interval: Duration,
    /// Give up on a connect + handshake after this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration_arg)]
    pub connect_timeout: Duration,
    /// Time a close may take: the server's remaining echoes and Close, then
    /// its end of the TCP connection.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration_arg)]
    pub close_timeout: Duration,
    /// Client source addresses: auto (127.0.0.1-127.0.0.16 for a 127.x
    /// target, else the system's choice), none, or a list such as
    /// 127.0.0.1-127.0.0.64,127.0.1.1.
    #[arg(long, value_name = "auto|none|LIST", default_value = "auto")]
    pub source_addrs: String,
    /// Worker threads, one event loop each.
    #[arg(short, long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// Pin worker i to CPU list[i % len], e.g. 0 or 0,1 or 0-3.
    #[arg(long, value_name = "CPUS")]
    pub pin: Option<String>,
    /// Write the report (totals, verdict and the time series) as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the time series as CSV, one row per interval as it ends.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// No live line.
    #[arg(short, long)]
    pub quiet: bool,
    /// I/O driver: io_uring, epoll, or auto (io_uring when it works here,
    /// else epoll, saying why on stderr). The report names the one that ran.
    #[arg(
        long,
        value_enum,
        value_name = "DRIVER",
        env = "LOADGEN_IO",
        default_value = "auto"
    )]
    pub io: IoChoice,
}

fn duration_arg(s: &str) -> std::result::Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

impl SoakArgs {
    /// Resolves the target, builds the mix and validates.
    pub fn into_config(self) -> Result<SoakConfig> {
        let target = Target::parse(&self.url)?;
        let addr = target.resolve()?;
        if self.players + self.bursts > self.connections {
            return Err(Error::Config(format!(
                "--players {} + --bursts {} exceed --connections {}",
                self.players, self.bursts, self.connections
            )));
        }
        if self.burst_every.is_zero() {
            return Err(Error::Config("--burst-every must be positive".into()));
        }
        let burst_size = SizeRange::parse(&self.burst_size)?;
        let mix = Mix {
            classes: [
                ClassSpec {
                    name: "player",
                    connections: self.players,
                    rate_hz: self.player_rate,
                    per_tick: 1,
                    size: SizeRange::parse(&self.player_size)?,
                    payload: PayloadKind::Binary,
                    // A game client sends every tick whatever comes back;
                    // 16 ticks (125 ms at 128 Hz) of room.
                    window: 16,
                },
                ClassSpec {
                    name: "burst",
                    connections: self.bursts,
                    rate_hz: 1.0 / self.burst_every.as_secs_f64(),
                    per_tick: self.burst_messages,
                    size: burst_size,
                    payload: PayloadKind::Binary,
                    window: self.burst_messages.max(1) * 2,
                },
                ClassSpec {
                    name: "lobby",
                    connections: self.connections - self.players - self.bursts,
                    rate_hz: self.lobby_rate,
                    per_tick: 1,
                    size: SizeRange::parse(&self.lobby_size)?,
                    payload: PayloadKind::Text,
                    window: 4,
                },
            ],
        };
        let cfg = SoakConfig {
            sources: source::parse_sources(&self.source_addrs, addr)?,
            target,
            addr,
            mix,
            duration: self.duration,
            connect_rate: self.connect_rate,
            churn_rate: self.churn,
            connect_timeout: self.connect_timeout,
            close_timeout: self.close_timeout,
            interval: self.interval,
            threads: self.threads,
            pin: self.pin.as_deref().map(parse_cpus).transpose()?,
            json: self.json,
            csv: self.csv,
            quiet: self.quiet,
            io: self.io,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::mix::{BURST, LOBBY, PLAYER};
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: SoakArgs,
    }

    fn cfg(args: &[&str]) -> Result<SoakConfig> {
        let mut v = vec!["soak", "ws://127.0.0.1:1/ws"];
        v.extend_from_slice(args);
        Wrapper::try_parse_from(v).unwrap().args.into_config()
    }

    #[test]
    fn defaults_are_the_full_soak() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.mix.total(), 15_000);
        assert_eq!(c.duration, Duration::from_secs(600));
        assert_eq!(c.churn_rate, 200.0);
        assert_eq!(c.mix.classes[PLAYER].rate_hz, 128.0);
        assert_eq!(c.mix.classes[BURST].size.min, 16 * 1024);
        assert_eq!(c.mix.classes[BURST].rate_hz, 0.5);
        assert_eq!(c.mix.classes[LOBBY].connections, 15_000 - 150 - 100);
        assert_eq!(c.mix.classes[LOBBY].rate_hz, 0.2);
        assert_eq!(c.mix.classes[LOBBY].payload, PayloadKind::Text);
        assert_eq!(c.sources.len(), 16);
        assert_eq!(c.ramp(), Duration::from_millis(7500));
    }

    #[test]
    fn rejects_impossible_mixes() {
        assert!(cfg(&["-c", "10", "--players", "8", "--bursts", "3"]).is_err());
        assert!(cfg(&["--lobby-size", "20"]).is_err());
        assert!(cfg(&["--player-size", "8"]).is_err());
        assert!(cfg(&["--connect-rate", "0"]).is_err());
        assert!(cfg(&["--churn=-1"]).is_err());
        assert!(cfg(&["--burst-every", "0"]).is_err());
        assert!(cfg(&["--burst-messages", "0"]).is_err());
        assert!(cfg(&["-c", "0", "--players", "0", "--bursts", "0"]).is_err());
    }
}
