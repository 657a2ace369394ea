//! One run of one setting, on the shared harness of the `bench` crate
//! ([`bench::harness`]): start `ringecho` pinned to the server CPU with the
//! setting's options, warm it up with one loadgen run (discarded), then
//! measure a second loadgen run while a sampler reads the server's RSS and
//! open connections from `/proc`.
//!
//! The measured run keeps loadgen's own warmup ([`SETTLE`]) out of its
//! histograms: opening a few hundred connections at once is a burst a game
//! server sees once, not every tick, and in a 3 s window it would decide
//! the p99 by itself. The server's CPU time is read right before and right
//! after that run; the messages it echoed in that time are the measured
//! window's at the measured rate, extended over the settle time
//! (`msg/s x (settle + window)`), which holds because the load is steady
//! once connected (open loop: a fixed offered rate). The handshakes of the
//! run are in the CPU time; against tens of thousands of messages they
//! are noise.
//!
//! Memory per connection is the server's RSS in the middle of the measured
//! window, with its connections open, minus its RSS after start-up, before
//! any connection, divided by the connections open then. It therefore
//! includes the receive-ring pages the traffic touched, which the engine
//! maps lazily.
//!
//! That is one sample per run, on purpose. Counting the open connections
//! reads `/proc/PID/net/tcp`, which walks the kernel's TCP hash table; done
//! every 200 ms it stole the CPU from the server or loadgen often enough to
//! put milliseconds into every p99 (p50 stayed at ~30 us). One read in the
//! middle of a 3 s window touches far fewer than 1% of the messages.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use bench::harness::{Loadgen, RunningServer, ServerSpec};
use bench::HarnessError;

use crate::plan::{Run, Timing, SETTLE};
use crate::sample::Sample;
use crate::workload::Workload;

/// Pause after the server announced its address before reading its idle RSS.
const IDLE_SETTLE: Duration = Duration::from_millis(200);
/// The log line the engine prints the first time its receive ring runs dry.
const RAN_DRY_MARKER: &str = "receive buffer ring ran dry";

/// The binaries and CPUs every run uses.
#[derive(Debug, Clone)]
pub struct Rig {
    /// The `ringecho` binary.
    pub ringecho: PathBuf,
    /// The `loadgen` binary and the CPU it is pinned to.
    pub loadgen: Loadgen,
    /// The CPU the server is pinned to.
    pub server_cpu: usize,
}

/// Runs `run` of `workload` once and returns what it measured.
pub fn measure(
    rig: &Rig,
    workload: &Workload,
    run: &Run,
    timing: Timing,
) -> Result<Sample, HarnessError> {
    let setting = run.setting;
    let spec = ServerSpec::ringecho(&rig.ringecho, setting.backend, rig.server_cpu)
        .with_args(setting.server_args());
    let server = RunningServer::start(&spec)?;
    thread::sleep(IDLE_SETTLE);
    let rss_before = server.rss_bytes()?;
    let args = workload.loadgen_args();
    if !timing.warmup.is_zero() {
        rig.loadgen
            .run(&server.ws_url(), &args, timing.warmup, Duration::ZERO)?;
    }
    let done = AtomicBool::new(false);
    let cpu_before = server.cpu_time()?;
    let (report, peak) = thread::scope(|scope| {
        let sampler = scope.spawn(|| sample_mid_window(&server, &done, timing.measure));
        let report = rig
            .loadgen
            .run(&server.ws_url(), &args, timing.measure, SETTLE);
        done.store(true, Ordering::Release);
        let peak = sampler.join().unwrap_or(Ok(Peak::default()));
        (report, peak)
    });
    let report = report?;
    let server_cpu = server.cpu_time()?.saturating_sub(cpu_before);
    let peak = peak?;
    let ring_ran_dry = server.stderr_tail().contains(RAN_DRY_MARKER);
    server.stop()?;

    let echoed = report.msgs_per_sec * (SETTLE + timing.measure).as_secs_f64();
    let report = &report;
    let latency = &report.latency_us.corrected;
    let lost: u64 = report.connections.lost.values().sum();
    Ok(Sample {
        workload: workload.name.clone(),
        repeat: run.repeat,
        backend: setting.backend,
        receive_buffer_size: setting.buffer_size,
        receive_buffers: setting.buffers,
        socket_buffer: setting.socket_buffer,
        msgs_per_sec: report.msgs_per_sec,
        p50_us: latency.p50,
        p99_us: latency.p99,
        p99_9_us: latency.p99_9,
        max_us: latency.max,
        cpu_us_per_msg: if echoed > 0.0 {
            server_cpu.as_secs_f64() * 1e6 / echoed
        } else {
            f64::NAN
        },
        rss_per_connection_bytes: if peak.open > 0 {
            (peak.rss as f64 - rss_before as f64) / peak.open as f64
        } else {
            f64::NAN
        },
        ring_bytes: setting.ring_bytes(),
        connections_open: peak.open,
        errors: report.errors.total + report.connections.failed + lost,
        ring_ran_dry,
        loadgen_bound: report.client.as_ref().is_some_and(|c| c.warning.is_some()),
        load_average: crate::provenance::load_average(),
    })
}

/// Connections open and RSS at one moment of the measured window.
#[derive(Debug, Clone, Copy, Default)]
struct Peak {
    open: usize,
    rss: u64,
}

/// Waits until the middle of the measured window (the run's settle plus
/// half the window), then reads open connections and RSS once. Returns an
/// empty sample if the run ends first.
fn sample_mid_window(
    server: &RunningServer,
    done: &AtomicBool,
    window: Duration,
) -> Result<Peak, HarnessError> {
    const POLL: Duration = Duration::from_millis(20);
    let at = std::time::Instant::now() + SETTLE + window / 2;
    while std::time::Instant::now() < at {
        if done.load(Ordering::Acquire) {
            return Ok(Peak::default());
        }
        thread::sleep(POLL);
    }
    Ok(Peak {
        open: server.open_connections()?,
        rss: server.rss_bytes()?,
    })
}
