//! Measurement aid: what RFC-compliant masking costs loadgen per frame.
//!
//! Compares encoding a frame with a fresh ChaCha12 key per frame (what
//! loadgen does) against memcpy of a frame pre-masked once with a fixed key
//! (the shortcut some load tools take), for 20 B and 16 KiB payloads.
//!
//! ```text
//! cargo run --release -p loadgen --example mask_cost
//! ```

use std::hint::black_box;
use std::time::Instant;

use loadgen::codec::{encode_masked, OP_BINARY};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn main() {
    let mut rng = StdRng::from_entropy();
    for (size, iters) in [(20usize, 5_000_000u32), (16 * 1024, 200_000)] {
        let payload = vec![7u8; size];
        let mut out = Vec::with_capacity(size + 14);
        let t = Instant::now();
        for _ in 0..iters {
            out.clear();
            encode_masked(&mut out, OP_BINARY, black_box(&payload), rng.gen());
            black_box(&out);
        }
        let fresh = t.elapsed().as_nanos() as f64 / iters as f64;

        let mut premasked = Vec::new();
        encode_masked(&mut premasked, OP_BINARY, &payload, [1, 2, 3, 4]);
        let t = Instant::now();
        for _ in 0..iters {
            out.clear();
            out.extend_from_slice(black_box(&premasked));
            black_box(&out);
        }
        let fixed = t.elapsed().as_nanos() as f64 / iters as f64;
        println!(
            "{size:>6} B: fresh CSPRNG key + mask {fresh:>8.1} ns/frame, \
             pre-masked fixed key copy {fixed:>8.1} ns/frame, difference {:>8.1} ns",
            fresh - fixed
        );
    }
}
