//! Command-line options and the validated engine configuration.
//!
//! [`Options`] is what the user types (parsed by clap); [`Config`] is what the
//! engine runs with. The options mirror ASP.NET Core's `WebSocketOptions`
//! (`KeepAliveInterval`, `KeepAliveTimeout`, `ReceiveBufferSize`,
//! `AllowedOrigins`) plus the knobs a thread-per-core server needs.
//! [`Options::into_config`] rejects nonsensical combinations with an error that
//! names the option, so bad input never reaches a worker.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use thiserror::Error;

/// The most ring entries one provided-buffer ring may have (a kernel limit).
pub const MAX_RECEIVE_BUFFERS: usize = 32_768;
/// The smallest receive buffer we accept; smaller entries only add CQEs.
pub const MIN_RECEIVE_BUFFER_SIZE: usize = 64;
/// The largest receive buffer we accept (the kernel takes a `u32` length).
pub const MAX_RECEIVE_BUFFER_SIZE: usize = 1 << 20;
/// The smallest kernel socket buffer (`SO_RCVBUF`/`SO_SNDBUF`) we accept;
/// Linux raises anything below about 2 KiB to its own minimum anyway.
pub const MIN_SOCKET_BUFFER: usize = 1024;
/// The largest kernel socket buffer we accept: the kernel doubles the value
/// and keeps it in an `int`.
pub const MAX_SOCKET_BUFFER: usize = 512 << 20;
/// The smallest `--max-backpressure` we accept: below one 16 KiB echo the
/// engine would stop receiving after almost every message.
pub const MIN_MAX_BACKPRESSURE: usize = 16 << 10;

/// Which I/O backend the workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IoChoice {
    /// io_uring when a ring can be created, otherwise epoll (logged once).
    Auto,
    /// io_uring only: multishot accept and recv into a provided-buffer ring.
    Uring,
    /// Plain tokio (epoll), one current-thread runtime per worker.
    Epoll,
}

/// The backend a worker actually runs, after `auto` has been resolved. The
/// one model of "backend" in the workspace: `tune` and the bench runners
/// take and report it too (its name is the value of `--io`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum IoBackend {
    /// The io_uring workers of [`crate::uring`], each owning its loop.
    Uring,
    /// tokio's epoll reactor.
    Epoll,
}

impl IoBackend {
    /// Both backends, io_uring first.
    pub const ALL: [IoBackend; 2] = [IoBackend::Uring, IoBackend::Epoll];

    /// The lowercase name used in logs, `/healthz` and the CLI (`--io`).
    pub fn name(self) -> &'static str {
        match self {
            IoBackend::Uring => "uring",
            IoBackend::Epoll => "epoll",
        }
    }

    /// Whether `--receive-buffer-size` and `--receive-buffers` change
    /// anything: they size io_uring's provided-buffer ring; epoll reads
    /// into fastwebsockets' own buffers.
    pub fn uses_receive_ring(self) -> bool {
        self == IoBackend::Uring
    }
}

impl std::fmt::Display for IoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name other than `uring` or `epoll`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown backend `{0}` (uring or epoll)")]
pub struct UnknownBackend(pub String);

impl std::str::FromStr for IoBackend {
    type Err = UnknownBackend;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        IoBackend::ALL
            .into_iter()
            .find(|backend| backend.name() == name)
            .ok_or_else(|| UnknownBackend(name.to_owned()))
    }
}

/// ringecho: a thread-per-core io_uring WebSocket echo engine.
///
/// Durations take units (`250ms`, `2s`, `1m`) or plain seconds; sizes take
/// units (`4KiB`, `16MiB`) or plain bytes.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "ringecho",
    version,
    about,
    after_help = "Endpoints:\n  \
                  GET /          the sample page (Connect, Send, Close Socket, Communication Log)\n  \
                  GET /ws        WebSocket echo\n  \
                  GET /healthz   JSON status: backend, workers, connections per worker\n  \
                  GET /metrics   Prometheus metrics (OpenMetrics text)\n  \
                  GET /stats     live counters as server-sent events, one a second\n  \
                  anything else  404\n\
                  Exit codes: 0 stopped by SIGINT or SIGTERM after closing its WebSockets, \
                  1 a runtime error (cannot listen, the address is taken, io_uring unavailable \
                  with --io uring, a worker failed), 2 usage error (a bad option value, named in \
                  the one-line message).\n\
                  Logs go to stderr (RUST_LOG filters them; no colours unless stderr is a \
                  terminal and NO_COLOR is unset)."
)]
pub struct Options {
    /// Address to listen on (every worker binds it with SO_REUSEPORT; port 0 picks a free port).
    ///
    /// An address another process already listens on is refused (a second
    /// engine would silently take half of the connections); see
    /// --join-existing.
    #[arg(long, default_value = "127.0.0.1:5000", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Join the SO_REUSEPORT group of an engine already listening on --listen, on purpose: for a restart with no downtime, start the new engine with this, then stop the old one with SIGTERM.
    #[arg(long)]
    pub join_existing: bool,

    /// Log only warnings and errors (no start-up lines); RUST_LOG, when set, still decides.
    #[arg(short, long)]
    pub quiet: bool,

    /// Number of workers, one per core [default: the cores available to this process].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Do not pin worker i to core i.
    #[arg(long)]
    pub no_pin: bool,

    /// I/O backend: `auto` tries io_uring and falls back to epoll.
    #[arg(long, value_enum, default_value_t = IoChoice::Auto, value_name = "BACKEND")]
    pub io: IoChoice,

    /// Send a ping to every WebSocket this often (KeepAliveInterval); 0 turns pings off.
    #[arg(long, default_value = "120s", value_parser = parse_duration, value_name = "DUR")]
    pub keep_alive_interval: Duration,

    /// Close a WebSocket whose pong has not arrived this long after a ping (KeepAliveTimeout); 0 = off.
    #[arg(long, default_value = "0", value_parser = parse_duration, value_name = "DUR")]
    pub keep_alive_timeout: Duration,

    /// Size of one receive buffer in the io_uring provided-buffer ring (ReceiveBufferSize).
    ///
    /// The ring is consumed incrementally, so a small message takes only its
    /// bytes of a buffer and a large buffer costs small messages nothing,
    /// while a frame that fits one buffer takes one recv completion where
    /// 4 KiB buffers take five for 16 KiB (results/profile-16k-buffers.md).
    #[arg(long, default_value = "64KiB", value_parser = parse_size, value_name = "BYTES")]
    pub receive_buffer_size: usize,

    /// Receive buffers per worker ring (a power of two, at most 32768); shared by all connections of that worker.
    ///
    /// Echoes are sent from these buffers, so a buffer stays out of the ring
    /// until its echo is sent: the ring must hold a turn's in-flight bytes.
    /// 512 x 64 KiB (32 MiB of address space per worker) holds 500
    /// connections' 16 KiB messages at once. Only the working set is
    /// published (twice the most the kernel took in one turn lately, most
    /// recently used first, at least 128 KiB of it), and cold buffers give
    /// their memory back, so a light load touches a few hundred KiB of it. `tune` sweeps the ring
    /// for a workload. A ring that runs dry costs speed, never correctness.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub receive_buffers: usize,

    /// Kernel receive buffer of every connection (SO_RCVBUF) [default: kernel default, autotuned].
    ///
    /// Set on the listeners before listen(); accepted sockets inherit it on
    /// both backends. Setting it turns off the kernel's receive autotuning for
    /// those sockets; Linux doubles the value for bookkeeping and caps it at
    /// net.core.rmem_max (the effective value is logged at start).
    #[arg(long, value_parser = parse_size, value_name = "BYTES")]
    pub socket_receive_buffer: Option<usize>,

    /// Kernel send buffer of every connection (SO_SNDBUF) [default: kernel default, autotuned].
    ///
    /// Inherited like --socket-receive-buffer; capped at net.core.wmem_max.
    #[arg(long, value_parser = parse_size, value_name = "BYTES")]
    pub socket_send_buffer: Option<usize>,

    /// Allow WebSocket upgrades only from this Origin (repeatable); others get 403. Requests without an Origin header are allowed.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,

    /// Largest message accepted, counting all its fragments; larger ones are closed with 1009.
    #[arg(long, default_value = "16MiB", value_parser = parse_size, value_name = "BYTES")]
    pub max_message_size: usize,

    /// Most open WebSockets across all workers; further handshakes get 503 [default: unlimited].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,

    /// Most echo bytes one connection may have queued in the engine and not yet accepted by the kernel (uWebSockets' maxBackpressure); at least 16KiB.
    ///
    /// Above it the engine stops receiving from that connection until the
    /// queue drains below half, so a client that never reads its echoes
    /// cannot hold server memory. On the epoll backend the echo loop never
    /// queues more than the frame it is writing: a write to a full kernel
    /// send buffer waits, and the loop stops reading by itself, so there the
    /// cap is the kernel's send buffer (see --socket-send-buffer).
    #[arg(long, default_value = "1MiB", value_parser = parse_size, value_name = "BYTES")]
    pub max_backpressure: usize,

    /// Close a connection whose echoes have been stuck above --max-backpressure this long (close 1008, then drop); 0 = never.
    ///
    /// On the epoll backend "stuck" means a write to the kernel has waited
    /// this long without progress. The 1008 close frame cannot get through
    /// a full send buffer there, so the TCP connection is simply dropped.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DUR")]
    pub backpressure_timeout: Duration,

    /// Drop a connection whose HTTP request (or upgrade) is not complete within this time.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DUR")]
    pub handshake_timeout: Duration,

    /// Accept permessage-deflate (RFC 7692) when a client offers it.
    ///
    /// By default the server asks for no context takeover in both
    /// directions: each message is compressed on its own, one inflater and
    /// one deflater per worker serve every connection, and an idle
    /// connection holds no compression memory. When the client's window
    /// fits the server's, the echo is the client's own compressed bytes.
    #[arg(long)]
    pub permessage_deflate: bool,

    /// With --permessage-deflate: keep LZ77 windows across messages where
    /// the client allows it (better compression, for memory per connection:
    /// about 17 KB to inflate and 337 KB with the deflater too, measured; see the README).
    #[arg(long, requires = "permessage_deflate")]
    pub deflate_context_takeover: bool,

    /// On SIGINT/SIGTERM, wait this long for clients to finish the close handshake.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DUR")]
    pub shutdown_timeout: Duration,

    /// After the engine closes a WebSocket itself (1002, 1007, 1008, 1009, or 1001 at shutdown), keep reading and discarding what the client still sends for at most this long, so that the client receives the close frame rather than a reset; 0 closes at once.
    ///
    /// Closing a socket with unread bytes makes the kernel answer with a
    /// reset, and the client's kernel may then drop the close frame before
    /// the application reads it (a browser reports 1006). So, like nginx's
    /// `lingering_close`, the engine sends its close frame, shuts down its
    /// write side, and reads and discards until the client's end of stream,
    /// this much time, or --linger-bytes, whichever comes first; then it
    /// closes. The default lets a client finish a few MiB it had already
    /// started sending.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DUR")]
    pub linger_time: Duration,

    /// The most bytes a closing connection reads and discards (see --linger-time); a client that sends more is cut off.
    #[arg(long, default_value = "8MiB", value_parser = parse_size, value_name = "BYTES")]
    pub linger_bytes: usize,
}

/// The validated configuration every worker runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address every worker's listener binds.
    pub listen: SocketAddr,
    /// Whether to join listeners already bound to `listen` (`--join-existing`)
    /// instead of refusing the address.
    pub join_existing: bool,
    /// Number of workers.
    pub threads: usize,
    /// Whether worker i is pinned to core i.
    pub pin: bool,
    /// Requested backend (resolved per process by [`crate::server`]).
    pub io: IoChoice,
    /// Ping period; `None` when pings are off.
    pub keep_alive_interval: Option<Duration>,
    /// Pong deadline after a ping; `None` when off.
    pub keep_alive_timeout: Option<Duration>,
    /// Bytes per provided receive buffer.
    pub receive_buffer_size: usize,
    /// Provided receive buffers per worker (a power of two).
    pub receive_buffers: usize,
    /// Kernel socket buffers for accepted connections (`None`: kernel default).
    pub socket_buffers: SocketBuffers,
    /// Allowed `Origin` values, lowercased; empty means any origin.
    pub allowed_origins: Vec<String>,
    /// Largest accepted message, all fragments together.
    pub max_message_size: usize,
    /// Most open WebSockets across workers.
    pub max_connections: Option<usize>,
    /// Most echo bytes one connection may have queued in the engine before
    /// the engine stops receiving from it (until the queue is below half).
    /// The epoll backend queues at most the frame it is writing, so its cap
    /// is the kernel's send buffer; this value is for engines that queue.
    pub max_backpressure: usize,
    /// How long a connection may stay above `max_backpressure` (on epoll:
    /// how long a write may wait without progress) before it is closed with
    /// 1008 and dropped; `None` means never.
    pub backpressure_timeout: Option<Duration>,
    /// Deadline for the HTTP request that precedes a WebSocket.
    pub handshake_timeout: Duration,
    /// Grace period for the close handshake at shutdown.
    pub shutdown_timeout: Duration,
    /// How permessage-deflate is negotiated; `None`: it is declined.
    pub permessage_deflate: Option<crate::protocol::deflate::Policy>,
    /// How a connection the engine closes itself lingers; `None`: it
    /// closes at once.
    pub linger: Option<Linger>,
}

/// The bounds of a lingering close (`--linger-time`, `--linger-bytes`):
/// after its close frame, a connection the engine closes shuts down its
/// write side and reads and discards until the client's end of stream,
/// `time`, or `bytes`, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linger {
    /// The longest a closing connection goes on reading.
    pub time: Duration,
    /// The most bytes it reads and discards.
    pub bytes: usize,
}

/// The kernel socket buffer sizes asked for with `--socket-receive-buffer`
/// and `--socket-send-buffer`; `None` leaves the kernel default (autotuned).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketBuffers {
    /// `SO_RCVBUF` in bytes, as requested (the kernel doubles it).
    pub receive: Option<usize>,
    /// `SO_SNDBUF` in bytes, as requested (the kernel doubles it).
    pub send: Option<usize>,
}

/// A configuration the engine refuses to run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// An option's value is out of range or inconsistent with another option.
    #[error("invalid value for --{option}: {reason}")]
    Invalid {
        /// The option's long name, without dashes.
        option: &'static str,
        /// Why the value is refused.
        reason: String,
    },
}

fn invalid(option: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        option,
        reason: reason.into(),
    }
}

fn non_zero(duration: Duration) -> Option<Duration> {
    (!duration.is_zero()).then_some(duration)
}

impl Options {
    /// Validates the options and turns them into a [`Config`].
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let threads = match self.threads {
            Some(0) => return Err(invalid("threads", "must be at least 1")),
            Some(n) if n > 1024 => return Err(invalid("threads", "must be at most 1024")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let buffers = self.receive_buffers;
        if buffers == 0 || !buffers.is_power_of_two() || buffers > MAX_RECEIVE_BUFFERS {
            return Err(invalid(
                "receive-buffers",
                format!("{buffers} is not a power of two between 1 and {MAX_RECEIVE_BUFFERS}"),
            ));
        }
        let size = self.receive_buffer_size;
        if !(MIN_RECEIVE_BUFFER_SIZE..=MAX_RECEIVE_BUFFER_SIZE).contains(&size) {
            return Err(invalid(
                "receive-buffer-size",
                format!(
                    "{size} bytes is outside {MIN_RECEIVE_BUFFER_SIZE} B..={} KiB",
                    MAX_RECEIVE_BUFFER_SIZE / 1024
                ),
            ));
        }
        for (option, value) in [
            ("socket-receive-buffer", self.socket_receive_buffer),
            ("socket-send-buffer", self.socket_send_buffer),
        ] {
            if let Some(bytes) = value {
                if !(MIN_SOCKET_BUFFER..=MAX_SOCKET_BUFFER).contains(&bytes) {
                    return Err(invalid(
                        option,
                        format!(
                            "{bytes} bytes is outside {} KiB..={} MiB",
                            MIN_SOCKET_BUFFER / 1024,
                            MAX_SOCKET_BUFFER >> 20
                        ),
                    ));
                }
            }
        }
        if self.max_message_size == 0 {
            return Err(invalid("max-message-size", "must be at least 1 byte"));
        }
        if self.max_connections == Some(0) {
            return Err(invalid(
                "max-connections",
                "must be at least 1 (omit it for no limit)",
            ));
        }
        if self.max_backpressure < MIN_MAX_BACKPRESSURE {
            return Err(invalid(
                "max-backpressure",
                format!(
                    "{} bytes is below the minimum of {} KiB",
                    self.max_backpressure,
                    MIN_MAX_BACKPRESSURE >> 10
                ),
            ));
        }
        if self.handshake_timeout.is_zero() {
            return Err(invalid("handshake-timeout", "must be greater than zero"));
        }
        let linger = match (non_zero(self.linger_time), self.linger_bytes) {
            (None, _) => None,
            (Some(_), 0) => {
                return Err(invalid(
                    "linger-bytes",
                    "must be at least 1 byte (--linger-time 0 turns lingering off)",
                ))
            }
            (Some(time), bytes) => Some(Linger { time, bytes }),
        };
        let keep_alive_interval = non_zero(self.keep_alive_interval);
        let keep_alive_timeout = non_zero(self.keep_alive_timeout);
        if keep_alive_timeout.is_some() && keep_alive_interval.is_none() {
            return Err(invalid(
                "keep-alive-timeout",
                "needs --keep-alive-interval > 0 (no pings means no pongs to wait for)",
            ));
        }
        let mut allowed_origins = Vec::with_capacity(self.allowed_origins.len());
        for origin in self.allowed_origins {
            let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
            if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid(
                    "allowed-origin",
                    format!("{origin:?} is not an origin like https://example.com"),
                ));
            }
            allowed_origins.push(origin);
        }
        Ok(Config {
            listen: self.listen,
            join_existing: self.join_existing,
            threads,
            pin: !self.no_pin,
            io: self.io,
            keep_alive_interval,
            keep_alive_timeout,
            receive_buffer_size: size,
            receive_buffers: buffers,
            socket_buffers: SocketBuffers {
                receive: self.socket_receive_buffer,
                send: self.socket_send_buffer,
            },
            allowed_origins,
            max_message_size: self.max_message_size,
            max_connections: self.max_connections,
            max_backpressure: self.max_backpressure,
            backpressure_timeout: non_zero(self.backpressure_timeout),
            handshake_timeout: self.handshake_timeout,
            shutdown_timeout: self.shutdown_timeout,
            permessage_deflate: self.permessage_deflate.then_some(
                crate::protocol::deflate::Policy {
                    context_takeover: self.deflate_context_takeover,
                },
            ),
            linger,
        })
    }
}

impl Default for Config {
    /// The configuration `ringecho` runs with when given no options.
    fn default() -> Self {
        Options::parse_from(["ringecho"])
            .into_config()
            .expect("the default options are valid")
    }
}

/// Parses a duration: a plain number of seconds (`0`, `1.5`) or humantime (`250ms`, `2m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("{text:?} is not a non-negative number of seconds"));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}); try 250ms, 2s or 1m"))
}

/// Parses a byte size: plain bytes (`4096`) or with a unit (`4KiB`, `16MiB`, `1k`).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text
        .trim()
        .parse()
        .map_err(|e| format!("{text:?} is not a size ({e}); try 4096, 4KiB or 16MiB"))?;
    usize::try_from(size.as_u64()).map_err(|_| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        let mut argv = vec!["ringecho"];
        argv.extend_from_slice(args);
        Options::try_parse_from(argv)
            .expect("clap accepts these")
            .into_config()
    }

    #[test]
    fn defaults_follow_asp_net() {
        let c = Config::default();
        assert_eq!(c.listen, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(c.keep_alive_interval, Some(Duration::from_secs(120)));
        assert_eq!(c.keep_alive_timeout, None);
        assert_eq!(c.receive_buffer_size, 64 * 1024);
        assert_eq!(c.receive_buffers, 512);
        assert_eq!(c.socket_buffers, SocketBuffers::default());
        assert_eq!(c.handshake_timeout, Duration::from_secs(10));
        assert_eq!(
            c.linger,
            Some(Linger {
                time: Duration::from_secs(5),
                bytes: 8 << 20
            })
        );
        assert!(c.pin);
        assert!(c.threads >= 1);
    }

    #[test]
    fn durations_and_sizes_take_units_or_plain_numbers() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("16384"), Ok(16384));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn zero_linger_time_closes_at_once_and_a_linger_needs_bytes() {
        assert_eq!(config(&["--linger-time", "0"]).unwrap().linger, None);
        let c = config(&["--linger-time", "250ms", "--linger-bytes", "64KiB"]).unwrap();
        assert_eq!(
            c.linger,
            Some(Linger {
                time: Duration::from_millis(250),
                bytes: 64 << 10
            })
        );
        let err = config(&["--linger-bytes", "0"]).unwrap_err();
        assert!(err.to_string().contains("--linger-bytes"), "{err}");
    }

    #[test]
    fn zero_interval_turns_keep_alive_off_and_timeout_needs_it() {
        let c = config(&["--keep-alive-interval", "0"]).unwrap();
        assert_eq!(c.keep_alive_interval, None);
        let err = config(&["--keep-alive-interval", "0", "--keep-alive-timeout", "1s"]);
        assert!(matches!(
            err,
            Err(ConfigError::Invalid {
                option: "keep-alive-timeout",
                ..
            })
        ));
    }

    #[test]
    fn nonsense_is_rejected_naming_the_option() {
        for (args, option) in [
            (&["--threads", "0"][..], "threads"),
            (&["--receive-buffers", "3"], "receive-buffers"),
            (&["--receive-buffers", "65536"], "receive-buffers"),
            (&["--receive-buffer-size", "8"], "receive-buffer-size"),
            (&["--socket-receive-buffer", "100"], "socket-receive-buffer"),
            (&["--socket-send-buffer", "1GiB"], "socket-send-buffer"),
            (&["--max-connections", "0"], "max-connections"),
            (&["--handshake-timeout", "0"], "handshake-timeout"),
            (&["--max-backpressure", "16383"], "max-backpressure"),
            (&["--max-backpressure", "0"], "max-backpressure"),
            (&["--allowed-origin", "example.com"], "allowed-origin"),
        ] {
            match config(args) {
                Err(ConfigError::Invalid { option: got, .. }) => {
                    assert_eq!(got, option, "{args:?}")
                }
                other => panic!("{args:?} should be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn socket_buffers_take_sizes_and_default_to_the_kernel() {
        let c = config(&[
            "--socket-receive-buffer",
            "64KiB",
            "--socket-send-buffer",
            "32768",
        ])
        .unwrap();
        assert_eq!(
            c.socket_buffers,
            SocketBuffers {
                receive: Some(65536),
                send: Some(32768)
            }
        );
    }

    #[test]
    fn backpressure_defaults_units_and_zero_timeout() {
        let c = Config::default();
        assert_eq!(c.max_backpressure, 1 << 20);
        assert_eq!(c.backpressure_timeout, Some(Duration::from_secs(10)));
        let c = config(&[
            "--max-backpressure",
            "256KiB",
            "--backpressure-timeout",
            "2s",
        ])
        .unwrap();
        assert_eq!(c.max_backpressure, 256 << 10);
        assert_eq!(c.backpressure_timeout, Some(Duration::from_secs(2)));
        let c = config(&["--max-backpressure", "16KiB", "--backpressure-timeout", "0"]).unwrap();
        assert_eq!(
            c.max_backpressure, MIN_MAX_BACKPRESSURE,
            "the minimum is allowed"
        );
        assert_eq!(c.backpressure_timeout, None, "0 means never");
        let refused = Options::try_parse_from(["ringecho", "--max-backpressure", "lots"]);
        assert!(refused.is_err(), "not a size");
        let refused = Options::try_parse_from(["ringecho", "--backpressure-timeout", "soon"]);
        assert!(refused.is_err(), "not a duration");
    }

    #[test]
    fn origins_are_normalised() {
        let c = config(&["--allowed-origin", "HTTPS://Game.Example/"]).unwrap();
        assert_eq!(c.allowed_origins, vec!["https://game.example".to_string()]);
    }
}
