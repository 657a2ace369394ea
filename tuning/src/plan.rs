//! What a sweep measures and in which order: the engine settings (one
//! [`Setting`] per point), the runs (every setting once per repeat) and an
//! estimate of how long they take.
//!
//! The epoll backend ignores `--receive-buffer-size` and `--receive-buffers`
//! (they size the io_uring provided-buffer ring, which epoll does not have).
//! Its settings therefore vary only the buffer size, with the first ring
//! count, and are passed to the server all the same: the epoll line is
//! measured at every size, so its wiggle shows the run-to-run noise of the
//! machine next to the io_uring lines.
//!
//! Runs are interleaved: each repeat visits every setting, odd repeats in
//! reverse order, so a slow drift of the machine (a neighbour's build, heat)
//! spreads over all settings instead of biasing the last ones.

use std::fmt;
use std::time::Duration;

use ringecho::IoBackend;
use serde::{Deserialize, Serialize};

/// One point of the sweep: the engine options it runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Setting {
    /// `--io`.
    pub backend: IoBackend,
    /// `--receive-buffer-size`, bytes.
    pub buffer_size: usize,
    /// `--receive-buffers`.
    pub buffers: usize,
    /// `--socket-receive-buffer` and `--socket-send-buffer` (the same value
    /// for both), bytes; `None` for the kernel default.
    pub socket_buffer: Option<usize>,
}

impl Setting {
    /// The ringecho options for this point, after the harness's own
    /// (`--listen`, `--threads 1`, `--io`, keep-alive off).
    pub fn server_args(&self) -> Vec<String> {
        let mut args = vec![
            "--receive-buffer-size".to_string(),
            self.buffer_size.to_string(),
            "--receive-buffers".to_string(),
            self.buffers.to_string(),
        ];
        if let Some(bytes) = self.socket_buffer {
            args.extend([
                "--socket-receive-buffer".to_string(),
                bytes.to_string(),
                "--socket-send-buffer".to_string(),
                bytes.to_string(),
            ]);
        }
        args
    }

    /// The flags a user types to run the engine this way: only the options
    /// that matter on this backend.
    pub fn ringecho_flags(&self) -> String {
        let mut flags = format!("ringecho --io {}", self.backend);
        if self.backend.uses_receive_ring() {
            flags += &format!(
                " --receive-buffer-size {} --receive-buffers {}",
                human_bytes(self.buffer_size),
                self.buffers
            );
        }
        if let Some(bytes) = self.socket_buffer {
            let bytes = human_bytes(bytes);
            flags += &format!(" --socket-receive-buffer {bytes} --socket-send-buffer {bytes}");
        }
        flags
    }

    /// User-space bytes the receive ring commits per worker (size x count);
    /// zero on epoll, which has no ring.
    pub fn ring_bytes(&self) -> usize {
        if self.backend.uses_receive_ring() {
            self.buffer_size * self.buffers
        } else {
            0
        }
    }

    /// The line this point belongs to in the plots: everything but the
    /// buffer size (on epoll the ring count is not part of it).
    pub fn series(&self) -> Series {
        Series {
            backend: self.backend,
            buffers: self.backend.uses_receive_ring().then_some(self.buffers),
            socket_buffer: self.socket_buffer,
        }
    }

    /// A short label, e.g. `uring 1KiB x128`, or `epoll (1KiB point)`: on
    /// epoll the size is only where the point sits on the plots.
    pub fn label(&self) -> String {
        let size = human_bytes(self.buffer_size);
        let mut label = if self.backend.uses_receive_ring() {
            format!("{} {size} x{}", self.backend, self.buffers)
        } else {
            format!("{} ({size} point)", self.backend)
        };
        if let Some(bytes) = self.socket_buffer {
            label += &format!(" sock {}", human_bytes(bytes));
        }
        label
    }
}

/// A line of the plots: one backend (and ring count, socket buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Series {
    /// The backend.
    pub backend: IoBackend,
    /// The ring count (`None` on epoll, where it does not apply).
    pub buffers: Option<usize>,
    /// The kernel socket buffers (`None`: kernel default).
    pub socket_buffer: Option<usize>,
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.buffers {
            Some(count) => write!(f, "{} x{count} buffers", self.backend)?,
            None => write!(f, "{} (ring knobs unused)", self.backend)?,
        }
        if let Some(bytes) = self.socket_buffer {
            write!(f, ", socket buffers {}", human_bytes(bytes))?;
        }
        Ok(())
    }
}

/// The axes of a sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Axes {
    /// Backends to run.
    pub backends: Vec<IoBackend>,
    /// `--receive-buffer-size` values, bytes.
    pub buffer_sizes: Vec<usize>,
    /// `--receive-buffers` values (io_uring only).
    pub buffer_counts: Vec<usize>,
    /// Kernel socket buffer values; `None` is the kernel default.
    pub socket_buffers: Vec<Option<usize>>,
}

impl Axes {
    /// Every setting: the full grid on io_uring; on epoll one ring count
    /// (the first), since it ignores the ring options.
    pub fn settings(&self) -> Vec<Setting> {
        let mut settings = Vec::new();
        for &socket_buffer in &self.socket_buffers {
            for &buffer_size in &self.buffer_sizes {
                for &backend in &self.backends {
                    let counts = if backend.uses_receive_ring() {
                        &self.buffer_counts[..]
                    } else {
                        &self.buffer_counts[..1.min(self.buffer_counts.len())]
                    };
                    for &buffers in counts {
                        settings.push(Setting {
                            backend,
                            buffer_size,
                            buffers,
                            socket_buffer,
                        });
                    }
                }
            }
        }
        settings
    }
}

/// One measurement to make: a setting in one repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// 0-based repeat.
    pub repeat: usize,
    /// The setting.
    pub setting: Setting,
}

/// The runs of a sweep, in measuring order (see the module docs).
pub fn runs(settings: &[Setting], repeats: usize) -> Vec<Run> {
    let mut runs = Vec::with_capacity(settings.len() * repeats);
    for repeat in 0..repeats {
        let mut order: Vec<Setting> = settings.to_vec();
        if repeat % 2 == 1 {
            order.reverse();
        }
        runs.extend(order.into_iter().map(|setting| Run { repeat, setting }));
    }
    runs
}

/// loadgen's own warmup inside the measured run: connect, then this long
/// before the histograms start.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Time budget of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The warmup loadgen run before the measured one (discarded).
    pub warmup: Duration,
    /// The measured loadgen run.
    pub measure: Duration,
}

/// Rough wall time of one run: warmup + settle + measured window, plus starting and
/// stopping the server and opening `connections` twice at loadgen's default
/// 2000 connections per second.
pub fn estimate_run(timing: Timing, connections: usize) -> Duration {
    const START_STOP: Duration = Duration::from_millis(800);
    let connect = Duration::from_secs_f64(2.0 * connections as f64 / 2000.0);
    timing.warmup + SETTLE + timing.measure + START_STOP + connect
}

/// `4096` -> `4KiB`, `1536` -> `1536B`: the exact value in the engine's size syntax.
pub fn human_bytes(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{}MiB", bytes >> 20)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{}KiB", bytes >> 10)
    } else {
        format!("{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axes() -> Axes {
        Axes {
            backends: vec![IoBackend::Uring, IoBackend::Epoll],
            buffer_sizes: vec![256, 4096],
            buffer_counts: vec![32, 128],
            socket_buffers: vec![None],
        }
    }

    #[test]
    fn epoll_gets_one_count_per_size_uring_the_grid() {
        let settings = axes().settings();
        let uring = settings
            .iter()
            .filter(|s| s.backend == IoBackend::Uring)
            .count();
        let epoll: Vec<_> = settings
            .iter()
            .filter(|s| s.backend == IoBackend::Epoll)
            .collect();
        assert_eq!(uring, 4);
        assert_eq!(epoll.len(), 2);
        assert!(epoll.iter().all(|s| s.buffers == 32 && s.ring_bytes() == 0));
    }

    #[test]
    fn repeats_alternate_direction() {
        let settings = axes().settings();
        let runs = runs(&settings, 3);
        assert_eq!(runs.len(), 18);
        assert_eq!(runs[0].setting, settings[0]);
        assert_eq!(runs[6].setting, settings[5]);
        assert_eq!(runs[11].setting, settings[0]);
        assert_eq!(runs[12].setting, settings[0]);
        assert_eq!(runs[17].repeat, 2);
    }

    #[test]
    fn flags_name_only_what_the_backend_uses() {
        let uring = Setting {
            backend: IoBackend::Uring,
            buffer_size: 1024,
            buffers: 128,
            socket_buffer: Some(65536),
        };
        assert_eq!(
            uring.ringecho_flags(),
            "ringecho --io uring --receive-buffer-size 1KiB --receive-buffers 128 \
             --socket-receive-buffer 64KiB --socket-send-buffer 64KiB"
        );
        assert_eq!(uring.ring_bytes(), 128 * 1024);
        let epoll = Setting {
            backend: IoBackend::Epoll,
            socket_buffer: None,
            ..uring
        };
        assert_eq!(epoll.ringecho_flags(), "ringecho --io epoll");
        assert_eq!(epoll.label(), "epoll (1KiB point)");
        assert_eq!(uring.label(), "uring 1KiB x128 sock 64KiB");
        assert_eq!(epoll.series().buffers, None);
        assert_eq!(human_bytes(1536), "1536B");
        assert_eq!(human_bytes(1 << 20), "1MiB");
    }
}
