//! The process's file-descriptor limit: raised at start, and what accepting
//! does once it is reached.
//!
//! Every connection costs the engine one descriptor, so `RLIMIT_NOFILE` is
//! its connection ceiling. At start [`raise_to_hard_limit`] lifts the soft
//! limit to the hard one (the io_uring workers size their connection slab
//! from it, so this runs before they start).
//!
//! When the limit is reached anyway, `accept` fails with `EMFILE` (or
//! `ENFILE`, system-wide) and the connection stays in the listener's
//! backlog, where retrying at once only fails again: a busy loop, the
//! classic accept-loop bug. The workers instead:
//!
//! - **drop the excess**: [`OutOfFds::shed_pending`] accepts the pending
//!   connections and closes them at once, so a client is told "no" within
//!   one retry period instead of hanging in the backlog until it gives up.
//!   Accepting needs a free descriptor slot, which is exactly what is
//!   missing; libuv and libev keep a spare descriptor to close for room,
//!   but with several workers another worker's accept can take that slot
//!   first. So a thread of its own, the shedder, does it: it gave itself a
//!   private copy of the descriptor table (`unshare(CLONE_FILES)`) when
//!   the engine started, holding only the listeners, so its accepts never
//!   compete with the workers for a slot;
//! - **back off**: the next accept is tried on the worker's next tick
//!   (io_uring: its multishot accept is re-armed then) or after
//!   [`EXHAUSTED_BACKOFF`] (epoll), not in a loop;
//! - **log once**: [`OutOfFds`] warns when an episode starts, however
//!   many workers see it and however long it lasts (it ends after a
//!   minute without a failure); the dropped connections are counted in
//!   `ringecho_connections_dropped_total`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rlimit::Resource;
use socket2::SockRef;

/// How long the epoll backend waits before accepting again after running
/// out of descriptors (the io_uring workers wait for their next tick, at
/// most 100 ms).
pub const EXHAUSTED_BACKOFF: Duration = Duration::from_millis(50);

/// At most this many pending connections are dropped per retry, so one
/// retry cannot hold a worker for long (an accept and a close each).
const MAX_SHED_PER_RETRY: usize = 256;

/// How long a worker waits for the shedder to answer before it goes on.
const SHED_WAIT: Duration = Duration::from_secs(1);

/// An episode of exhaustion ends after this long without an accept failing
/// for lack of descriptors; the next failure after that is logged again.
const QUIET_BEFORE_NEW_EPISODE: Duration = Duration::from_secs(60);

/// The descriptor limit after [`raise_to_hard_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit the process started with.
    pub soft_before: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit (the ceiling for the soft one).
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and reports both.
pub fn raise_to_hard_limit() -> io::Result<NofileLimit> {
    let (soft_before, hard) = Resource::NOFILE.get()?;
    if soft_before < hard {
        Resource::NOFILE.set(hard, hard)?;
    }
    let (soft, hard) = Resource::NOFILE.get()?;
    Ok(NofileLimit {
        soft_before,
        soft,
        hard,
    })
}

/// The soft `RLIMIT_NOFILE` now: the most descriptors this process may
/// hold, and so the most connections it can have open.
pub fn soft_limit() -> io::Result<u64> {
    Resource::NOFILE.get().map(|(soft, _)| soft)
}

/// Whether an accept error means "out of file descriptors" (this process:
/// `EMFILE`, the whole system: `ENFILE`).
pub fn is_exhaustion(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Whether an accept error concerns only the connection being accepted
/// (it was reset or aborted while it waited in the backlog): skip it and
/// accept the next one at once.
pub fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::ECONNABORTED | libc::ECONNRESET | libc::EPROTO | libc::EPERM | libc::EINTR)
    )
}

/// What the workers share for running out of descriptors: the shedder
/// thread that drops pending connections (see the module docs) and the
/// once-per-episode warning.
#[derive(Debug)]
pub struct OutOfFds {
    /// Jobs for the shedder; `None` if it could not start.
    shedder: Option<mpsc::Sender<ShedJob>>,
    epoch: Instant,
    /// When accept last failed for lack of descriptors (ms since `epoch`,
    /// plus one; 0 = never).
    last_failure_ms: AtomicU64,
}

/// A request to the shedder.
#[derive(Debug)]
enum ShedJob {
    /// Drop what is pending on worker `worker`'s listener; answer how many.
    Shed {
        worker: usize,
        dropped: mpsc::SyncSender<usize>,
    },
    /// Close the listener copies and end (the engine stops accepting).
    Stop,
}

impl OutOfFds {
    /// Starts the shedder for `listeners` (worker `i` accepts on
    /// `listeners[i]`). Call before the workers start: the shedder's
    /// descriptor table is a copy of the process's at this moment, so it
    /// holds little more than the listeners. If it cannot start (a
    /// warning), connections beyond the limit wait in the backlog instead.
    pub fn start(listeners: &[RawFd]) -> Self {
        let (jobs, inbox) = mpsc::channel();
        let (ready_tx, ready) = mpsc::sync_channel(1);
        let listeners = listeners.to_vec();
        let started = std::thread::Builder::new()
            .name("ringecho-shed".into())
            .spawn(move || run_shedder(listeners, inbox, ready_tx));
        let shedder = match started.map(|_| ready.recv()) {
            Ok(Ok(Ok(()))) => Some(jobs),
            Ok(Ok(Err(e))) | Err(e) => {
                tracing::warn!(
                    "cannot start the thread that drops connections when out of file \
                     descriptors ({e}); such connections will wait in the backlog"
                );
                None
            }
            Ok(Err(_)) => None,
        };
        Self {
            shedder,
            epoch: Instant::now(),
            last_failure_ms: AtomicU64::new(0),
        }
    }

    /// `worker`'s accept failed with `error`, an exhaustion (see
    /// [`is_exhaustion`]): warns if this starts an episode, then has the
    /// shedder drop the connections pending on `worker`'s listener, and
    /// returns how many it dropped. Blocks the worker while the shedder
    /// works (at most [`MAX_SHED_PER_RETRY`] accepts and closes).
    pub fn shed_pending(&self, worker: usize, error: &io::Error) -> usize {
        self.log_episode(worker, error);
        let Some(shedder) = self.shedder.as_ref() else {
            return 0;
        };
        let (answer, dropped) = mpsc::sync_channel(1);
        let job = ShedJob::Shed {
            worker,
            dropped: answer,
        };
        if shedder.send(job).is_err() {
            return 0;
        }
        dropped.recv_timeout(SHED_WAIT).unwrap_or(0)
    }

    /// Stops the shedder, closing its copies of the listeners, so that
    /// the listening sockets close once the workers close theirs.
    pub fn stop(&self) {
        if let Some(shedder) = self.shedder.as_ref() {
            let _ = shedder.send(ShedJob::Stop);
        }
    }

    /// Warns if this failure starts a new episode; returns whether it did.
    fn log_episode(&self, worker: usize, error: &io::Error) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last_failure_ms.swap(now, Ordering::AcqRel);
        let quiet = QUIET_BEFORE_NEW_EPISODE.as_millis() as u64;
        let new_episode = last == 0 || now.saturating_sub(last) >= quiet;
        if new_episode {
            let limit = soft_limit().map_or_else(|e| format!("unknown: {e}"), |l| l.to_string());
            tracing::warn!(
                worker,
                "out of file descriptors ({error}; RLIMIT_NOFILE {limit}): new connections \
                 are closed at once, and accepting is retried every 50-100 ms until \
                 descriptors are freed (logged once per episode; counted in \
                 ringecho_connections_dropped_total)"
            );
        }
        new_episode
    }
}

/// The shedder thread: gives itself a private descriptor table, then
/// drops pending connections on request until told to stop.
fn run_shedder(
    listeners: Vec<RawFd>,
    jobs: mpsc::Receiver<ShedJob>,
    ready: mpsc::SyncSender<io::Result<()>>,
) {
    // SAFETY: unshare(2) with CLONE_FILES gives this thread a private copy
    // of the descriptor table; it reads and writes no memory of ours.
    if unsafe { libc::unshare(libc::CLONE_FILES) } != 0 {
        let _ = ready.send(Err(io::Error::last_os_error()));
        return;
    }
    let listeners: Vec<OwnedFd> = listeners
        .into_iter()
        // SAFETY: since the unshare, each listener number names this
        // thread's own copy of the listening socket, which nothing else
        // here owns or closes; the workers' descriptors are untouched.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    let _ = ready.send(Ok(()));
    for job in jobs {
        match job {
            ShedJob::Shed { worker, dropped } => {
                let count = listeners.get(worker).map_or(0, shed);
                let _ = dropped.send(count);
            }
            ShedJob::Stop => break,
        }
    }
    // Ending the thread closes the rest of its private table.
}

/// Accepts what is pending on `listener` (non-blocking) and closes it at
/// once; returns how many connections were dropped.
fn shed(listener: &OwnedFd) -> usize {
    let listener = SockRef::from(listener);
    let mut dropped = 0;
    while dropped < MAX_SHED_PER_RETRY {
        match listener.accept() {
            // Dropping the socket closes it: the client sees the
            // connection end before any byte of HTTP.
            Ok((socket, _)) => {
                drop(socket);
                dropped += 1;
            }
            Err(e) if is_per_connection(&e) => {}
            // The backlog is empty, or (unlikely) this table is full too.
            Err(_) => break,
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn an_episode_is_logged_once() {
        let out = OutOfFds::start(&[]);
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(
            out.log_episode(0, &emfile),
            "the first failure starts an episode"
        );
        assert!(!out.log_episode(1, &emfile), "another worker: same episode");
        assert!(!out.log_episode(0, &emfile), "a retry: same episode");
    }

    #[test]
    fn errors_are_classified() {
        let os = io::Error::from_raw_os_error;
        assert!(is_exhaustion(&os(libc::EMFILE)));
        assert!(is_exhaustion(&os(libc::ENFILE)));
        assert!(!is_exhaustion(&os(libc::ECONNABORTED)));
        assert!(is_per_connection(&os(libc::ECONNABORTED)));
        assert!(!is_per_connection(&os(libc::ENOMEM)));
    }

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let raised = raise_to_hard_limit().expect("getrlimit/setrlimit");
        assert_eq!(raised.soft, raised.hard);
        assert!(raised.soft >= raised.soft_before);
        assert_eq!(soft_limit().expect("getrlimit"), raised.soft);
    }

    #[test]
    fn the_shedder_drops_pending_connections_and_leaves_the_listener_open() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("address");
        let out = OutOfFds::start(&[listener.as_raw_fd()]);
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(out.shed_pending(0, &emfile), 3);
        assert_eq!(out.shed_pending(0, &emfile), 0, "backlog empty");
        for mut client in clients {
            let mut byte = [0; 1];
            let read = std::io::Read::read(&mut client, &mut byte);
            assert!(
                matches!(read, Ok(0)) || read.is_err(),
                "a shed client sees its connection end, got {read:?}"
            );
        }
        out.stop();
        // Our own listener still works.
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        std::thread::sleep(Duration::from_millis(50));
        assert!(listener.accept().is_ok(), "the listener is still ours");
    }
}
