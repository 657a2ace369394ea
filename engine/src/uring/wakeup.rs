//! How a sleeping reactor learns that its ring has work: an eventfd
//! registered with the ring and watched by the worker's tokio runtime.
//!
//! Why not the ring fd itself: with `DEFER_TASKRUN` (see [`super::ring`])
//! queued completion work does not make the ring fd poll readable, so a
//! ring asleep in tokio's epoll never woke (an accept hung forever). The
//! kernel does signal a registered eventfd when the first item of deferred
//! work is queued, and whenever it posts completions.
//!
//! The eventfd is never read: tokio registers it edge-triggered, and every
//! kernel signal is a new edge even while the counter is non-zero.
//!
//! **Quiet while awake.** While the reactor is running its turns it reaps
//! everything itself, so signals would only cost tokio a spurious
//! `epoll_wait` return and an empty turn after each sleep. The reactor sets
//! `IORING_CQ_EVENTFD_DISABLED` while awake and clears it just before it
//! sleeps. The race this opens (work queued while disabled raises no
//! signal) is closed by [`RingWakeup::arm`]: after enabling, it looks for
//! work the kernel already flagged (`IORING_SQ_TASKRUN`, posted CQEs, CQ
//! overflow) and refuses to sleep if there is any. That check needs the
//! kernel's flag store to be ordered before its read of the disabled flag,
//! which holds on x86-64, where the kernel's `atomic_or` is a locked,
//! fully ordered instruction. Elsewhere the eventfd simply stays enabled.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{fence, Ordering};
use std::task::{Context, Poll};

use io_uring::IoUring;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Whether the eventfd is silenced while the reactor is awake (see the
/// module docs for why only on x86-64).
const QUIET_WHILE_AWAKE: bool = cfg!(target_arch = "x86_64");

/// The eventfd a reactor sleeps on.
pub struct RingWakeup {
    eventfd: AsyncFd<OwnedFd>,
    /// Whether the eventfd is currently enabled on the ring.
    armed: bool,
}

impl RingWakeup {
    /// Creates an eventfd, registers it with `ring` and with the current
    /// tokio runtime. The ring starts awake (eventfd disabled).
    pub fn register(ring: &mut IoUring) -> io::Result<Self> {
        // SAFETY: eventfd(2) takes no pointers.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a non-negative eventfd(2) result is a new fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        ring.submitter().register_eventfd(fd.as_raw_fd())?;
        // SAFETY: the AsyncFd owns `fd` outright, so the fd stays open and
        // names this eventfd for the AsyncFd's whole life.
        let eventfd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let mut wakeup = Self {
            eventfd,
            armed: true,
        };
        wakeup.disarm(ring);
        Ok(wakeup)
    }

    /// Silences the eventfd while the reactor is awake.
    pub fn disarm(&mut self, ring: &mut IoUring) {
        if QUIET_WHILE_AWAKE && self.armed {
            ring.completion().disable_eventfd();
            self.armed = false;
        }
    }

    /// Enables the eventfd before the reactor sleeps. Returns `false` (and
    /// stays disarmed) when the kernel already has work for us, which a
    /// disabled eventfd may not have signalled: the caller must turn again
    /// instead of sleeping.
    pub fn arm(&mut self, ring: &mut IoUring) -> bool {
        if QUIET_WHILE_AWAKE && !self.armed {
            ring.completion().enable_eventfd();
            self.armed = true;
            // Order the flag store above before the loads below (the kernel
            // stores its flags, then reads ours).
            fence(Ordering::SeqCst);
        }
        if super::ring::kernel_has_work(ring) || !ring.completion().is_empty() {
            self.disarm(ring);
            return false;
        }
        true
    }

    /// Ready once the kernel has signalled the eventfd since the last call
    /// that returned ready.
    pub fn poll_signalled(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.eventfd.poll_read_ready(cx) {
            Poll::Ready(Ok(mut guard)) => {
                guard.clear_ready();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}
