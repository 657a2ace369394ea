//! Receiving and backpressure: the multishot recv into the buffer ring, what
//! each completion hands to the HTTP phase or the decoder, EOF and errors,
//! receivers starved by an empty ring, and pausing a connection that holds
//! too much unsent output (or, in the HTTP phase, too much unread input).

use std::os::fd::AsRawFd;

use io_uring::{cqueue, opcode, squeue, types};

use super::echo::Source;
use super::limits::Limits;
use super::ops::{user_data, Op};
use super::Loop;
use crate::uring::buf_ring::GROUP_ID;
use crate::uring::conn::{Conn, Phase, RecvState, Unread};

/// Received bytes hyper has not read, above which an HTTP-phase
/// connection stops receiving until hyper catches up (half of it). hyper
/// never needs more at once (it refuses longer request heads), and
/// without the cap a client that keeps sending while hyper does not read
/// (a request whose response it never reads, say) held the whole receive
/// ring, and the worker's other connections starved (tests/faults.rs).
const HTTP_UNREAD_CAP: usize = crate::http::MAX_REQUEST_HEAD;

impl Loop {
    pub(super) fn arm_recv(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.closing || conn.recv != RecvState::Idle || self.exiting {
            return;
        }
        conn.recv = RecvState::Armed;
        conn.ops += 1;
        let fd = types::Fd(conn.fd.as_raw_fd());
        let entry = match conn.phase {
            // The HTTP phase takes one buffer per recv, re-armed after each
            // one (`complete_recv`) until hyper has [`HTTP_UNREAD_CAP`]
            // unread: a multishot recv would fill buffers as fast as the
            // client sends, all before a pause could land, and a client
            // that sends while hyper does not read would drain the ring.
            Phase::Http(_) => opcode::Recv::new(fd, std::ptr::null_mut(), 0)
                .buf_group(GROUP_ID)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT),
            // A WebSocket: plain multishot recv, each completion in one
            // buffer (after the previous one's bytes: the ring is incremental).
            // Bundles (several buffers per completion) cost more CPU per
            // echo at the fixed rate and were no better at 200 x 16 KiB
            // (`results/history.md`, "Changes measured on the way").
            // A lingering close reads the same way, and discards.
            Phase::WebSocket(_) | Phase::Lingering(_) => {
                opcode::RecvMulti::new(fd, GROUP_ID).build()
            }
        };
        self.push(entry.user_data(user_data(key, Op::Recv)));
    }

    pub(super) fn complete_recv(&mut self, key: usize, result: i32, flags: u32) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let more = cqueue::more(flags);
        if !more {
            conn.ops -= 1;
            conn.recv = match conn.recv {
                RecvState::Cancelling if !conn.closing => RecvState::Paused,
                RecvState::Armed | RecvState::Cancelling => RecvState::Idle,
                other => other,
            };
        }
        match result {
            n if n > 0 => {
                let Some(id) = cqueue::buffer_select(flags) else {
                    tracing::error!("recv completion without a buffer id");
                    return;
                };
                let len = n as usize;
                let offset = self.buffers.take(id, len, cqueue::buffer_more(flags));
                self.received(key, id, offset, len);
            }
            0 => self.read_ended(key, 0),
            n if -n == libc::ENOBUFS => {
                // Whatever this connection holds of a frame still arriving
                // goes out of the ring, so it cannot wait on itself.
                self.copy_out_uncommitted(key);
                let conn = &mut self.conns[key];
                if conn.recv == RecvState::Idle {
                    conn.recv = RecvState::Starved;
                    self.starved.push_back(key);
                }
                let whole_ring = self.buffers.ran_short();
                if whole_ring && !self.ran_dry {
                    self.ran_dry = true;
                    tracing::info!(
                        "receive buffer ring ran dry ({} x {} B): receivers wait for \
                         buffers to return (logged once; see --receive-buffers)",
                        self.buffers.count(),
                        self.buffers.buffer_size(),
                    );
                }
            }
            n if -n == libc::ECANCELED => {}
            n => self.read_ended(key, -n),
        }
        // EOF or an error: reading is over, nothing to re-arm.
        let reading_ended =
            result == 0 || (result < 0 && -result != libc::ENOBUFS && -result != libc::ECANCELED);
        if let Some(conn) = self.conns.get_mut(key) {
            let resume = match conn.recv {
                // A one-shot HTTP recv completed, or a multishot one ended
                // without EOF, error or our cancel (CQ overflow, say); a
                // paused HTTP connection stays paused.
                RecvState::Idle => !more && !reading_ended,
                // Our pause's cancel finished after what paused it drained.
                RecvState::Paused => may_resume(conn, &self.limits),
                _ => false,
            };
            if resume {
                conn.recv = RecvState::Idle;
                conn.over_cap_since_ms = None;
                self.arm_recv(key);
            }
        }
        self.maybe_remove(key);
    }

    /// Bytes `offset..offset + len` of buffer `id` (held once) arrived on
    /// `key`.
    pub(super) fn received(&mut self, key: usize, id: u16, offset: usize, len: usize) {
        let conn = &mut self.conns[key];
        if conn.closing {
            self.buffers.release(id);
            return;
        }
        match &mut conn.phase {
            Phase::Http(http) => {
                http.unread.push_back(Unread {
                    id,
                    start: offset as u32,
                    end: (offset + len) as u32,
                });
                if let Some(reader) = http.reader.take() {
                    reader.wake();
                }
                if http.unread_bytes() > HTTP_UNREAD_CAP {
                    self.pause_recv(key);
                }
            }
            Phase::WebSocket(_) => {
                self.feed(key, Source::Ring { id, offset }, len);
                self.buffers.release(id);
            }
            Phase::Lingering(_) => {
                self.buffers.release(id);
                self.discarded(key, len);
            }
        }
    }

    /// The peer's EOF (`errno` 0) or a recv error.
    pub(super) fn read_ended(&mut self, key: usize, errno: i32) {
        let conn = &mut self.conns[key];
        match &mut conn.phase {
            Phase::Http(http) => {
                http.read_end = Some(errno);
                if let Some(reader) = http.reader.take() {
                    reader.wake();
                }
            }
            // The peer half-closed: echoes of whole frames still go out (as
            // on the epoll reference); of a frame cut short, what was
            // committed already goes too (a binary echo streams as it
            // arrives), the rest does not. No close frame: the peer cannot
            // answer it (tests/faults.rs, half-close).
            Phase::WebSocket(_) if errno == 0 => {
                if let Some(queued) = conn.queued.as_mut() {
                    queued.truncate(conn.committed as usize, &mut self.buffers);
                }
                self.begin_close(key);
            }
            Phase::WebSocket(_) => self.close_now(key),
            // The client is done: the lingering close ends (once our close
            // frame is out, if it is not yet).
            Phase::Lingering(_) if errno == 0 => self.begin_close(key),
            Phase::Lingering(_) => self.close_now(key),
        }
    }

    pub(super) fn rearm_starved(&mut self) {
        while let Some(&key) = self.starved.front() {
            // Re-arm only with a buffer free, or the recv fails again.
            if self.buffers.free() == 0 {
                return;
            }
            self.starved.pop_front();
            if let Some(conn) = self.conns.get_mut(key) {
                if conn.recv == RecvState::Starved {
                    conn.recv = RecvState::Idle;
                    self.arm_recv(key);
                }
            }
        }
    }

    /// Pauses a connection's recv while it holds more unsent bytes than
    /// `--max-backpressure`.
    pub(super) fn check_backpressure(&mut self, key: usize) {
        let now = self.now_ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        // The frame under way does not count: a peer may send a whole large
        // frame before it reads any of its echo (the epoll reference reads
        // whole frames too), so one connection holds at most the cap plus
        // one frame (`--max-message-size`).
        let frame = conn.websocket().map_or(0, |ws| ws.frame_queued as usize);
        if conn.unsent().saturating_sub(frame) <= self.limits.max_backpressure || conn.closing {
            return;
        }
        conn.over_cap_since_ms.get_or_insert(now);
        self.pause_recv(key);
    }

    /// Stops `key`'s recv until [`may_resume`] says it may go on.
    pub(super) fn pause_recv(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        match conn.recv {
            RecvState::Armed => {
                conn.recv = RecvState::Cancelling;
                self.cancel(user_data(key, Op::Recv));
            }
            RecvState::Idle | RecvState::Starved => conn.recv = RecvState::Paused,
            RecvState::Cancelling | RecvState::Paused => {}
        }
    }

    /// Re-arms `key`'s paused recv if what paused it has drained.
    pub(super) fn resume_if_drained(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.recv == RecvState::Paused && !conn.closing && may_resume(conn, &self.limits) {
            conn.recv = RecvState::Idle;
            conn.over_cap_since_ms = None;
            self.arm_recv(key);
        }
    }
}

/// Whether a paused recv may go on: the connection's unsent bytes are down
/// to half of `--max-backpressure`, and in the HTTP phase what hyper has
/// not read is down to half of [`HTTP_UNREAD_CAP`].
pub(super) fn may_resume(conn: &Conn, limits: &Limits) -> bool {
    let unread = match &conn.phase {
        Phase::Http(http) => http.unread_bytes(),
        Phase::WebSocket(_) | Phase::Lingering(_) => 0,
    };
    conn.unsent() <= limits.max_backpressure / 2 && unread <= HTTP_UNREAD_CAP / 2
}
