//! Ctrl-C during a sweep: the first SIGINT (or SIGTERM, SIGHUP) asks the
//! sweep to stop after cleaning up the run in progress, keeping every point
//! already measured; a second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Exit status after an interrupted sweep (128 + SIGINT, as shells expect).
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// Whether the user asked the sweep to stop.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Installs the signal handler. Only one may be installed per process.
    pub fn install() -> Result<Interrupt, ctrlc::Error> {
        let interrupt = Interrupt::default();
        let flag = Arc::clone(&interrupt.0);
        ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::AcqRel) {
                eprintln!("\nsecond interrupt: exiting now");
                std::process::exit(INTERRUPTED_EXIT_CODE);
            }
            eprintln!(
                "\ninterrupt: stopping after cleaning up the current run; \
                 the points measured so far are kept (Ctrl-C again to quit now)"
            );
        })?;
        Ok(interrupt)
    }

    /// An interrupt that no signal sets (for tests and library callers).
    pub fn never() -> Interrupt {
        Interrupt::default()
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Asks for a stop, as a signal would.
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}
