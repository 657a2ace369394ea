//! Starting and stopping the engine: bind the listeners, resolve the io
//! backend, start one pinned worker per core, and shut them down gracefully.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use thiserror::Error;
use tokio::sync::watch;

use crate::config::{Config, IoBackend, IoChoice};
use crate::epoll;
use crate::metrics::WorkerStats;
use crate::runtime::fd_limit::{self, OutOfFds};
use crate::runtime::listener;
use crate::runtime::shared::Shared;
use crate::runtime::shutdown::Signals;
use crate::runtime::worker::{self, WorkerSpec};
use crate::uring;

/// Why the engine could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// Another process already listens on the address (and
    /// `--join-existing` was not given).
    #[error(
        "{addr} is already in use: another process listens on it. Stop it, pick another \
         --listen, or give --join-existing to share the port with another ringecho on purpose \
         (a restart with no downtime)"
    )]
    AddressTaken {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The listeners could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// `--io uring` was asked for but no ring can be created here.
    #[error("io_uring is not available here ({0}); use --io epoll or --io auto")]
    UringUnavailable(std::io::Error),
    /// A worker failed to start.
    #[error("{0}")]
    Worker(String),
    /// Waiting for signals failed.
    #[error("cannot wait for signals: {0}")]
    Signals(std::io::Error),
    /// A worker died while serving.
    #[error("a worker stopped unexpectedly; see the log above")]
    WorkerDied,
}

/// Runs the engine until SIGINT or SIGTERM, then shuts down gracefully.
/// Turns transparent huge pages off ([`crate::runtime::process`]) and raises the
/// soft file-descriptor limit to the hard one (logged) first, then logs the
/// one start-up line (address, backend, workers, pinning).
pub fn run(config: Config) -> Result<(), ServerError> {
    if let Err(error) = crate::runtime::process::disable_transparent_huge_pages() {
        tracing::warn!("could not turn transparent huge pages off: {error}");
    }
    // Before the workers start: the io_uring workers size their connection
    // slab from the soft limit.
    match fd_limit::raise_to_hard_limit() {
        Ok(limit) if limit.soft > limit.soft_before => tracing::info!(
            "open files limit (RLIMIT_NOFILE) raised from {} to {} (the hard limit)",
            limit.soft_before,
            limit.soft
        ),
        Ok(limit) => tracing::info!(
            "open files limit (RLIMIT_NOFILE) {} (hard limit {})",
            limit.soft,
            limit.hard
        ),
        Err(e) => tracing::warn!("cannot raise the open files limit (RLIMIT_NOFILE): {e}"),
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Signals)?;
    runtime.block_on(async {
        // Catch signals before anyone can learn our address.
        let mut signals = Signals::install().map_err(ServerError::Signals)?;
        let server = Server::start(config)?;
        let shared = server.shared();
        let config = &shared.config;
        // The receive ring is io_uring's; the epoll backend has none.
        let ring = match shared.backend {
            IoBackend::Uring => format!(
                " receive_buffers={}x{}B",
                config.receive_buffers, config.receive_buffer_size
            ),
            IoBackend::Epoll => String::new(),
        };
        tracing::info!(
            "listening on http://{} io={} workers={} pinned={}{ring}{}",
            server.local_addr(),
            shared.backend.name(),
            config.threads,
            config.pin,
            if server.joined {
                " joined=true (sharing the port with the listeners already on it)"
            } else {
                ""
            },
        );
        let mut watchdog = tokio::time::interval(std::time::Duration::from_millis(200));
        let signal = tokio::select! {
            signal = signals.recv() => Some(signal),
            _ = async { loop { watchdog.tick().await; if server.worker_exited() { break; } } } => None,
        };
        match signal {
            Some(signal) => {
                tracing::info!(
                    "{signal}: closing connections (up to {:?})",
                    server.shared().config.shutdown_timeout
                );
                server.shutdown();
                tracing::info!("stopped");
                Ok(())
            }
            None => {
                server.shutdown();
                Err(ServerError::WorkerDied)
            }
        }
    })
}

/// A running engine.
pub struct Server {
    addr: SocketAddr,
    /// Whether other listeners were on the address and these joined them.
    joined: bool,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// Picks the backend: `auto` prefers io_uring and falls back to epoll with
/// one log line saying why.
pub fn resolve_backend(config: &Config) -> Result<IoBackend, ServerError> {
    match config.io {
        IoChoice::Epoll => Ok(IoBackend::Epoll),
        IoChoice::Uring => uring::probe()
            .map(|()| IoBackend::Uring)
            .map_err(ServerError::UringUnavailable),
        IoChoice::Auto => match uring::probe() {
            Ok(()) => Ok(IoBackend::Uring),
            Err(e) => {
                tracing::warn!("io_uring unavailable ({e}); falling back to epoll");
                Ok(IoBackend::Epoll)
            }
        },
    }
}

impl Server {
    /// Binds, starts every worker and returns once all of them accept.
    pub fn start(config: Config) -> Result<Self, ServerError> {
        let backend = resolve_backend(&config)?;
        let joined = match listener::refuse_taken(config.listen) {
            Ok(()) => false,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && config.join_existing => true,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(ServerError::AddressTaken {
                    addr: config.listen,
                })
            }
            Err(source) => {
                return Err(ServerError::Bind {
                    addr: config.listen,
                    source,
                })
            }
        };
        let (listeners, addr) =
            listener::bind_reuseport(config.listen, config.threads, config.socket_buffers)
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let listener_fds: Vec<_> = listeners.iter().map(AsRawFd::as_raw_fd).collect();
        let cores = if config.pin {
            core_affinity::get_core_ids().filter(|cores| !cores.is_empty())
        } else {
            None
        };
        if config.pin && cores.is_none() {
            tracing::warn!("cannot list cores; workers run unpinned");
        }
        let core_for = |index: usize| cores.as_ref().map(|cores| cores[index % cores.len()]);
        let workers = (0..config.threads)
            .map(|i| Arc::new(WorkerStats::new(core_for(i).map(|c| c.id))))
            .collect();
        let out_of_fds = OutOfFds::start(&listener_fds);
        let shared = Arc::new(Shared::new(config, backend, workers, out_of_fds));
        let body: fn(WorkerSpec) = match backend {
            // The io_uring worker owns its loop: no tokio runtime.
            IoBackend::Uring => uring::run,
            IoBackend::Epoll => epoll::run,
        };
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut server = Server {
            addr,
            joined,
            shared: shared.clone(),
            stop,
            workers: Vec::new(),
        };
        for (index, listener) in listeners.into_iter().enumerate() {
            let spec = WorkerSpec {
                index,
                core: core_for(index),
                listener,
                shared: shared.clone(),
                stop: stop_rx.clone(),
                ready: ready_tx.clone(),
            };
            let handle = worker::spawn(spec, body)
                .map_err(|e| ServerError::Worker(format!("spawn worker {index}: {e}")))?;
            server.workers.push(handle);
        }
        drop(ready_tx);
        for _ in 0..server.workers.len() {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(message)) => return Err(ServerError::Worker(message)),
                Err(_) => return Err(ServerError::Worker("a worker exited while starting".into())),
            }
        }
        Ok(server)
    }

    /// The address the listeners are bound to (with the real port).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (configuration, backend, per-worker stats).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Whether a worker thread has exited (which only happens on a fatal error).
    pub fn worker_exited(&self) -> bool {
        self.workers.iter().any(|w| w.is_finished())
    }

    /// Stops accepting, closes every WebSocket with 1001 and waits for the
    /// workers, each bounded by `--shutdown-timeout`.
    pub fn shutdown(mut self) {
        self.shared.stop_admitting();
        self.shared.out_of_fds.stop();
        let _ = self.stop.send(true);
        for worker in std::mem::take(&mut self.workers) {
            if worker.join().is_err() {
                tracing::error!("a worker panicked during shutdown");
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.out_of_fds.stop();
        let _ = self.stop.send(true);
    }
}
