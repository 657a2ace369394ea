//! Timers for the futures on an io_uring worker ([`Timers::sleep`]). The
//! loop fires what is due on each tick of its sweep (at most 100 ms apart),
//! which is as precise as their only user, `/stats`, needs. Connection deadlines (handshake,
//! keep-alive, backpressure) are not timers: the loop's periodic sweep
//! checks them, so an open connection costs no timer entry.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::runtime::endpoints::WorkerTimer;

/// The pending sleeps of one worker. There are few (one per `/stats`
/// stream), so a plain list is the right structure.
#[derive(Default)]
pub struct Timers {
    pending: RefCell<Vec<(Instant, Waker)>>,
}

impl Timers {
    /// A future that completes `duration` from now.
    pub fn sleep(self: &Rc<Self>, duration: Duration) -> Sleep {
        Sleep {
            deadline: Instant::now() + duration,
            timers: self.clone(),
        }
    }

    /// Wakes every sleep whose deadline is at or before `now`.
    pub fn fire(&self, now: Instant) {
        let due: Vec<Waker> = {
            let mut pending = self.pending.borrow_mut();
            if pending.is_empty() {
                return;
            }
            let mut due = Vec::new();
            pending.retain(|(at, waker)| {
                if *at <= now {
                    due.push(waker.clone());
                    false
                } else {
                    true
                }
            });
            due
        };
        due.into_iter().for_each(Waker::wake);
    }
}

/// The `/stats` streams of an io_uring worker sleep on its timers.
impl WorkerTimer for Rc<Timers> {
    fn sleep(&self, period: Duration) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(Timers::sleep(self, period))
    }
}

/// Completes at its deadline; see [`Timers::sleep`].
pub struct Sleep {
    deadline: Instant,
    timers: Rc<Timers>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let mut pending = self.timers.pending.borrow_mut();
        match pending
            .iter_mut()
            .find(|(at, waker)| *at == self.deadline && waker.will_wake(cx.waker()))
        {
            Some(_) => {}
            None => pending.push((self.deadline, cx.waker().clone())),
        }
        Poll::Pending
    }
}
