//! The lingering close on the epoll backend (the io_uring loop has the
//! same rule). When the engine closes a WebSocket itself (an error code, or
//! 1001 at shutdown) while the client may still be sending, closing the
//! socket with unread bytes in its receive queue makes the kernel answer
//! with a reset, and the client's kernel may drop the close frame before
//! the application reads it. So, as nginx's `lingering_close` does, once
//! the close frame is out the write side is shut down (the client reads the
//! close frame, then end of stream), and what still arrives is read and
//! discarded until the client's end of stream, `--linger-time` or
//! `--linger-bytes`, whichever comes first; then the socket closes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::Linger;

/// What a discarding read takes at once. Allocated only while a
/// connection lingers, so an idle WebSocket's task does not carry it.
const SCRATCH_BYTES: usize = 16 * 1024;

/// How a lingering close ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LingerEnd {
    /// The client ended its stream: the socket closes with nothing unread.
    ClientDone,
    /// `--linger-time` or `--linger-bytes` ran out first: the client is cut
    /// off (with unread bytes, the kernel resets the connection).
    Bound,
    /// The socket failed (the client reset it, say).
    Failed,
}

/// Shuts down `io`'s write side, then reads and discards within `limits`.
/// The caller drops `io` afterwards, which closes the socket.
pub async fn linger<S>(mut io: S, limits: Linger) -> LingerEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if io.shutdown().await.is_err() {
        return LingerEnd::Failed;
    }
    let mut scratch = vec![0; SCRATCH_BYTES];
    let mut left = limits.bytes;
    let discard = async {
        loop {
            match io.read(&mut scratch[..SCRATCH_BYTES.min(left)]).await {
                Ok(0) => return LingerEnd::ClientDone,
                Ok(n) => {
                    left -= n;
                    if left == 0 {
                        return LingerEnd::Bound;
                    }
                }
                Err(_) => return LingerEnd::Failed,
            }
        }
    };
    tokio::time::timeout(limits.time, discard)
        .await
        .unwrap_or(LingerEnd::Bound)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::duplex;

    use super::*;

    fn limits(bytes: usize) -> Linger {
        Linger {
            time: Duration::from_secs(5),
            bytes,
        }
    }

    #[tokio::test]
    async fn ends_when_the_client_ends_its_stream() {
        let (server, mut client) = duplex(64);
        let lingering = tokio::spawn(linger(server, limits(1 << 20)));
        client.write_all(&[7; 1000]).await.unwrap();
        // The server's write side is shut: the client reads end of stream.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        drop(client);
        assert_eq!(lingering.await.unwrap(), LingerEnd::ClientDone);
    }

    #[tokio::test]
    async fn cuts_off_a_client_past_the_byte_bound() {
        let (server, mut client) = duplex(64);
        let lingering = tokio::spawn(linger(server, limits(300)));
        let _ = client.write_all(&[7; 1000]).await;
        assert_eq!(lingering.await.unwrap(), LingerEnd::Bound);
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_off_a_client_that_neither_sends_nor_ends() {
        let (server, _client) = duplex(64);
        let end = linger(
            server,
            Linger {
                time: Duration::from_millis(250),
                bytes: 1 << 20,
            },
        )
        .await;
        assert_eq!(end, LingerEnd::Bound);
    }
}
