//! An epoll worker's tasks: accept on its own listener, one task per
//! connection, and the drain at shutdown. Workers share nothing on the hot
//! path.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::task::TaskTracker;

use crate::epoll::connection;
use crate::epoll::context::{TokioTimer, WorkerContext};
use crate::epoll::session::{self, Sessions};
use crate::runtime::endpoints::Endpoints;
use crate::runtime::fd_limit;
use crate::runtime::shutdown::{Drain, ShutdownSignal};
use crate::runtime::worker::WorkerSpec;

/// Pause after an accept error other than running out of descriptors
/// (e.g. `ENOBUFS`) before accepting again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// Serves worker `spec.index` until the server stops, then drains.
pub async fn run(spec: WorkerSpec) {
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
    let shutdown = Rc::new(ShutdownSignal::default());
    let ctx = Rc::new(WorkerContext {
        index,
        shared: shared.clone(),
        sessions: Rc::new(Sessions::new(config, stats.clone())),
        stats,
        shutdown: shutdown.clone(),
        endpoints: Endpoints::new(shared.clone(), index, shutdown, TokioTimer),
        deflate: RefCell::default(),
    });
    tokio::task::spawn_local(session::sweep(ctx.sessions.clone()));
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
/// so an immediate retry would spin (see [`crate::runtime::fd_limit`]).
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
    let drain = Drain::start(
        std::time::Instant::now(),
        ctx.shared.config.shutdown_timeout,
    );
    let deadline = tokio::time::Instant::from_std(drain.deadline());
    if tokio::time::timeout_at(deadline, connections.wait())
        .await
        .is_err()
    {
        drain.give_up(ctx.index, ctx.sessions.len());
    }
}
