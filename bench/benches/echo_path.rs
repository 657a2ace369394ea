//! What it measures: the server's per-message echo path, in the engine's
//! own code: fastwebsockets parses a masked client frame, unmasks it, and
//! `ringecho::internals::epoll::echo::run` encodes and writes the unmasked
//! echo, all through the engine's `SessionStream` (the layer under the codec
//! in production).
//! The transport is an in-memory stream that replays `BATCH` client frames
//! and a close frame, and drops what is written, so no syscalls and no
//! kernel copies are counted. One iteration = a fresh WebSocket echoing the
//! batch and answering the close; reported per message (the set-up and the
//! close are spread over the batch).

// criterion_group! defines a `pub fn benches` that cannot carry a doc
// comment; nothing else in a benchmark is public.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;

use bench::micro::{client_frames, ReplayStream};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fastwebsockets::{Role, WebSocket};
use ringecho::internals::epoll::echo::{self, EchoEnd};
use ringecho::internals::epoll::session::{SessionStream, Sessions};
use ringecho::internals::metrics::WorkerStats;
use ringecho::Config;

/// Messages per iteration.
const BATCH: usize = 32;
/// Sizes from the issue: a game input, a small and a large message, and one
/// bigger than the engine's 4 KiB receive buffers many times over.
const SIZES: [usize; 4] = [20, 1024, 16 * 1024, 64 * 1024];

fn echo_batch(
    rt: &tokio::runtime::Runtime,
    sessions: &Rc<Sessions>,
    stats: &WorkerStats,
    input: &Bytes,
) -> EchoEnd {
    let guard = sessions.open();
    let session = guard.session().clone();
    let stream = SessionStream::new(
        ReplayStream::new(input.clone()),
        Bytes::new(),
        session.clone(),
        false,
    );
    let mut ws = WebSocket::after_handshake(stream, Role::Server);
    rt.block_on(echo::run(&mut ws, session, stats, 16 << 20, None))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The worker's real counters: their cost is part of the echo path.
    let stats = Arc::new(WorkerStats::new(None));
    // No keep-alive pings and no backpressure deadline: only the echo.
    let config = Config {
        keep_alive_interval: None,
        backpressure_timeout: None,
        ..Config::default()
    };
    let sessions = Rc::new(Sessions::new(&config, stats.clone()));
    let mut group = c.benchmark_group("echo_path");
    for size in SIZES {
        let input = client_frames(size, BATCH, true);
        assert_eq!(echo_batch(&rt, &sessions, &stats, &input), EchoEnd::Closed);
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_with_input(
            BenchmarkId::new("parse_unmask_echo", size),
            &input,
            |b, input| b.iter(|| black_box(echo_batch(&rt, &sessions, &stats, input))),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench
}
criterion_main!(benches);
