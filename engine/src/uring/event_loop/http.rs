//! The HTTP phase's side of the loop, called by hyper's I/O adapter
//! ([`super::super::http_io`]): reads that stop at the end of each request
//! head, writes queued as owned pieces, and the upgrade that turns the slot
//! into a WebSocket the loop handles itself.

use std::io;

use super::echo::Source;
use super::Loop;
use crate::protocol::deflate::{Agreed, ConnDeflate};
use crate::protocol::Decoder;
use crate::runtime::keep_alive::Owed;
use crate::runtime::shared::Admission;
use crate::uring::conn::{Conn, Phase, WebSocketState};
use crate::uring::outbox::Piece;

/// Unsent bytes above which hyper's writes wait (HTTP phase only).
const HTTP_SEND_HIGH_WATER: usize = 256 * 1024;

impl Loop {
    pub(super) fn http_conn(&mut self, key: usize, generation: u32) -> Option<&mut Conn> {
        self.conns
            .get_mut(key)
            .filter(|conn| conn.generation == generation)
    }

    /// Stores the task that serves HTTP on `key`.
    pub(crate) fn set_http_task(
        &mut self,
        key: usize,
        generation: u32,
        task: async_task::Task<()>,
    ) {
        match self.http_conn(key, generation).and_then(|conn| conn.http()) {
            Some(http) => http.task = Some(task),
            None => drop(task),
        }
    }

    /// Copies received bytes for hyper, up to the end of the next request
    /// head (see [`HttpState::head_end`](crate::uring::conn::HttpState::head_end)).
    pub(crate) fn http_read(
        &mut self,
        key: usize,
        generation: u32,
        waker: &std::task::Waker,
        out: &mut hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let idle_deadline = self.now_ms + self.limits.handshake_timeout_ms;
        let Some(conn) = self
            .conns
            .get_mut(key)
            .filter(|conn| conn.generation == generation)
        else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let Some(http) = conn.http() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if http.unread.is_empty() {
            return match http.read_end {
                Some(0) => Poll::Ready(Ok(())),
                Some(errno) => Poll::Ready(Err(io::Error::from_raw_os_error(errno))),
                None => {
                    if !http.reader.as_ref().is_some_and(|w| w.will_wake(waker)) {
                        http.reader = Some(waker.clone());
                    }
                    Poll::Pending
                }
            };
        }
        while out.remaining() > 0 {
            let Some(unread) = http.unread.front_mut() else {
                break;
            };
            let bytes = self
                .buffers
                .chunk(unread.id, unread.start as usize, unread.end as usize);
            let room = bytes.len().min(out.remaining());
            let (take, head_done) = http.head_end.scan(&bytes[..room]);
            out.put_slice(&bytes[..take]);
            unread.start += take as u32;
            if unread.start == unread.end {
                let id = unread.id;
                http.unread.pop_front();
                self.buffers.release(id);
            }
            if head_done {
                http.seen_request = true;
                break;
            }
        }
        // Bytes went to hyper: once a request has been seen, the deadline
        // is an idle timeout.
        if http.seen_request {
            conn.handshake_deadline_ms = idle_deadline;
        }
        self.resume_if_drained(key);
        Poll::Ready(Ok(()))
    }

    /// Queues hyper's bytes for sending; waits above a high-water mark.
    pub(crate) fn http_write(
        &mut self,
        key: usize,
        generation: u32,
        waker: &std::task::Waker,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        use std::task::Poll;
        let idle_deadline = self.now_ms + self.limits.handshake_timeout_ms;
        let Some(conn) = self.http_conn(key, generation) else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        if conn.closing {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if conn.unsent() > HTTP_SEND_HIGH_WATER {
            if let Some(http) = conn.http() {
                http.writer = Some(waker.clone());
            }
            return Poll::Pending;
        }
        conn.handshake_deadline_ms = idle_deadline;
        let mut bytes = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum());
        for buf in bufs {
            bytes.extend_from_slice(buf);
        }
        let n = bytes.len();
        self.queue(key, Piece::Owned { bytes, start: 0 });
        self.commit(key);
        Poll::Ready(Ok(n))
    }

    /// hyper is done with `key` without an upgrade: close once sent.
    pub(crate) fn http_done(&mut self, key: usize, generation: u32) {
        let Some(conn) = self.http_conn(key, generation) else {
            return;
        };
        if let Some(http) = conn.http() {
            http.io_alive = false;
            http.task = None;
        }
        self.begin_close(key);
        self.maybe_remove(key);
    }

    /// The 101 went out: `key` is a WebSocket from now on. `prefix` holds
    /// bytes hyper read past the request (normally none: reads stop at the
    /// end of the request head).
    pub(crate) fn upgrade(
        &mut self,
        key: usize,
        generation: u32,
        admission: Admission,
        deflate: Option<Agreed>,
        prefix: &[u8],
    ) {
        let keep_alive = self.limits.deadlines.open(self.now_ms);
        let mut owed = Owed::default();
        if self.stopping {
            owed.going_away();
        }
        let mut decoder = Decoder::new();
        if deflate.is_some() {
            decoder.enable_compression();
            self.deflate.get_or_insert_with(Box::default);
        }
        let Some(conn) = self.http_conn(key, generation) else {
            return;
        };
        let state = WebSocketState {
            decoder,
            assembled: None,
            deflate: deflate.map(|agreed| Box::new(ConnDeflate::new(agreed))),
            copying: false,
            frame_queued: 0,
            mid_frame: false,
            owed,
            keep_alive,
            _admission: admission,
        };
        let Phase::Http(mut http) = std::mem::replace(&mut conn.phase, Phase::WebSocket(state))
        else {
            return;
        };
        if !prefix.is_empty() {
            self.feed(key, Source::Heap(prefix), prefix.len());
        }
        for unread in http.unread.drain(..) {
            if self.conns[key].closing {
                self.buffers.release(unread.id);
                continue;
            }
            let len = (unread.end - unread.start) as usize;
            self.feed(
                key,
                Source::Ring {
                    id: unread.id,
                    offset: unread.start as usize,
                },
                len,
            );
            self.buffers.release(unread.id);
        }
        if let Some(errno) = http.read_end {
            self.read_ended(key, errno);
        }
        // A recv paused for unread HTTP bytes goes on as a WebSocket's.
        self.resume_if_drained(key);
        self.send_due_control(key);
        self.maybe_remove(key);
    }
}
