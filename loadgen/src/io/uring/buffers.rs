//! The provided-buffer ring a worker's multishot recvs receive into.
//!
//! # Incremental consumption
//!
//! The ring is registered with `IOU_PBUF_RING_INC` where the kernel has it
//! (Linux 6.12+; older kernels get a plain ring): the kernel then fills a
//! buffer one completion after the other, from any socket of the worker,
//! so a 20 B echo takes 20 B of a buffer, not a whole one, and a turn's
//! echoes lie next to each other in memory. A completion after which the
//! kernel will go on filling its buffer carries `IORING_CQE_F_BUF_MORE`;
//! the one without it ends the kernel's use of the buffer.
//!
//! # Ownership
//!
//! Each byte of a buffer belongs to one side at a time:
//! - **kernel**: every byte of a published buffer (one whose ring entry is
//!   before the published tail) from [`ProvidedBuffers::take`]'s offset on;
//! - **user**: the bytes a completion names, from when the driver
//!   [`take`](ProvidedBuffers::take)s them until it is done reading them.
//!
//! The driver reads a completion's bytes before it looks at the next
//! completion, and only then, if the kernel was done with the buffer (no
//! `BUF_MORE`), [`recycle`](ProvidedBuffers::recycle)s it onto the spare
//! stack; [`publish`](ProvidedBuffers::publish) hands spare buffers back to
//! the kernel before the next `io_uring_enter`. A recycled buffer is owned
//! by user space and neither read nor written until it is published again.
//!
//! # The working set
//!
//! The kernel takes published buffers in ring order, so a ring with every
//! buffer published cycles through all of their memory and every recv
//! lands in cold cache lines. Only as many buffers are published as the
//! load needs: [`MIN_PUBLISHED`] at first, twice as many each time a recv
//! finds none (`ENOBUFS`: the driver re-arms it), up to the whole ring;
//! the spare stack hands out the most recently used buffer first.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// Buffer group id of the one ring each worker registers.
pub const GROUP_ID: u16 = 0;

/// `IOU_PBUF_RING_INC`: the kernel consumes each buffer incrementally.
const PBUF_RING_INC: u16 = 2;

/// The fewest buffers kept published (or the whole ring, if smaller).
pub const MIN_PUBLISHED: usize = 8;

/// An anonymous private mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: an anonymous private mapping with no address hint has no
        // preconditions; failure is reported as MAP_FAILED and checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned and nothing else
        // unmaps them. The driver leaks the buffers instead of dropping them
        // while the kernel may still write to them (see its Drop).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A registered ring of `count` receive buffers of `size` bytes each.
pub struct ProvidedBuffers {
    /// The ring of `BufRingEntry`, page-aligned as the kernel requires.
    entries: Mapping,
    /// The buffers themselves, `count * size` bytes, touched lazily.
    memory: Mapping,
    count: u16,
    size: u32,
    /// Our copy of the tail; the kernel reads the published one.
    tail: u16,
    /// Bytes of each buffer the kernel has handed over since it was last
    /// published: where its next completion's bytes begin.
    consumed: Vec<u32>,
    /// Buffers published and not yet finished by the kernel.
    published: usize,
    /// How many buffers to keep published.
    wanted: usize,
    /// Buffers owned by user space, the most recently used on top.
    spare: Vec<u16>,
    /// Whether the ring was registered for incremental consumption.
    incremental: bool,
}

impl ProvidedBuffers {
    /// Maps `count` buffers of `size` bytes (`count` a power of two up to
    /// 32768) and publishes the first [`MIN_PUBLISHED`].
    pub fn new(count: usize, size: usize) -> io::Result<Self> {
        let count16 = u16::try_from(count)
            .ok()
            .filter(|c| c.is_power_of_two() && *c <= 32768)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "receive buffer count"))?;
        let size32 = u32::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "receive buffer size"))?;
        let entries = Mapping::new(count * std::mem::size_of::<BufRingEntry>())?;
        let memory = Mapping::new(count * size)?;
        Ok(Self {
            entries,
            memory,
            count: count16,
            size: size32,
            tail: 0,
            consumed: vec![0; count],
            published: 0,
            wanted: MIN_PUBLISHED.min(count),
            // Reversed, so the first published are 0, 1, 2, ...
            spare: (0..count16).rev().collect(),
            incremental: false,
        })
    }

    /// Registers the ring with `submitter` under [`GROUP_ID`], with
    /// incremental consumption where the kernel has it (6.12+), else as a
    /// plain ring (`EINVAL`), and publishes the first buffers.
    pub fn register(&mut self, submitter: &Submitter<'_>) -> io::Result<()> {
        for flags in [PBUF_RING_INC, 0] {
            // SAFETY: the entry ring is a live page-aligned mapping of
            // `count` entries that outlives the registration: the driver
            // drops the ring (which unregisters it) before these buffers, or
            // leaks them. A refused registration leaves nothing registered.
            let result = unsafe {
                submitter.register_buf_ring_with_flags(
                    self.entries.ptr.as_ptr() as u64,
                    self.count,
                    GROUP_ID,
                    flags,
                )
            };
            match result {
                Ok(()) => {
                    self.incremental = flags == PBUF_RING_INC;
                    self.publish();
                    return Ok(());
                }
                Err(e) if flags != 0 && e.raw_os_error() == Some(libc::EINVAL) => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the plain registration returns")
    }

    /// Whether the kernel consumes buffers incrementally.
    pub fn incremental(&self) -> bool {
        self.incremental
    }

    /// A recv completion handed `len` bytes of buffer `id` to user space;
    /// `more` is its `BUF_MORE` flag (the kernel goes on filling the
    /// buffer). Returns where the bytes begin in the buffer.
    pub fn take(&mut self, id: u16, len: usize, more: bool) -> usize {
        let index = usize::from(id);
        assert!(id < self.count, "buffer {id} is not in the ring");
        let offset = if self.incremental {
            self.consumed[index] as usize
        } else {
            0
        };
        assert!(
            offset + len <= self.size as usize,
            "completion past buffer {id}"
        );
        self.consumed[index] = (offset + len) as u32;
        if !more {
            self.published -= 1;
        }
        offset
    }

    /// Bytes `start..start + len` of buffer `id`, which a completion handed
    /// to user space ([`take`](Self::take) returned `start`).
    pub fn bytes(&self, id: u16, start: usize, len: usize) -> &[u8] {
        assert!(id < self.count && start + len <= self.consumed[usize::from(id)] as usize);
        let at = usize::from(id) * self.size as usize + start;
        // SAFETY: `at + len` lies inside the `count * size` mapping (checked
        // by the assert: `consumed` never exceeds the buffer size). Per the
        // ownership rule in the module docs, the kernel wrote these bytes
        // before posting the completion that handed them over and writes
        // nothing before `consumed` until the buffer is published again,
        // which needs `recycle` (`&mut self`, so not while this borrow
        // lives). Bytes after `consumed`, which the kernel may still fill,
        // are not covered.
        unsafe { std::slice::from_raw_parts(self.memory.ptr.as_ptr().add(at), len) }
    }

    /// The kernel is done with buffer `id` (its last completion had no
    /// `BUF_MORE`) and so is user space: it goes on the spare stack.
    pub fn recycle(&mut self, id: u16) {
        self.consumed[usize::from(id)] = 0;
        self.spare.push(id);
    }

    /// A recv found no buffer (`ENOBUFS`): publish twice as many from now on.
    pub fn ran_short(&mut self) {
        self.wanted = (self.wanted * 2).min(usize::from(self.count));
    }

    /// Tops the published buffers up to the working set from the spare
    /// stack, most recently used first, and makes them visible to the
    /// kernel (one store). Called before each `io_uring_enter`.
    pub fn publish(&mut self) {
        let before = self.tail;
        while self.published < self.wanted {
            let Some(id) = self.spare.pop() else { break };
            self.push_entry(id);
            self.published += 1;
        }
        if self.tail != before {
            self.publish_tail();
        }
    }

    fn push_entry(&mut self, id: u16) {
        let mask = self.count - 1;
        let slot = usize::from(self.tail & mask);
        let base: *mut BufRingEntry = self.entries.ptr.as_ptr().cast();
        // SAFETY: `slot < count`, so the entry lies inside the entry
        // mapping. The kernel only reads (and, incrementally, updates) the
        // entries between its head and our published tail; at most `count`
        // buffers are ever published, so `slot`, at our unpublished tail, is
        // not among them and nobody else touches it now.
        let entry = unsafe { &mut *base.add(slot) };
        entry.set_addr(self.memory.ptr.as_ptr() as u64 + u64::from(id) * u64::from(self.size));
        entry.set_len(self.size);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish_tail(&self) {
        let base: *const BufRingEntry = self.entries.ptr.as_ptr().cast();
        // SAFETY: `BufRingEntry::tail` points at the ring's shared `tail`
        // field (inside entry 0's reserved bytes, which `push_entry` never
        // writes). It is a naturally aligned u16 that the kernel only
        // reads, so a Release store through an AtomicU16 view publishes the
        // entries written before it.
        unsafe {
            let tail = BufRingEntry::tail(base).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}
