//! What it measures: one echo round trip over a real loopback TCP pair
//! through the engine's server-side stream path, on each backend, on one
//! thread: the client (a plain tokio `TcpStream`) writes `size` bytes, the
//! server side reads them and writes them back through
//! * `uring`: `ringecho::uring::UringStream`, the engine's tokio
//!   `AsyncRead`/`AsyncWrite` adapter over its io_uring `Reactor`
//!   (multishot recv into the provided-buffer ring, the copy out of it,
//!   sends batched per reactor turn), with the reactor driven as in a worker;
//! * `epoll`: tokio's `TcpStream`, which is what the engine's epoll backend
//!   hands to hyper and fastwebsockets,
//!
//! and the client reads the echo. Kernel TCP time for both directions is
//! included, WebSocket framing is not (see `echo_path`). Client and server
//! share one thread and core, so there are no cross-core wake-ups: this is
//! the adapter's cost, not a latency figure.

mod common;

use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringecho::uring::{Reactor, UringStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::LocalSet;

const SIZES: [usize; 2] = [20, 16 * 1024];

/// A connected loopback pair: (client, server side as a std stream).
fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let client =
        std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    for s in [&client, &server] {
        s.set_nodelay(true).expect("nodelay");
        s.set_nonblocking(true).expect("nonblocking");
    }
    (client, server)
}

async fn round_trips<S>(client: &mut TcpStream, server: &mut S, size: usize, iters: u64) -> Duration
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let msg = vec![0x5a; size];
    let mut at_server = vec![0; size];
    let mut at_client = vec![0; size];
    let start = Instant::now();
    for _ in 0..iters {
        client.write_all(&msg).await.expect("client write");
        server
            .read_exact(&mut at_server)
            .await
            .expect("server read");
        server.write_all(&at_server).await.expect("server write");
        server.flush().await.expect("server flush");
        client
            .read_exact(&mut at_client)
            .await
            .expect("client read");
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = LocalSet::new();
    let mut group = c.benchmark_group("stream_adapter");
    let uring = ringecho::uring::probe().is_ok();
    if !uring {
        eprintln!("io_uring unavailable here: only the epoll backend is measured");
    }
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        if uring {
            let (client, server) = pair();
            let (mut client, mut server, _driver) = local.block_on(&rt, async {
                let reactor: Rc<Reactor> = Reactor::new(128, 4096).expect("io_uring reactor");
                let driver = tokio::task::spawn_local(reactor.clone().drive());
                let server = UringStream::new(reactor, OwnedFd::from(server));
                (TcpStream::from_std(client).expect("client"), server, driver)
            });
            group.bench_with_input(
                BenchmarkId::new("uring_round_trip", size),
                &size,
                |b, &size| {
                    b.iter_custom(|iters| {
                        local.block_on(&rt, round_trips(&mut client, &mut server, size, iters))
                    })
                },
            );
        }
        let (client, server) = pair();
        let (mut client, mut server) = local.block_on(&rt, async {
            (
                TcpStream::from_std(client).expect("client"),
                TcpStream::from_std(server).expect("server"),
            )
        });
        group.bench_with_input(
            BenchmarkId::new("epoll_round_trip", size),
            &size,
            |b, &size| {
                b.iter_custom(|iters| {
                    local.block_on(&rt, round_trips(&mut client, &mut server, size, iters))
                })
            },
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
