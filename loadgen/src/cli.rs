//! Command-line options and how they become a [`RunConfig`].
//!
//! Every load option is optional here so that three layers can be told
//! apart: an explicit option beats the `--preset`, which beats the
//! built-in default.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{parse_cpus, parse_duration, Mode, RunConfig, SizeRange};
use crate::error::{Error, Result};
use crate::io::IoChoice;
use crate::payload::PayloadKind;
use crate::presets;
use crate::target::Target;

/// Game-grade WebSocket load generator with HdrHistogram latency percentiles.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 every connection failed, \
                  4 bad echoes, 5 some connections failed or were lost, 130 stopped by Ctrl-C \
                  (the report covers the part that ran; a second Ctrl-C quits at once).\n\
                  Examples:\n  loadgen ws://127.0.0.1:5000/ws --preset fws-100x20 --pin 0\n  \
                  loadgen ws://127.0.0.1:5000/ws --mode open --rate 128 -c 200 --size 18..64 \
                  --hlog run.hlog\n  loadgen merge a.hlog b.hlog\n  \
                  loadgen merge host1.json host2.json --json all.json\n  \
                  loadgen soak ws://127.0.0.1:5000/ws -c 15000 -d 10m --csv soak.csv"
)]
pub struct Cli {
    /// A subcommand (`merge`); without one, run a load.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Load options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Merge HdrHistogram interval logs (from --hlog), or JSON reports
    /// (from --json), into one correct report. Histograms are added;
    /// percentiles are never averaged.
    Merge(MergeArgs),
    /// Hold many WebSockets for a long time with a game host's traffic mix
    /// and churn; check every echo and every close (see `loadgen soak --help`).
    Soak(Box<crate::soak::cli::SoakArgs>),
}

/// Options of `loadgen merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Interval logs (.hlog), or JSON reports, to merge (all of one kind).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Also write the merged report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Open or closed loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Keep --in-flight messages outstanding per connection.
    Closed,
    /// Send at --rate Hz per connection, latency from the intended send time.
    Open,
}

/// Options of a load run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Target URL, e.g. ws://127.0.0.1:5000/ws
    #[arg(value_name = "URL")]
    pub url: Option<String>,
    /// Use a named workload for the defaults (see --list-presets).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Describe the presets and exit.
    #[arg(long)]
    pub list_presets: bool,
    /// Number of connections [default: 100].
    #[arg(short, long, value_name = "N")]
    pub connections: Option<usize>,
    /// New connections per second; 0 opens them all at once [default: 2000].
    #[arg(long, value_name = "PER_SEC")]
    pub connect_rate: Option<f64>,
    /// Give up on a connect + handshake after this long, checked at the
    /// deadline (within ~10 ms) [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub connect_timeout: Option<Duration>,
    /// closed: next message as soon as an echo returns. open: fixed tick rate [default: closed].
    #[arg(short, long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Messages outstanding per connection (open mode: the most that may be) [default: 1].
    #[arg(short = 'k', long, value_name = "K")]
    pub in_flight: Option<usize>,
    /// Messages per second per connection; on its own it selects the open loop.
    #[arg(short, long, value_name = "HZ")]
    pub rate: Option<f64>,
    /// Payload size: BYTES (20, 1KiB, 16k) or a range MIN..MAX [default: 20].
    #[arg(short, long, value_name = "BYTES|MIN..MAX")]
    pub size: Option<String>,
    /// Send text messages (valid UTF-8, at least 32 B).
    #[arg(long, conflicts_with_all = ["binary", "snapshots"])]
    pub text: bool,
    /// Send binary messages (the default, at least 16 B).
    #[arg(long, conflicts_with = "snapshots")]
    pub binary: bool,
    /// Send text messages shaped like JSON game-state snapshots, which
    /// compress like real state sync (at least 32 B).
    #[arg(long)]
    pub snapshots: bool,
    /// Offer permessage-deflate (RFC 7692) with no context takeover either
    /// way, send every message compressed, and inflate and check every
    /// compressed echo. A connection whose server declines it fails
    /// (`deflate_not_agreed`); the report lists the parameters agreed.
    #[arg(long)]
    pub permessage_deflate: bool,
    /// The Sec-WebSocket-Extensions offer to make instead of the default
    /// "permessage-deflate; client_no_context_takeover;
    /// server_no_context_takeover" (implies --permessage-deflate; it must
    /// include server_no_context_takeover).
    #[arg(long, value_name = "OFFER")]
    pub deflate_offer: Option<String>,
    /// Measured time after the warmup [default: 10s].
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub duration: Option<Duration>,
    /// Time before measuring; its samples are left out of the histograms [default: 1s].
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub warmup: Option<Duration>,
    /// Worker threads, one event loop each [default: 1].
    #[arg(short, long, value_name = "N")]
    pub threads: Option<usize>,
    /// Pin worker i to CPU list[i % len], e.g. 0 or 0,1 or 0-3.
    #[arg(long, value_name = "CPUS")]
    pub pin: Option<String>,
    /// Write the report as JSON (stable schema, see README).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write an HdrHistogram interval log (V2 compressed, ns), one interval
    /// per second as the run goes (tail -f works; Ctrl-C leaves a valid log).
    #[arg(long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,
    /// No live line.
    #[arg(short, long)]
    pub quiet: bool,
    /// Reopen a connection the server drops (e.g. close 1001 from a host
    /// that is restarting) and send its unanswered messages again; the
    /// report counts the reconnects.
    #[arg(long)]
    pub reconnect: bool,
    /// Start the load at this wall-clock time (seconds since the epoch), so
    /// that loadgens on several hosts measure the same window.
    #[arg(long, value_name = "UNIX_TIME", value_parser = parse_start_at_arg)]
    pub start_at: Option<std::time::SystemTime>,
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

fn parse_start_at_arg(s: &str) -> std::result::Result<std::time::SystemTime, String> {
    crate::start_at::parse(s).map_err(|e| e.to_string())
}

fn parse_duration_arg(s: &str) -> std::result::Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

impl RunArgs {
    /// Fills defaults (explicit option > preset > built-in), resolves the
    /// target and validates.
    pub fn into_config(self) -> Result<RunConfig> {
        let preset = match &self.preset {
            Some(name) => Some(presets::find(name).ok_or_else(|| {
                Error::Config(format!(
                    "unknown preset {name:?}; known: {}",
                    presets::PRESETS
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?),
            None => None,
        };
        let url = self.url.ok_or_else(|| {
            Error::Config("missing target URL (e.g. ws://127.0.0.1:5000/ws)".into())
        })?;
        let target = Target::parse(&url)?;
        let addr = target.resolve()?;

        let mode = Mode::from_flags(
            self.mode.map(|m| m == ModeArg::Closed),
            self.rate,
            preset.map(|p| p.mode),
        )
        .map_err(Error::Config)?
        .unwrap_or(Mode::Closed);
        let size = match &self.size {
            Some(s) => SizeRange::parse(s)?,
            None => preset
                .map(|p| p.size)
                .unwrap_or(SizeRange { min: 20, max: 20 }),
        };
        let payload = if self.text {
            PayloadKind::Text
        } else if self.binary {
            PayloadKind::Binary
        } else if self.snapshots {
            PayloadKind::Json
        } else {
            preset.map(|p| p.payload).unwrap_or(PayloadKind::Binary)
        };
        let permessage_deflate = match self.deflate_offer {
            Some(offer) => {
                let lower = offer.to_ascii_lowercase();
                if !(lower.starts_with("permessage-deflate")
                    && lower.contains("server_no_context_takeover")
                    && !lower.contains(','))
                {
                    return Err(Error::Config(format!(
                        "--deflate-offer {offer:?}: one permessage-deflate offer with \
                         server_no_context_takeover (loadgen inflates every echo on its own)"
                    )));
                }
                Some(offer)
            }
            None if self.permessage_deflate || preset.is_some_and(|p| p.permessage_deflate) => {
                Some(crate::deflate::DEFAULT_OFFER.to_string())
            }
            None => None,
        };
        let pin = self.pin.as_deref().map(parse_cpus).transpose()?;
        let cfg = RunConfig {
            target,
            addr,
            connections: self
                .connections
                .or(preset.map(|p| p.connections))
                .unwrap_or(100),
            connect_rate: self.connect_rate.unwrap_or(2000.0),
            connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(5)),
            mode,
            in_flight: self.in_flight.or(preset.map(|p| p.in_flight)).unwrap_or(1),
            size,
            payload,
            permessage_deflate,
            duration: self.duration.unwrap_or(Duration::from_secs(10)),
            warmup: self.warmup.unwrap_or(Duration::from_secs(1)),
            threads: self.threads.unwrap_or(1),
            pin,
            preset: preset.map(|p| p.name.to_string()),
            json: self.json,
            hlog: self.hlog,
            quiet: self.quiet,
            reconnect: self.reconnect,
            start_at: self.start_at,
            io: self.io,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<RunConfig> {
        let mut v = vec!["loadgen"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap().run.into_config()
    }

    #[test]
    fn defaults_presets_and_overrides() {
        let c = cfg(&["ws://127.0.0.1:1/ws"]).unwrap();
        assert_eq!((c.connections, c.in_flight, c.size.min), (100, 1, 20));
        assert_eq!(c.mode, Mode::Closed);
        let c = cfg(&[
            "ws://127.0.0.1:1/ws",
            "--preset",
            "shooter-128hz",
            "-c",
            "7",
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Open { rate_hz: 128.0 });
        assert_eq!(c.connections, 7);
        assert_eq!(c.size, SizeRange { min: 18, max: 64 });
        let c = cfg(&[
            "ws://127.0.0.1:1/ws",
            "--preset",
            "shooter-128hz",
            "--rate",
            "64",
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Open { rate_hz: 64.0 });
    }

    #[test]
    fn rate_alone_selects_the_open_loop() {
        let c = cfg(&["ws://127.0.0.1:1/ws", "--rate", "10"]).unwrap();
        assert_eq!(c.mode, Mode::Open { rate_hz: 10.0 });
        let c = cfg(&[
            "ws://127.0.0.1:1/ws",
            "--preset",
            "fws-100x20",
            "--rate",
            "20",
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Open { rate_hz: 20.0 });
    }

    #[test]
    fn rejects_contradictions() {
        assert!(cfg(&["ws://127.0.0.1:1/ws", "--mode", "open"]).is_err());
        assert!(cfg(&["ws://127.0.0.1:1/ws", "--mode", "closed", "--rate", "10"]).is_err());
        assert!(cfg(&["ws://127.0.0.1:1/ws", "--size", "8"]).is_err());
        assert!(cfg(&["ws://127.0.0.1:1/ws", "--text", "--size", "20"]).is_err());
        assert!(cfg(&["ws://127.0.0.1:1/ws", "--preset", "nope"]).is_err());
        assert!(cfg(&[]).is_err());
    }

    #[test]
    fn merge_subcommand() {
        let cli = Cli::try_parse_from(["loadgen", "merge", "a.hlog", "b.hlog"]).unwrap();
        match cli.command {
            Some(Command::Merge(m)) => assert_eq!(m.files.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
