//! What it measures: loadgen's own cost per echoed message once its bytes
//! are in memory: `loadgen::conn::on_message` pops the outstanding message,
//! checks the opcode, verifies the echo (length, sequence number, header and
//! every payload byte against the template) and records the round trip in
//! the corrected and uncorrected HdrHistograms. Frame parsing, unmasking and
//! syscalls are not included. This is the per-message work that decides how
//! far one loadgen core can drive a server.

// criterion_group! defines a `pub fn benches` that cannot carry a doc
// comment; nothing else in a benchmark is public.
#![allow(missing_docs)]

mod common;

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use loadgen::conn::{on_message, State};
use loadgen::payload::{PayloadKind, Pending};
use loadgen::stats::Interval;

const SIZES: [usize; 3] = [20, 1024, 16 * 1024];

fn bench(c: &mut Criterion) {
    let kind = PayloadKind::Binary;
    let mut group = c.benchmark_group("loadgen_message");
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        let mut template = kind.template(size, 7);
        let pending = Pending {
            seq: 42,
            len: size as u32,
            sent_ns: 1_000_000,
            intended_ns: 990_000,
        };
        kind.write_header(&mut template, pending.seq, pending.sent_ns);
        let echo = template.clone();
        let mut inflight = VecDeque::with_capacity(4);
        let mut stats = Interval::default();
        group.bench_with_input(
            BenchmarkId::new("verify_and_record", size),
            &echo,
            |b, echo| {
                let mut now = pending.sent_ns;
                b.iter(|| {
                    inflight.push_back(pending);
                    // Latencies spread over 50 us .. 1 ms, as on loopback.
                    now = pending.sent_ns + 50_000 + (now * 7919) % 950_000;
                    black_box(on_message(
                        State::Open,
                        kind,
                        kind.opcode(),
                        echo,
                        &mut inflight,
                        &template,
                        &mut stats,
                        now,
                    ))
                })
            },
        );
        assert_eq!(stats.errors.total(), 0, "every echo verified");
        assert!(stats.messages > 0);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench
}
criterion_main!(benches);
