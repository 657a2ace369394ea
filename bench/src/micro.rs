//! Pieces the criterion micro-benchmarks (`benches/`) share: client frames
//! as they arrive on the wire, and in-memory streams that replay them, so
//! a benchmark measures the codec and echo code rather than the kernel.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use loadgen::codec::{encode_masked, OP_BINARY, OP_CLOSE};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Implements `AsyncWrite` for an in-memory stream with a `written` byte
/// count: every write is accepted whole and only counted.
macro_rules! counting_write {
    ($stream:ty) => {
        impl AsyncWrite for $stream {
            fn poll_write(
                mut self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.written += buf.len();
                Poll::Ready(Ok(buf.len()))
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let n = bufs.iter().map(|b| b.len()).sum();
                self.written += n;
                Poll::Ready(Ok(n))
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
    };
}

/// The mask key every generated client frame uses.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// `count` masked binary frames of `size` bytes each (as a client sends
/// them), followed by a masked close frame with code 1000 when `close`.
pub fn client_frames(size: usize, count: usize, close: bool) -> Bytes {
    let payload: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let mut out = Vec::with_capacity(count * (size + 14) + 8);
    for _ in 0..count {
        encode_masked(&mut out, OP_BINARY, &payload, MASK);
    }
    if close {
        encode_masked(&mut out, OP_CLOSE, &1000u16.to_be_bytes(), MASK);
    }
    Bytes::from(out)
}

/// One masked client frame (FIN set) with `opcode` (`loadgen::codec::OP_*`)
/// and `payload`, as a client sends it.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    encode_masked(&mut out, opcode, payload, MASK);
    out
}

/// A stream whose reads return the same bytes (one client frame) over and
/// over, and whose writes are counted and dropped. A read never runs past
/// the end of one copy, as a `recv` on a connection with one message in
/// flight: a reader gets each message in reads of its own.
#[derive(Debug, Clone)]
pub struct RepeatStream {
    frame: Bytes,
    at: usize,
    written: usize,
}

impl RepeatStream {
    /// Reads will return `frame` (not empty), again and again.
    pub fn new(frame: Bytes) -> RepeatStream {
        assert!(
            !frame.is_empty(),
            "an empty frame would read as end of file"
        );
        RepeatStream {
            frame,
            at: 0,
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.written
    }
}

impl AsyncRead for RepeatStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let at = self.at;
        let n = (self.frame.len() - at).min(buf.remaining());
        buf.put_slice(&self.frame[at..at + n]);
        self.at = (at + n) % self.frame.len();
        Poll::Ready(Ok(()))
    }
}

counting_write!(RepeatStream);

/// A stream whose reads replay fixed bytes (then end of file) and whose
/// writes are counted and dropped.
#[derive(Debug, Clone, Default)]
pub struct ReplayStream {
    input: Bytes,
    written: usize,
}

impl ReplayStream {
    /// Reads will return `input`, in pieces as large as the reader asks for.
    pub fn new(input: Bytes) -> ReplayStream {
        ReplayStream { input, written: 0 }
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.written
    }
}

impl AsyncRead for ReplayStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.input.len().min(buf.remaining());
        buf.put_slice(&self.input[..n]);
        self.input.advance(n);
        Poll::Ready(Ok(()))
    }
}

counting_write!(ReplayStream);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn frames_are_masked_client_frames() {
        let f = client_frames(20, 2, true);
        // 2 x (2 header + 4 mask + 20) + close (2 + 4 + 2).
        assert_eq!(f.len(), 2 * 26 + 8);
        assert_eq!(f[0], 0x82, "FIN + binary");
        assert_eq!(f[1], 0x80 | 20, "masked, 20 bytes");
        assert_eq!(f[2 * 26], 0x88, "FIN + close");
        let big = client_frames(70_000, 1, false);
        assert_eq!(big[1], 0x80 | 127, "64-bit length");
    }

    #[test]
    fn one_frame_is_the_same_as_client_frames() {
        let payload: Vec<u8> = (0..20).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(
            client_frame(OP_BINARY, &payload),
            client_frames(20, 1, false)
        );
    }

    #[test]
    fn repeats_one_frame_per_read_and_counts_writes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut s = RepeatStream::new(Bytes::from_static(b"hello"));
            let mut got = [0; 8];
            for _ in 0..3 {
                assert_eq!(s.read(&mut got).await.unwrap(), 5);
                assert_eq!(&got[..5], b"hello");
            }
            assert_eq!(s.read(&mut got[..3]).await.unwrap(), 3);
            assert_eq!(
                s.read(&mut got).await.unwrap(),
                2,
                "stops at the copy's end"
            );
            assert_eq!(&got[..2], b"lo");
            s.write_all(b"abc").await.unwrap();
            assert_eq!(s.written(), 3);
        });
    }

    #[test]
    fn replays_then_ends_and_counts_writes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut s = ReplayStream::new(Bytes::from_static(b"hello"));
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"hello");
            s.write_all(b"abc").await.unwrap();
            assert_eq!(s.written(), 3);
        });
    }
}
