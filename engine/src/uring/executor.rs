//! The small single-threaded executor an io_uring worker ticks from its
//! own loop, for the work that is still futures: hyper serving the HTTP
//! phase (`/`, `/healthz`, `/metrics`, `/stats` and the upgrade).
//!
//! Why `async-task` with our own queue rather than `async-executor`: the
//! loop needs "run what is ready, then tell me whether anything is left"
//! between two ring enters, and nothing else. A queue of `Runnable`s does
//! exactly that with one uncontended lock per wake-up; `LocalExecutor`
//! adds its own waker-notification machinery (an `Event` and an
//! `Arc<State>` with a concurrent queue) that the loop would never use.
//! WebSockets do not run here at all: after the upgrade they are plain
//! state in the worker's slab, driven by completions.
//!
//! The queue is behind a mutex because a `Waker` may in principle be woken
//! on any thread; on this worker only its own futures wake each other.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_task::{Runnable, Task};

/// The ready queue of one worker's futures.
#[derive(Clone, Default)]
pub struct Executor {
    ready: Arc<Ready>,
}

/// The queue, and its length readable without the lock: the loop asks
/// twice a turn whether anything is ready, and usually nothing is.
#[derive(Default)]
struct Ready {
    queue: Mutex<VecDeque<Runnable>>,
    len: AtomicUsize,
}

impl Ready {
    fn push(&self, runnable: Runnable) {
        let mut queue = lock(&self.queue);
        queue.push_back(runnable);
        self.len.store(queue.len(), Ordering::Release);
    }

    fn pop(&self) -> Option<Runnable> {
        let mut queue = lock(&self.queue);
        let runnable = queue.pop_front();
        self.len.store(queue.len(), Ordering::Release);
        runnable
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

impl Executor {
    /// Spawns `future` on this worker; dropping the returned [`Task`]
    /// cancels it (its future is dropped the next time the loop runs tasks).
    pub fn spawn(&self, future: impl Future<Output = ()> + 'static) -> Task<()> {
        let ready = Arc::clone(&self.ready);
        let (runnable, task) =
            async_task::spawn_local(future, move |runnable| ready.push(runnable));
        runnable.schedule();
        task
    }

    /// Runs the tasks that were ready when called (tasks they wake wait for
    /// the next call, so I/O keeps its turn); returns how many ran.
    pub fn run_ready(&self) -> usize {
        let batch = self.ready.len();
        for _ in 0..batch {
            let Some(runnable) = self.ready.pop() else {
                return batch;
            };
            runnable.run();
        }
        batch
    }

    /// Whether some task is ready to run.
    pub fn has_ready(&self) -> bool {
        self.ready.len() > 0
    }
}

/// The queue holds plain data, so a panic elsewhere cannot leave it broken.
fn lock(queue: &Mutex<VecDeque<Runnable>>) -> MutexGuard<'_, VecDeque<Runnable>> {
    queue
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn runs_ready_tasks_and_drops_cancelled_ones() {
        let executor = Executor::default();
        let ran = Rc::new(Cell::new(0));
        let task = executor.spawn({
            let ran = ran.clone();
            async move { ran.set(ran.get() + 1) }
        });
        assert!(executor.has_ready());
        assert_eq!(executor.run_ready(), 1);
        assert_eq!(ran.get(), 1);
        assert!(task.is_finished());
        let dropped = Rc::new(Cell::new(false));
        struct Flag(Rc<Cell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let flag = Flag(dropped.clone());
        let pending = executor.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        });
        executor.run_ready();
        assert!(!dropped.get());
        drop(pending);
        executor.run_ready();
        assert!(
            dropped.get(),
            "a cancelled task's future is dropped by the loop"
        );
    }
}
