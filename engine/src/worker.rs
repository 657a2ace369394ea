//! A worker: one thread, pinned to its core, with its own tokio
//! current-thread runtime, its own listener and (on the uring backend) its
//! own io_uring ring. Workers share nothing on the hot path.

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::LocalSet;
use tokio_util::task::TaskTracker;

use crate::config::IoBackend;
use crate::connection;
use crate::fd_limit;
use crate::metrics::WorkerStats;
use crate::server::Shared;
use crate::session::{self, Sessions};
use crate::shutdown::ShutdownSignal;

/// Pause after an accept error other than running out of descriptors
/// (e.g. `ENOBUFS`) before accepting again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// What one worker's tasks share.
pub struct WorkerContext {
    /// Worker index (also its slot in `Shared::workers`).
    pub index: usize,
    /// State shared with the other workers.
    pub shared: Arc<Shared>,
    /// Open WebSockets of this worker.
    pub sessions: Rc<Sessions>,
    /// This worker's counters (the worker is their only writer).
    pub stats: Arc<WorkerStats>,
    /// Raised when the worker stops.
    pub shutdown: ShutdownSignal,
}

/// Everything a worker thread needs to start.
pub struct WorkerSpec {
    /// Worker index.
    pub index: usize,
    /// The core to pin to, if pinning.
    pub core: Option<core_affinity::CoreId>,
    /// This worker's `SO_REUSEPORT` listener.
    pub listener: Socket,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Flips to `true` when the server stops.
    pub stop: watch::Receiver<bool>,
    /// Told once the worker accepts, or why it could not start.
    pub ready: std::sync::mpsc::Sender<Result<(), String>>,
}

/// Starts the worker thread `ringecho-w{index}`.
pub fn spawn(spec: WorkerSpec) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("ringecho-w{}", spec.index))
        .spawn(move || {
            if let Some(core) = spec.core {
                if !core_affinity::set_for_current(core) {
                    tracing::warn!(worker = spec.index, core = core.id, "could not pin worker");
                }
            }
            if spec.shared.backend == IoBackend::Uring {
                // The io_uring worker owns its loop: no tokio runtime.
                return crate::uring::run(spec);
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = spec
                        .ready
                        .send(Err(format!("worker {}: runtime: {e}", spec.index)));
                    return;
                }
            };
            LocalSet::new().block_on(&runtime, run(spec));
        })
}

async fn run(spec: WorkerSpec) {
    let WorkerSpec {
        index,
        listener,
        shared,
        mut stop,
        ready,
        ..
    } = spec;
    let config = &shared.config;
    let stats = shared.workers[index].clone();
    let ctx = Rc::new(WorkerContext {
        index,
        shared: shared.clone(),
        sessions: Rc::new(Sessions::new(config, stats.clone())),
        stats,
        shutdown: ShutdownSignal::default(),
    });
    tokio::task::spawn_local(session::sweep(
        ctx.sessions.clone(),
        config.keep_alive_timeout,
    ));
    let connections = TaskTracker::new();
    let stopped = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let listener = match tokio::net::TcpListener::from_std(listener.into()) {
        Ok(listener) => listener,
        Err(e) => {
            let _ = ready.send(Err(format!("worker {index}: listener: {e}")));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    tokio::select! {
        biased;
        _ = stopped => {}
        _ = accept_epoll(&listener, &ctx, &connections) => {}
    }
    drop(listener);
    drain(&ctx, &connections).await;
}

/// Accepts until the worker stops. Out of file descriptors, it drops the
/// pending connections and waits [`fd_limit::EXHAUSTED_BACKOFF`] rather
/// than retrying at once: tokio leaves the listener ready after an error,
/// so an immediate retry would spin (see [`crate::fd_limit`]).
async fn accept_epoll(
    listener: &tokio::net::TcpListener,
    ctx: &Rc<WorkerContext>,
    connections: &TaskTracker,
) {
    let out_of_fds = &ctx.shared.out_of_fds;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!("TCP_NODELAY: {e}");
                }
                spawn_connection(stream, ctx, connections);
            }
            Err(e) if fd_limit::is_exhaustion(&e) => {
                let dropped = out_of_fds.shed_pending(ctx.index, &e);
                ctx.stats.connections_dropped(dropped);
                tokio::time::sleep(fd_limit::EXHAUSTED_BACKOFF).await;
            }
            Err(e) if fd_limit::is_per_connection(&e) => {
                tracing::debug!(worker = ctx.index, "accept: {e}");
            }
            Err(e) => accept_failed(ctx.index, e).await,
        }
    }
}

fn spawn_connection<S>(io: S, ctx: &Rc<WorkerContext>, connections: &TaskTracker)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    connections.spawn_local(connection::serve(io, ctx.clone()));
}

async fn accept_failed(worker: usize, error: io::Error) {
    tracing::warn!(worker, "accept failed: {error}");
    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
}

/// Stops HTTP-phase connections, sends close 1001 to every WebSocket and
/// waits for them to finish, at most `--shutdown-timeout`.
async fn drain(ctx: &WorkerContext, connections: &TaskTracker) {
    ctx.shutdown.trigger();
    ctx.sessions.close_all();
    connections.close();
    let timeout = ctx.shared.config.shutdown_timeout;
    if tokio::time::timeout(timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            worker = ctx.index,
            open = ctx.sessions.len(),
            "shutdown timeout: dropping connections that did not close"
        );
    }
}
