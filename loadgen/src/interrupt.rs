//! Ctrl-C (SIGINT): end the load early and still report what was measured.
//!
//! A user who stops a long run with Ctrl-C gets the report (and the JSON,
//! and a complete interval log) of the part that ran, and the exit code
//! [`crate::report::ExitStatus::Interrupted`] (130, the shell's code for
//! "ended by SIGINT"). A second Ctrl-C ends the process at once, the
//! default way, in case the orderly stop hangs.
//!
//! How the signal reaches the workers without any cost on their hot path:
//! the signal handler (installed with `signal-hook`) writes one byte into a
//! socket pair. Every worker has the read end registered in its own epoll
//! set, edge-triggered, and nobody ever reads it, so the one write wakes
//! every worker at once, wherever it is blocked. The first worker that
//! wakes picks the stop time (its clock reading) and all workers end their
//! load there, so their last intervals line up for the coordinator.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use signal_hook::consts::SIGINT;

const NOT_STOPPED: u64 = u64::MAX;

/// The stop request shared by the workers of one run.
#[derive(Debug)]
pub struct StopSignal {
    wake: OwnedFd,
    /// A second write end, for [`StopSignal::request`].
    request: UnixStream,
    stop_at_ns: AtomicU64,
}

impl StopSignal {
    /// A stop signal that only [`StopSignal::request`] (no OS signal) triggers;
    /// another write end of its socket pair is returned for a signal handler.
    fn pair() -> io::Result<(StopSignal, UnixStream)> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        let request = write.try_clone()?;
        request.set_nonblocking(true)?;
        Ok((
            StopSignal {
                wake: read.into(),
                request,
                stop_at_ns: AtomicU64::new(NOT_STOPPED),
            },
            write,
        ))
    }

    /// Stops the load as Ctrl-C does, from inside the program (the
    /// coordinator gives up when every connection has failed).
    pub fn request(&self) {
        use std::io::Write as _;
        // A full socket buffer means a wake-up is already pending.
        let _ = (&self.request).write(&[1]);
    }

    /// Installs the SIGINT handling for one run: the first Ctrl-C wakes the
    /// workers through the returned signal, a second one ends the process
    /// with the default action.
    pub fn on_ctrl_c() -> io::Result<Arc<StopSignal>> {
        let (stop, write) = StopSignal::pair()?;
        let seen = Arc::new(AtomicBool::new(false));
        // Order matters: on the second signal `seen` is already true and the
        // default action (terminate) runs before anything else.
        signal_hook::flag::register_conditional_default(SIGINT, seen.clone())?;
        signal_hook::flag::register(SIGINT, seen)?;
        signal_hook::low_level::pipe::register(SIGINT, write)?;
        Ok(Arc::new(stop))
    }

    /// The descriptor a worker registers for readability: it becomes
    /// readable (once, edge-triggered) when the stop is requested.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Agrees on the stop time: the first caller's `now_ns` (ns since the
    /// run start) wins, later callers get that same value.
    pub fn stop_at(&self, now_ns: u64) -> u64 {
        match self.stop_at_ns.compare_exchange(
            NOT_STOPPED,
            now_ns,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => now_ns,
            Err(agreed) => agreed,
        }
    }

    /// When the load was stopped early (ns since the run start), if it was.
    pub fn stopped_at(&self) -> Option<u64> {
        match self.stop_at_ns.load(Ordering::Acquire) {
            NOT_STOPPED => None,
            t => Some(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn first_stop_time_wins_and_the_fd_wakes() {
        let (stop, mut write) = StopSignal::pair().unwrap();
        assert_eq!(stop.stopped_at(), None);
        write.write_all(&[1]).unwrap();
        let mut pfd = libc::pollfd {
            fd: stop.wake_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 1000) }, 1);
        assert_eq!(stop.stop_at(500), 500);
        assert_eq!(stop.stop_at(700), 500);
        assert_eq!(stop.stopped_at(), Some(500));
    }
}
