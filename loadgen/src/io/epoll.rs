//! The epoll driver: `mio` (edge-triggered epoll) over raw non-blocking
//! sockets, one worker-wide receive buffer, and a `timerfd` for deadlines.
//!
//! The fallback where io_uring is not available, and the reference the
//! io_uring driver is tested against (the loadgen tests run on both).
//!
//! * **One `recv` and one `send` per echo**, as raw syscalls
//!   ([`crate::sys`]); one `epoll_wait` serves every socket that became
//!   ready meanwhile.
//! * **No drain read.** With edge-triggered readiness a read that returns
//!   less than the free buffer space means the socket was empty at that
//!   instant, and any later arrival raises a new edge; so there is no
//!   extra `recv` that would only return `EAGAIN`.
//! * **One clock read per `recv`**, the receive time of the bytes it
//!   brought, not one per `epoll_wait` batch: a batch takes several
//!   microseconds per socket to work through.
//! * **A `timerfd` armed with absolute deadlines** ([`crate::clock::Timer`]),
//!   re-armed only when the earliest deadline changes, so the closed loop
//!   makes no timer syscalls between interval ends and the open loop is
//!   not late by epoll's millisecond rounding.
//! * **Stale events are dropped**: a token carries the slot and the
//!   generation of its socket, so an event of a socket closed earlier in
//!   the same batch never reaches the slot's next socket.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::{Driver, Event, IoKind};
use crate::clock::{self, Timer};
use crate::interrupt::StopSignal;

/// The event token of the timer (connections use slot and generation).
const TIMER: Token = Token(usize::MAX - 1);
/// The event token of the stop signal's wake-up fd.
const STOP: Token = Token(usize::MAX - 2);
/// Bytes one `recv` may bring.
const RECEIVE_BUFFER: usize = 256 * 1024;

/// One socket and what it still has to send.
#[derive(Debug)]
struct Socket {
    stream: TcpStream,
    generation: u32,
    connecting: bool,
    /// Bytes the socket did not take yet, from `backlog_at` on.
    backlog: Vec<u8>,
    backlog_at: usize,
}

/// A readiness event, copied out of mio's list.
#[derive(Debug, Clone, Copy)]
struct Ready {
    slot: usize,
    generation: u32,
    readable: bool,
    writable: bool,
}

/// The epoll driver of one worker (see the module docs).
#[derive(Debug)]
pub struct EpollDriver {
    poll: Poll,
    events: Events,
    timer: Timer,
    sockets: Vec<Option<Socket>>,
    next_generation: u32,
    ready: Vec<Ready>,
    next_ready: usize,
    /// The socket whose last `recv` filled the buffer: read it again first.
    reading: Option<(usize, u32)>,
    stop_fired: bool,
    rx: Vec<u8>,
    rx_len: usize,
}

fn token(slot: usize, generation: u32) -> Token {
    Token(slot | (generation as usize) << 32)
}

impl EpollDriver {
    fn socket(&mut self, slot: usize, generation: u32) -> Option<&mut Socket> {
        self.sockets
            .get_mut(slot)
            .and_then(Option::as_mut)
            .filter(|s| s.generation == generation)
    }

    /// Reads once from `slot`: an event, or `None` when it had nothing.
    fn read(&mut self, slot: usize, generation: u32) -> Option<Event> {
        let sock = self.socket(slot, generation)?;
        let fd = sock.stream.as_raw_fd();
        loop {
            match crate::sys::recv(fd, &mut self.rx) {
                Ok(0) => return Some(Event::Closed(slot, None)),
                Ok(n) => {
                    self.rx_len = n;
                    if n == self.rx.len() {
                        self.reading = Some((slot, generation));
                    }
                    return Some(Event::Received(slot, clock::now_ns()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Event::Closed(slot, Some(e))),
            }
        }
    }

    /// What a readiness event of a live socket means.
    fn on_ready(&mut self, r: Ready) -> Option<Event> {
        let sock = self.socket(r.slot, r.generation)?;
        if sock.connecting {
            if let Ok(Some(e)) | Err(e) = sock.stream.take_error() {
                return Some(Event::ConnectFailed(r.slot, e));
            }
            return match sock.stream.peer_addr() {
                Ok(_) => {
                    sock.connecting = false;
                    let _ = sock.stream.set_nodelay(true);
                    Some(Event::Connected(r.slot))
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
                Err(e) => Some(Event::ConnectFailed(r.slot, e)),
            };
        }
        if r.writable && sock.backlog_at < sock.backlog.len() {
            if let Err(e) = flush(sock) {
                return Some(Event::Closed(r.slot, Some(e)));
            }
        }
        if r.readable {
            return self.read(r.slot, r.generation);
        }
        None
    }
}

/// Writes as much of the backlog as the socket takes.
fn flush(sock: &mut Socket) -> io::Result<()> {
    while sock.backlog_at < sock.backlog.len() {
        match crate::sys::send(sock.stream.as_raw_fd(), &sock.backlog[sock.backlog_at..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sock.backlog_at += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    sock.backlog.clear();
    sock.backlog_at = 0;
    Ok(())
}

impl Driver for EpollDriver {
    const KIND: IoKind = IoKind::Epoll;

    fn new(connections: usize, stop: &StopSignal) -> io::Result<Self> {
        let poll = Poll::new()?;
        let timer = Timer::new()?;
        poll.registry()
            .register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)?;
        poll.registry()
            .register(&mut SourceFd(&stop.wake_fd()), STOP, Interest::READABLE)?;
        Ok(EpollDriver {
            poll,
            events: Events::with_capacity(1024),
            timer,
            sockets: (0..connections).map(|_| None).collect(),
            next_generation: 0,
            ready: Vec::with_capacity(1024),
            next_ready: 0,
            reading: None,
            stop_fired: false,
            rx: vec![0; RECEIVE_BUFFER],
            rx_len: 0,
        })
    }

    fn connect(&mut self, slot: usize, addr: SocketAddr, source: Option<IpAddr>) -> io::Result<()> {
        self.close(slot);
        let socket = super::socket::client_socket(addr, source)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let mut stream = TcpStream::from_std(socket.into());
        let generation = self.next_generation;
        self.next_generation = (self.next_generation + 1) & 0x7FFF_FFFF;
        self.poll.registry().register(
            &mut stream,
            token(slot, generation),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        if self.sockets.len() <= slot {
            self.sockets.resize_with(slot + 1, || None);
        }
        self.sockets[slot] = Some(Socket {
            stream,
            generation,
            connecting: true,
            backlog: Vec::new(),
            backlog_at: 0,
        });
        Ok(())
    }

    fn send(&mut self, slot: usize, bytes: &mut Vec<u8>) -> io::Result<()> {
        let Some(sock) = self.sockets.get_mut(slot).and_then(Option::as_mut) else {
            bytes.clear();
            return Ok(());
        };
        if sock.backlog_at < sock.backlog.len() {
            sock.backlog.extend_from_slice(bytes);
            bytes.clear();
            return Ok(());
        }
        let fd = sock.stream.as_raw_fd();
        let mut at = 0;
        let result = loop {
            if at == bytes.len() {
                break Ok(());
            }
            match crate::sys::send(fd, &bytes[at..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    sock.backlog.clear();
                    sock.backlog.extend_from_slice(&bytes[at..]);
                    sock.backlog_at = 0;
                    break Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        bytes.clear();
        result
    }

    fn close(&mut self, slot: usize) {
        if let Some(mut sock) = self.sockets.get_mut(slot).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut sock.stream);
        }
        if self.reading.is_some_and(|(s, _)| s == slot) {
            self.reading = None;
        }
    }

    fn wait(&mut self, deadline_ns: u64) -> io::Result<()> {
        self.ready.clear();
        self.next_ready = 0;
        self.timer.arm(deadline_ns)?;
        match self
            .poll
            .poll(&mut self.events, Some(Duration::from_secs(1)))
        {
            // A signal handled on this thread (Ctrl-C) interrupts
            // `epoll_wait`, which the kernel never restarts: an empty
            // wake-up, not an error (the stop itself arrives as an event).
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            other => other?,
        }
        for ev in self.events.iter() {
            match ev.token() {
                TIMER => self.timer.clear(),
                STOP => self.stop_fired = true,
                Token(t) => self.ready.push(Ready {
                    slot: t & 0xFFFF_FFFF,
                    generation: (t >> 32) as u32,
                    readable: ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                    writable: ev.is_writable(),
                }),
            }
        }
        Ok(())
    }

    fn next_event(&mut self) -> Option<Event> {
        if std::mem::take(&mut self.stop_fired) {
            return Some(Event::Stop);
        }
        if let Some((slot, generation)) = self.reading.take() {
            if let Some(ev) = self.read(slot, generation) {
                return Some(ev);
            }
        }
        while self.next_ready < self.ready.len() {
            let r = self.ready[self.next_ready];
            self.next_ready += 1;
            if let Some(ev) = self.on_ready(r) {
                return Some(ev);
            }
        }
        None
    }

    fn received(&self) -> &[u8] {
        &self.rx[..self.rx_len]
    }
}
