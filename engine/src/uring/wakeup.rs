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

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use io_uring::{opcode, types, IoUring};

    use super::RingWakeup;
    use crate::uring::ring::{build_with, TaskRun};

    const GETEVENTS: u32 = 1;

    /// Arms a 16-byte recv on `socket` into a leaked buffer (so no test
    /// failure can leave the kernel writing into freed memory).
    fn arm_recv(ring: &mut IoUring, socket: &UnixStream) -> &'static [u8; 16] {
        let buf: &'static mut [u8; 16] = Box::leak(Box::new([0; 16]));
        let entry = opcode::Recv::new(types::Fd(socket.as_raw_fd()), buf.as_mut_ptr(), 16)
            .build()
            .user_data(7);
        // SAFETY: the buffer is leaked, so it outlives the operation, and the
        // socket stays open until the test has reaped the completion.
        unsafe { ring.submission().push(&entry) }.expect("queue has room");
        ring.submit().expect("submit");
        buf
    }

    /// Runs completion work and returns the recv's result.
    fn reap_recv(ring: &mut IoUring) -> i32 {
        // SAFETY: a plain io_uring_enter without an argument pointer.
        unsafe {
            ring.submitter()
                .enter::<libc::sigset_t>(0, 1, GETEVENTS, None)
        }
        .expect("enter");
        let cqe = ring.completion().next().expect("a completion");
        assert_eq!(cqe.user_data(), 7);
        cqe.result()
    }

    /// A ring in `mode` with its wake-up registered, and a socket pair whose
    /// first end has a recv armed on the ring. Call inside a tokio runtime.
    struct Setup {
        ring: IoUring,
        wakeup: RingWakeup,
        /// Kept open until the recv completes.
        _ours: UnixStream,
        theirs: UnixStream,
        buf: &'static [u8; 16],
    }

    fn setup(mode: TaskRun) -> Setup {
        let mut ring = build_with(8, 16, mode).expect("ring");
        let wakeup = RingWakeup::register(&mut ring).expect("eventfd");
        let (ours, theirs) = UnixStream::pair().expect("socket pair");
        let buf = arm_recv(&mut ring, &ours);
        Setup {
            ring,
            wakeup,
            _ours: ours,
            theirs,
            buf,
        }
    }

    /// Runs `test` for both task-run modes, each on a fresh current-thread runtime.
    fn for_both_modes(
        test: impl Fn(TaskRun, Setup) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
    ) {
        for mode in [TaskRun::Deferred, TaskRun::Cooperative] {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async { test(mode, setup(mode)).await });
        }
    }

    #[test]
    fn a_sleeping_ring_is_woken_by_data_in_both_task_run_modes() {
        for_both_modes(|mode, mut t| {
            Box::pin(async move {
                assert!(
                    t.wakeup.arm(&mut t.ring),
                    "{mode:?}: nothing is pending yet"
                );
                let mut theirs = t.theirs;
                let writer = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    theirs.write_all(b"ping").expect("write");
                    theirs
                });
                tokio::time::timeout(
                    Duration::from_secs(5),
                    poll_fn(|cx| t.wakeup.poll_signalled(cx)),
                )
                .await
                .unwrap_or_else(|_| panic!("{mode:?}: the eventfd never signalled"))
                .expect("eventfd readiness");
                t.wakeup.disarm(&mut t.ring);
                assert_eq!(reap_recv(&mut t.ring), 4, "{mode:?}");
                assert_eq!(&t.buf[..4], b"ping");
                drop(writer.join());
            })
        });
    }

    #[test]
    fn work_that_arrived_while_disarmed_keeps_the_ring_awake() {
        for_both_modes(|mode, mut t| {
            Box::pin(async move {
                // The reactor is awake (eventfd silenced) when the data lands.
                t.theirs.write_all(b"ping").expect("write");
                std::thread::sleep(Duration::from_millis(20));
                assert!(
                    !t.wakeup.arm(&mut t.ring),
                    "{mode:?}: arm() must refuse to sleep over pending work"
                );
                assert_eq!(reap_recv(&mut t.ring), 4, "{mode:?}");
            })
        });
    }
}
