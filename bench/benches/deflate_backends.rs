//! What it measures: the per-message cost of the raw DEFLATE work behind
//! permessage-deflate on 1 KiB of JSON-like text (a game's state snapshot),
//! for each DEFLATE implementation the engine could use:
//! * `inflate_check`: what every compressed message costs the engine (the
//!   passthrough echo): reset the inflater, inflate the message and its
//!   `00 00 ff ff` tail into a 16 KiB scratch buffer that is dropped;
//! * `deflate_level_N`: what a recompressed echo adds: reset the deflater
//!   (no context takeover), compress the message with a sync flush.
//!
//! Implementations: flate2 as the workspace builds it (zlib-rs; with
//! `--features c-zlib` the C zlib instead, so the same code measures both)
//! and miniz_oxide called directly (flate2's default backend, which has no
//! window-bits control through flate2). The compressed sizes are printed
//! once. `docs/permessage-deflate.md` records a run and the choice it led to.

// criterion_group! defines a `pub fn benches` that cannot carry a doc
// comment; nothing else in a benchmark is public.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use miniz_oxide::deflate::core::{CompressionStrategy, CompressorOxide};
use miniz_oxide::inflate::stream::InflateState;
use miniz_oxide::{DataFormat, MZFlush};

const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// flate2's backend in this build.
const FLATE2_BACKEND: &str = if cfg!(feature = "c-zlib") {
    "c-zlib"
} else {
    "zlib-rs"
};

/// About 1 KiB of JSON-like state, as `loadgen`'s compressible preset sends.
fn snapshot() -> Vec<u8> {
    let mut text = String::from("[");
    let mut i = 0;
    while text.len() < 1000 {
        text.push_str(&format!(
            "{{\"id\":{i},\"x\":{}.5,\"y\":-{}.25,\"state\":\"running\",\"hp\":{}}},",
            i * 7 % 1000,
            i * 13 % 1000,
            100 - i
        ));
        i += 1;
    }
    text.truncate(1023);
    text.push(']');
    text.into_bytes()
}

fn flate2_deflate(compress: &mut Compress, message: &[u8], out: &mut Vec<u8>) {
    compress.reset();
    out.clear();
    compress
        .compress_vec(message, out, FlushCompress::Sync)
        .expect("deflate");
    assert!(out.ends_with(&TAIL), "the output had room for the flush");
    out.truncate(out.len() - TAIL.len());
}

fn flate2_inflate(decompress: &mut Decompress, payload: &[u8], scratch: &mut [u8]) -> u64 {
    decompress.reset(false);
    decompress
        .decompress(payload, scratch, FlushDecompress::None)
        .expect("inflate");
    decompress
        .decompress(&TAIL, scratch, FlushDecompress::None)
        .expect("inflate the tail");
    decompress.total_out()
}

fn miniz_deflate(compressor: &mut CompressorOxide, message: &[u8], out: &mut [u8]) -> usize {
    compressor.reset();
    let result = miniz_oxide::deflate::stream::deflate(compressor, message, out, MZFlush::Sync);
    assert_eq!(result.bytes_consumed, message.len());
    result.bytes_written - TAIL.len()
}

fn miniz_inflate(state: &mut InflateState, payload: &[u8], scratch: &mut [u8]) -> usize {
    state.reset(DataFormat::Raw);
    let first = miniz_oxide::inflate::stream::inflate(state, payload, scratch, MZFlush::None);
    let (_, rest) = scratch.split_at_mut(first.bytes_written);
    let tail = miniz_oxide::inflate::stream::inflate(state, &TAIL, rest, MZFlush::Sync);
    first.bytes_written + tail.bytes_written
}

fn bench(c: &mut Criterion) {
    let message = snapshot();
    let mut scratch = vec![0u8; 16 << 10];
    let mut group = c.benchmark_group("deflate_backends");
    for level in [1, 6] {
        let mut compress = Compress::new_with_window_bits(Compression::new(level), false, 15);
        let mut out = Vec::with_capacity(4096);
        flate2_deflate(&mut compress, &message, &mut out);
        let payload = out.clone();
        let mut decompress = Decompress::new_with_window_bits(false, 15);
        assert_eq!(
            flate2_inflate(&mut decompress, &payload, &mut scratch),
            message.len() as u64
        );
        assert_eq!(&scratch[..message.len()], &message[..]);
        eprintln!(
            "flate2 ({FLATE2_BACKEND}) level {level}: {} B -> {} B",
            message.len(),
            payload.len()
        );
        group.bench_function(
            format!("deflate_level_{level}/flate2-{FLATE2_BACKEND}"),
            |b| b.iter(|| flate2_deflate(&mut compress, black_box(&message), &mut out)),
        );
        if level == 6 {
            group.bench_function(format!("inflate_check/flate2-{FLATE2_BACKEND}"), |b| {
                b.iter(|| flate2_inflate(&mut decompress, black_box(&payload), &mut scratch))
            });
        }

        let mut compressor = Box::new(CompressorOxide::with_params(
            DataFormat::Raw,
            level as u8,
            CompressionStrategy::Default,
            15,
        ));
        let mut out = vec![0u8; 4096];
        let written = miniz_deflate(&mut compressor, &message, &mut out);
        let payload = out[..written].to_vec();
        let mut state = InflateState::new_boxed(DataFormat::Raw);
        assert_eq!(
            miniz_inflate(&mut state, &payload, &mut scratch),
            message.len()
        );
        eprintln!(
            "miniz_oxide level {level}: {} B -> {} B",
            message.len(),
            payload.len()
        );
        group.bench_function(format!("deflate_level_{level}/miniz_oxide"), |b| {
            b.iter(|| miniz_deflate(&mut compressor, black_box(&message), &mut out))
        });
        if level == 6 {
            group.bench_function("inflate_check/miniz_oxide", |b| {
                b.iter(|| miniz_inflate(&mut state, black_box(&payload), &mut scratch))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench
}
criterion_main!(benches);
