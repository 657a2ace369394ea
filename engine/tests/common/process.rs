//! Child processes that never outlive a test.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A child process that is killed and reaped when dropped, so a failing test
/// never leaves a process behind.
pub struct KillOnDrop(Child);

impl KillOnDrop {
    /// Spawns `command`, failing the test if it cannot be started.
    pub fn spawn(command: &mut Command) -> KillOnDrop {
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {:?}: {error}", command.get_program()));
        KillOnDrop(child)
    }

    /// The child, for its id and pipes.
    pub fn child(&mut self) -> &mut Child {
        &mut self.0
    }

    /// The exit status if the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().expect("query the child's status")
    }

    /// Waits up to `limit` for the process to exit and returns its status, or
    /// `None` if it is still running.
    pub async fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
