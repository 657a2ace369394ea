//! An io_uring worker thread: its [`Loop`], the executor for the HTTP phase,
//! and the order of a turn (see [`super::event_loop`] for the ring side).

use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::Instant;

use super::event_loop::Loop;
use super::executor::Executor;
use super::http_io::{self, HttpIo};
use super::timers::Timers;
use crate::runtime::allocator::QuietCollector;
use crate::runtime::endpoints::Endpoints;
use crate::runtime::shutdown::{Drain, ShutdownSignal};
use crate::runtime::worker::WorkerSpec;

/// Runs one io_uring worker on the calling thread until the server stops.
/// No tokio runtime: the thread sleeps only in `io_uring_enter`.
pub fn run(spec: WorkerSpec) {
    let WorkerSpec {
        index,
        listener,
        shared,
        stop,
        ready,
        ..
    } = spec;
    let event_loop = match Loop::new(shared.clone(), index, OwnedFd::from(listener)) {
        Ok(event_loop) => Rc::new(RefCell::new(event_loop)),
        Err(e) => {
            let _ = ready.send(Err(format!("worker {index}: io_uring: {e}")));
            return;
        }
    };
    let executor = Executor::default();
    let timers = Rc::new(Timers::default());
    let shutdown = Rc::new(ShutdownSignal::default());
    let endpoints = Rc::new(Endpoints::new(
        shared.clone(),
        index,
        shutdown.clone(),
        timers.clone(),
    ));
    let _ = ready.send(Ok(()));
    let mut drain: Option<Drain> = None;
    let mut quiet = QuietCollector::new(Instant::now());
    loop {
        if event_loop.borrow().has_accepted() {
            let accepted = event_loop.borrow_mut().take_accepted();
            for (key, generation) in accepted {
                let io = HttpIo::new(event_loop.clone(), key, generation);
                let task = executor.spawn(http_io::serve(io, endpoints.clone()));
                event_loop.borrow_mut().set_http_task(key, generation, task);
            }
        }
        executor.run_ready();
        if event_loop.borrow_mut().take_tick() {
            // Every sweep period (the loop's multishot timeout): deadlines,
            // timers and the stop flag; the clock is read only here.
            let now = Instant::now();
            if drain.is_none() && *stop.borrow() {
                shutdown.trigger();
                event_loop.borrow_mut().begin_shutdown();
                drain = Some(Drain::start(now, shared.config.shutdown_timeout));
            }
            if let Some(drain) = drain.filter(|drain| drain.is_over(now)) {
                drain.give_up(index, event_loop.borrow().connections());
                break;
            }
            timers.fire(now);
            event_loop.borrow_mut().sweep(now);
            quiet.tick(now, event_loop.borrow().completions());
        }
        if drain.is_some() && event_loop.borrow().connections() == 0 {
            break;
        }
        // Sleep in the ring unless futures are ready to run.
        let wait = !executor.has_ready();
        if let Err(e) = event_loop.borrow_mut().turn(wait) {
            tracing::error!(worker = index, "io_uring loop failed: {e}");
            break;
        }
    }
    // Cancel what is left of the HTTP phase and let the executor drop those
    // futures (they hold handles to the loop), then close the loop.
    event_loop.borrow_mut().cancel_http_tasks();
    while executor.has_ready() {
        executor.run_ready();
    }
    drop(endpoints);
    drop(event_loop);
}
