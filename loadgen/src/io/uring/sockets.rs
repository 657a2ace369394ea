//! The driver's sockets: each entry holds what the kernel may use while
//! the socket's operations are in flight (its fd, its address, the bytes
//! of its send), and outlives the worker's slot until they are done.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use socket2::SockAddr;

use super::ops::GENERATION_MASK;

/// One socket of the driver.
#[derive(Debug)]
pub struct SocketIo {
    /// The socket; closed when the entry is removed.
    pub fd: OwnedFd,
    /// Tells this socket's completions from those of the entry's earlier occupants.
    pub generation: u32,
    /// The worker's slot; `None` once the worker closed it.
    pub slot: Option<usize>,
    /// Operations in flight (connect, recv, send, cancel).
    pub ops: u32,
    /// The connect has not completed yet.
    pub connecting: bool,
    /// The multishot recv is armed.
    pub recv_armed: bool,
    /// The bytes being sent, frozen while `send_in_flight`.
    pub sending: Vec<u8>,
    /// How many of `sending` the kernel has taken.
    pub sent: usize,
    /// A send of `sending` is in flight.
    pub send_in_flight: bool,
    /// Bytes to send after `sending`.
    pub queued: Vec<u8>,
    /// The peer's address, read by the connect in flight.
    pub addr: Box<SockAddr>,
    /// The cancel of the socket's operations was submitted.
    pub cancel_sent: bool,
    /// The end of the stream (or an error) was reported to the worker.
    pub ended: bool,
}

impl SocketIo {
    /// A fresh entry for `fd`, about to connect to `addr` for `slot`.
    pub fn new(fd: OwnedFd, slot: usize, addr: SocketAddr) -> SocketIo {
        SocketIo {
            fd,
            generation: 0,
            slot: Some(slot),
            ops: 0,
            connecting: true,
            recv_armed: false,
            sending: Vec::new(),
            sent: 0,
            send_in_flight: false,
            queued: Vec::new(),
            addr: Box::new(SockAddr::from(addr)),
            cancel_sent: false,
            ended: false,
        }
    }

    /// Turns Nagle's algorithm off: every echo goes out at once.
    pub fn set_nodelay(&self) {
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid
        // c_int that lives across the call; the fd is a socket we own.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
}

/// The sockets of one driver: a slab of entries, and the entry of each
/// worker slot.
#[derive(Debug, Default)]
pub struct Sockets {
    entries: Vec<Option<SocketIo>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    by_slot: Vec<Option<u32>>,
}

impl Sockets {
    /// Room for about `n` sockets.
    pub fn with_capacity(n: usize) -> Sockets {
        Sockets {
            entries: Vec::with_capacity(n),
            generations: Vec::with_capacity(n),
            free: Vec::new(),
            by_slot: vec![None; n],
        }
    }

    /// Adds `sock` as its slot's socket; returns its index.
    pub fn insert(&mut self, mut sock: SocketIo) -> u32 {
        let slot = sock.slot.expect("a new socket has a slot");
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.entries.push(None);
                self.generations.push(0);
                (self.entries.len() - 1) as u32
            }
        };
        let g = &mut self.generations[index as usize];
        *g = (*g + 1) & GENERATION_MASK;
        sock.generation = *g;
        self.entries[index as usize] = Some(sock);
        if self.by_slot.len() <= slot {
            self.by_slot.resize(slot + 1, None);
        }
        self.by_slot[slot] = Some(index);
        index
    }

    /// The entry at `index`.
    pub fn get_mut(&mut self, index: u32) -> Option<&mut SocketIo> {
        self.entries
            .get_mut(index as usize)
            .and_then(Option::as_mut)
    }

    /// The socket of `slot`.
    pub fn index_of(&self, slot: usize) -> Option<u32> {
        self.by_slot.get(slot).copied().flatten()
    }

    /// The worker's slot of entry `index` if it is of `generation` and
    /// still the slot's socket.
    pub fn live(&self, index: u32, generation: u32) -> Option<usize> {
        let sock = self.entries.get(index as usize)?.as_ref()?;
        if sock.generation != generation {
            return None;
        }
        sock.slot
    }

    /// The worker is done with `slot`: its socket stays until its
    /// operations are done. Returns the socket's index.
    pub fn detach(&mut self, slot: usize) -> Option<u32> {
        let index = self.by_slot.get_mut(slot)?.take()?;
        if let Some(sock) = self.get_mut(index) {
            sock.slot = None;
        }
        Some(index)
    }

    /// Detaches every slot (the driver is going away).
    pub fn detach_all(&mut self) {
        for slot in 0..self.by_slot.len() {
            self.detach(slot);
        }
    }

    /// Removes entry `index`, closing its socket.
    pub fn remove(&mut self, index: u32) {
        if let Some(sock) = self.entries.get_mut(index as usize).and_then(Option::take) {
            debug_assert_eq!(sock.ops, 0, "socket removed with operations in flight");
            self.free.push(index);
        }
    }

    /// Operations in flight over all sockets.
    pub fn ops_in_flight(&self) -> u32 {
        self.entries.iter().flatten().map(|s| s.ops).sum()
    }
}
