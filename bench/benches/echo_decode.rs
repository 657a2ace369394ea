//! What it measures: the user-space work per echoed message on each
//! backend's hot path, once the client's frame is in memory, for the change
//! the io_uring rewrite made (the echo is decoded and sent in place):
//! * `in_place`: the io_uring path. One masked client frame lies in a
//!   buffer, as the kernel leaves it in a provided receive buffer;
//!   `ringecho::internals::protocol::Decoder::feed` parses the header,
//!   unmasks the payload in place, validates it if it is text, writes the server's echo
//!   header over the end of the client's header and reports the echo range
//!   `header_at..range.end`, which the ring layer sends from that buffer. No
//!   byte is copied. The buffers are re-initialised from a pristine masked
//!   frame outside the timed part (up to 64 frames, at most 16 KiB of them,
//!   per timed stretch, so the bytes are as warm in cache as bytes the
//!   kernel has just copied in); each stretch includes one pair of clock
//!   reads, which at 16 KiB is one per message (a few per cent).
//! * `fastwebsockets`: the epoll path's codec. A fastwebsockets
//!   `WebSocket` (`Role::Server`, set up as the engine's echo loop sets it)
//!   reads the same frame from an in-memory stream that returns it one copy
//!   per read (`bench::micro::RepeatStream`), unmasks and (text) validates
//!   it, and `write_frame(Frame::new(true, opcode, None, payload))` writes
//!   the echo into a sink that drops it (a vectored write over 1 KiB; under
//!   it a copy into fastwebsockets' write buffer). Unlike `in_place`, this
//!   includes one user-space copy of the frame from the stream into
//!   fastwebsockets' read buffer, which stands for the kernel's copy in
//!   `recv(2)`; the kernel's copy into the provided buffer has no stand-in
//!   in `in_place`. The engine's `SessionStream`, text watch and counters
//!   are not included (see `echo_path`).
//!
//! Both feed the whole frame at once: with the engine's default 4 KiB
//! receive buffers a 16 KiB frame reaches the decoder in several chunks.
//! Payloads are loadgen's (`PayloadKind::template`; text is ASCII). Syscalls
//! and kernel copies are not counted; reported per message.

// criterion_group! defines a `pub fn benches` that cannot carry a doc
// comment; nothing else in a benchmark is public.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::ops::Range;
use std::time::{Duration, Instant};

use bench::micro::{client_frame, RepeatStream};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fastwebsockets::{Frame, Role, WebSocket};
use futures_util::FutureExt;
use loadgen::payload::PayloadKind;
use ringecho::internals::protocol::frame::{encode, OpCode};
use ringecho::internals::protocol::{DataFrame, Decoder, Event};

/// (payload, size): a game input and a large message, binary; the large one
/// as text too, where both paths validate UTF-8.
const CASES: [(PayloadKind, usize); 3] = [
    (PayloadKind::Binary, 20),
    (PayloadKind::Binary, 16 * 1024),
    (PayloadKind::Text, 16 * 1024),
];
/// The message size limit the engine runs with by default.
const MAX_MESSAGE: usize = 16 << 20;

/// Decodes one whole client frame in place and returns the range of
/// `frame` to send back as its echo.
fn echo_in_place(decoder: &mut Decoder, frame: &mut [u8]) -> Range<usize> {
    let mut echo = 0..0;
    decoder.feed(frame, MAX_MESSAGE, |event| match event {
        Event::Echo(DataFrame {
            header_at: Some(start),
            range,
            first: true,
            last: true,
            ..
        }) => echo = start..range.end,
        other => panic!("not a whole message echoed in place: {other:?}"),
    });
    echo
}

/// Frames re-initialised and then decoded per timed stretch.
fn batch(frame_len: usize) -> usize {
    (16 * 1024 / frame_len).clamp(1, 64)
}

/// A server WebSocket over a stream that repeats `frame`, set up as
/// `ringecho::internals::epoll::echo::run` sets up its own.
fn fastwebsockets_server(frame: &[u8]) -> WebSocket<RepeatStream> {
    let mut ws = WebSocket::after_handshake(
        RepeatStream::new(Bytes::copy_from_slice(frame)),
        Role::Server,
    );
    ws.set_auto_close(false);
    ws.set_auto_pong(true);
    ws.set_max_message_size(MAX_MESSAGE + 1);
    ws
}

/// Reads one frame and writes its echo; returns the payload length.
fn echo_fastwebsockets(ws: &mut WebSocket<RepeatStream>) -> usize {
    let frame = ws
        .read_frame()
        .now_or_never()
        .expect("in memory: never pending")
        .expect("a valid frame");
    let len = frame.payload.len();
    ws.write_frame(Frame::new(true, frame.opcode, None, frame.payload))
        .now_or_never()
        .expect("in memory: never pending")
        .expect("written");
    len
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("echo_decode");
    for (kind, size) in CASES {
        let payload = kind.template(size, 7);
        let pristine = client_frame(kind.opcode(), &payload);
        let expected = encode(
            OpCode::try_from(kind.opcode()).expect("data opcode"),
            &payload,
        );
        group.throughput(Throughput::Bytes(size as u64));

        // Both paths must produce the server's frame before they are timed.
        let mut decoder = Decoder::new();
        let mut buf = pristine.clone();
        let echo = echo_in_place(&mut decoder, &mut buf);
        assert_eq!(&buf[echo], &expected[..], "in-place echo of {size} B");
        let mut ws = fastwebsockets_server(&pristine);
        assert_eq!(echo_fastwebsockets(&mut ws), size);
        assert_eq!(
            ws.into_inner().written(),
            expected.len(),
            "fastwebsockets echo"
        );
        let mut ws = fastwebsockets_server(&pristine);

        let batch = batch(pristine.len());
        let mut bufs = vec![pristine.clone(); batch];
        group.bench_function(
            BenchmarkId::new(format!("in_place/{}", kind.name()), size),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(batch as u64) as usize;
                        for buf in &mut bufs[..n] {
                            buf.copy_from_slice(&pristine);
                        }
                        let start = Instant::now();
                        for buf in &mut bufs[..n] {
                            let echo = echo_in_place(&mut decoder, buf);
                            black_box(&buf[echo]);
                        }
                        total += start.elapsed();
                        left -= n as u64;
                    }
                    total
                })
            },
        );
        group.bench_function(
            BenchmarkId::new(format!("fastwebsockets/{}", kind.name()), size),
            |b| b.iter(|| black_box(echo_fastwebsockets(&mut ws))),
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
