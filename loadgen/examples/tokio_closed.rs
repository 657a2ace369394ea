//! Measurement aid for loadgen's hot-path choice: the same closed-loop
//! 20 B traffic as `loadgen --preset fws-100x20`, driven by a tokio
//! current-thread runtime with one task per connection (the design loadgen
//! did *not* pick). Fresh mask key per frame, echo length checked, nothing
//! else: this is a lower bound on what a tokio-based loadgen would cost.
//!
//! ```text
//! taskset -c 0 target/release/examples/tokio_closed 127.0.0.1:8080 100 5
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

async fn connection(addr: String, count: Arc<AtomicU64>) -> std::io::Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(REQUEST).await?;
    let mut buf = vec![0u8; 4096];
    let mut got = 0;
    while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf[got..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    let mut frame = [0u8; 26];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (&frame as *const _ as u64);
    loop {
        // xorshift key per frame (cheaper than loadgen's ChaCha: favours tokio).
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let key = (seed as u32).to_ne_bytes();
        frame[0] = 0x82;
        frame[1] = 0x80 | 20;
        frame[2..6].copy_from_slice(&key);
        for i in 0..20 {
            frame[6 + i] = (i as u8) ^ key[i & 3];
        }
        s.write_all(&frame).await?;
        s.read_exact(&mut buf[..22]).await?;
        count.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let conns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let count = Arc::new(AtomicU64::new(0));
        for _ in 0..conns {
            tokio::spawn(connection(addr.clone(), count.clone()));
        }
        tokio::time::sleep(Duration::from_secs(1)).await; // warmup
        let start = Instant::now();
        let c0 = count.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let n = count.load(Ordering::Relaxed) - c0;
        println!(
            "tokio_closed: {:.0} msg/s",
            n as f64 / start.elapsed().as_secs_f64()
        );
    });
    Ok(())
}
