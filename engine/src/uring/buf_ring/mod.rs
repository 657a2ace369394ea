//! The provided-buffer ring: the worker's shared pool of receive buffers.
//!
//! Multishot recv takes free buffers from this ring for what it receives,
//! so a connection holds receive memory only while it has unread data: an
//! idle connection holds none. `--receive-buffer-size` and
//! `--receive-buffers` set the size and count of the entries.
//!
//! # Incremental consumption
//!
//! The ring is registered with `IOU_PBUF_RING_INC` (Linux 6.12+; older
//! kernels get a plain ring, see [`ProvidedBuffers::register`]). The kernel
//! then fills a buffer a completion at a time: a 300-byte upgrade request
//! or a 20-byte game message takes 300 or 20 bytes of a buffer, not a whole
//! 4 KiB one, and the next completion, from any connection of the worker,
//! lands right after it. A completion whose buffer the kernel will go on
//! filling carries `IORING_CQE_F_BUF_MORE`; the one without it ends the
//! kernel's use of that buffer. Without incremental consumption every
//! completion took a whole buffer, so a burst of handshakes touched one
//! buffer per connection and left hundreds of them resident, published to
//! the kernel, while the WebSockets then sat idle (`results/engine-io.md`,
//! "Server RSS per idle WebSocket").
//!
//! # Ownership
//!
//! Each byte of a buffer is owned by exactly one side at a time:
//! - **kernel**: every byte of a published buffer (its entry is before the
//!   ring tail) from [`ProvidedBuffers::consumed`] on, until a CQE hands it
//!   over;
//! - **user**: the bytes a CQE names (from where the previous completion of
//!   that buffer ended, for as many bytes as the CQE says), until the last
//!   hold on the buffer is released ([`ProvidedBuffers::release`]).
//!
//! A buffer goes back to the kernel only when both are done with it: the
//! kernel has posted its last completion for it (no `BUF_MORE`), and every
//! hold is released. The loop holds a buffer once while it decodes a
//! completion's bytes and once per send piece that points into it. It reads
//! and writes only bytes a completion handed over, only between taking and
//! releasing those holds, and releases each hold exactly once, which is
//! what makes [`ProvidedBuffers::chunk`] and [`ProvidedBuffers::chunk_mut`]
//! sound. A recycled buffer waits in user space on the spare stack (owned
//! by user space, never read or written there) until it is published again.
//!
//! # The working set
//!
//! Only as many buffers are published as the load needs, topped up once
//! per turn from a LIFO stack of returned buffers, the most recently used
//! first; a burst that takes more than that ends the recv with `ENOBUFS`
//! like an empty ring would (the loop copies out and re-arms), and spare
//! buffers that stay cold give their memory back (`MADV_DONTNEED`), so the
//! worker's RSS follows its working set. [`working_set`] decides how many
//! and which; this module owns the buffers and does it.
//!
//! - [`mapping`]: the anonymous memory of the ring and its buffers;
//! - [`working_set`]: the policy (how many to publish, which are cold).

mod mapping;
mod working_set;

use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

use self::mapping::{page_size, Mapping};
use self::working_set::WorkingSet;

/// Buffer group id of the one ring each worker registers.
pub const GROUP_ID: u16 = 0;

/// `IOU_PBUF_RING_INC`: the kernel consumes each buffer incrementally.
const PBUF_RING_INC: u16 = 2;

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
    /// Holds on each buffer while user space owns part of it (see
    /// [`ProvidedBuffers::take`] and [`ProvidedBuffers::hold`]).
    holds: Vec<u16>,
    /// Bytes of each buffer the kernel has handed over since it was last
    /// published: where its next completion's bytes begin.
    consumed: Vec<u32>,
    /// Whether the kernel has posted its last completion for each buffer
    /// (one without `BUF_MORE`) since it was last published.
    kernel_done: Vec<bool>,
    /// Buffers the kernel is done with and user space has not recycled yet.
    in_user: usize,
    /// Returned buffers not published yet, the most recently used on top.
    spare: Vec<u16>,
    /// How many to publish, and which spare buffers are cold.
    working_set: WorkingSet,
}

impl ProvidedBuffers {
    /// Maps `count` buffers of `size` bytes and publishes the first
    /// [`min_published`](working_set::min_published) of them.
    ///
    /// `count` must be a power of two no larger than 32768 (checked by
    /// [`crate::config`]); `size` fits in a `u32`.
    pub fn new(count: usize, size: usize) -> io::Result<Self> {
        let count16 = u16::try_from(count)
            .ok()
            .filter(|c| c.is_power_of_two())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "receive buffer count"))?;
        let size32 = u32::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "receive buffer size"))?;
        let entries = Mapping::new(count * std::mem::size_of::<BufRingEntry>())?;
        let memory = Mapping::new(count * size)?;
        let mut ring = Self {
            entries,
            memory,
            count: count16,
            size: size32,
            tail: 0,
            holds: vec![0; count],
            consumed: vec![0; count],
            kernel_done: vec![false; count],
            in_user: 0,
            // Reversed, so the first published are 0, 1, 2, ...
            spare: (0..count16).rev().collect(),
            working_set: WorkingSet::new(count, size),
        };
        ring.publish();
        Ok(ring)
    }

    /// Registers the ring with `submitter` under [`GROUP_ID`], with
    /// incremental consumption where the kernel has it (6.12+), else as a
    /// plain ring (`EINVAL`). Returns whether it is incremental.
    pub fn register(&self, submitter: &Submitter<'_>) -> io::Result<bool> {
        for flags in [PBUF_RING_INC, 0] {
            // SAFETY: the entry ring is a live page-aligned mapping of
            // `count` entries that outlives the registration: the loop drops
            // (or, with operations outstanding, leaks) it only after the
            // io_uring instance itself is gone. A refused registration
            // leaves nothing registered.
            let result = unsafe {
                submitter.register_buf_ring_with_flags(
                    self.entries.ptr() as u64,
                    self.count,
                    GROUP_ID,
                    flags,
                )
            };
            match result {
                Ok(()) => return Ok(flags == PBUF_RING_INC),
                Err(e) if flags != 0 && e.raw_os_error() == Some(libc::EINVAL) => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the plain registration returns")
    }

    /// Number of buffers in the ring.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Bytes per buffer.
    pub fn buffer_size(&self) -> usize {
        self.size as usize
    }

    /// Bytes `start..end` of buffer `id`, which recv completions handed to
    /// user space.
    ///
    /// Only call this for bytes completions handed over (up to where the
    /// buffer's last completion ended) while the caller holds the buffer.
    pub fn chunk(&self, id: u16, start: usize, end: usize) -> &[u8] {
        assert!(id < self.count && start <= end && end <= self.consumed[usize::from(id)] as usize);
        let base = usize::from(id) * self.size as usize;
        // SAFETY: `base + end` lies inside the `count * size` mapping (checked
        // by the assert: `consumed` never exceeds the buffer size). Per the
        // ownership rule in the module docs, the kernel wrote these bytes
        // before posting the CQEs that handed them over and will not write
        // them again before the buffer is republished, which needs its last
        // `release(id)`, which needs `&mut self` and so cannot happen while
        // the returned borrow lives. Bytes after `consumed` (which the kernel
        // may still fill) are not covered.
        unsafe { std::slice::from_raw_parts(self.memory.ptr().add(base + start), end - start) }
    }

    /// Bytes `offset..offset + len` of buffer `id`, writable: the owned
    /// echo path unmasks payloads and writes echo headers in place.
    ///
    /// Only call this for bytes one recv CQE handed to user space ([`take`]
    /// returned `offset`, and `len` is at most the CQE's count), before any
    /// send that points into them is submitted (the loop decodes a
    /// completion's bytes right after it, and queues its sends afterwards).
    ///
    /// [`take`]: ProvidedBuffers::take
    pub fn chunk_mut(&mut self, id: u16, offset: usize, len: usize) -> &mut [u8] {
        assert!(id < self.count && offset + len <= self.consumed[usize::from(id)] as usize);
        let start = usize::from(id) * self.size as usize + offset;
        // SAFETY: in bounds as asserted, and only bytes the kernel has handed
        // over (`consumed`): it wrote them before posting the CQE that named
        // them and never writes them again before the buffer is republished,
        // which needs every hold released (`release`); holds are released
        // only after the sends that read these bytes complete. The kernel may
        // still fill the buffer's later bytes, which this slice does not
        // cover. `&mut self` makes this the only live borrow of the ring's
        // memory.
        unsafe { std::slice::from_raw_parts_mut(self.memory.ptr().add(start), len) }
    }

    /// The address of byte `offset` of buffer `id`, for a send's iovec.
    pub fn address(&self, id: u16, offset: usize) -> *const u8 {
        assert!(id < self.count && offset <= self.size as usize);
        let start = usize::from(id) * self.size as usize + offset;
        // SAFETY: `start` lies within (or one past the end of a buffer
        // inside) the `count * size` mapping, as asserted.
        unsafe { self.memory.ptr().add(start) }
    }

    /// A recv completion handed `len` bytes of buffer `id` to user space;
    /// `more` is its `BUF_MORE` flag (the kernel goes on filling the
    /// buffer). Takes one hold on the buffer for the caller, and returns
    /// where the bytes begin in it.
    pub fn take(&mut self, id: u16, len: usize, more: bool) -> usize {
        let index = usize::from(id);
        assert!(
            id < self.count && !self.kernel_done[index],
            "buffer {id} is not the kernel's"
        );
        let offset = self.consumed[index] as usize;
        assert!(
            offset + len <= self.size as usize,
            "completion past buffer {id}"
        );
        self.consumed[index] = (offset + len) as u32;
        self.holds[index] += 1;
        if !more {
            self.kernel_done[index] = true;
            self.in_user += 1;
            self.working_set.took();
        }
        offset
    }

    /// Adds a hold on buffer `id`, part of which a completion handed to
    /// user space and which is held already ([`ProvidedBuffers::take`]):
    /// the loop holds it once per queued send piece that points into it.
    pub fn hold(&mut self, id: u16) {
        let holds = &mut self.holds[usize::from(id)];
        debug_assert!(*holds > 0, "buffer {id} held without a completion");
        *holds += 1;
    }

    /// Buffers the kernel can fill now or after the next publish.
    pub fn free(&self) -> usize {
        self.count() - self.in_user
    }

    /// Buffers published and not taken by the kernel yet.
    pub fn published(&self) -> usize {
        self.count() - self.in_user - self.spare.len()
    }

    /// A recv found no buffer (`ENOBUFS`). Returns whether the kernel had
    /// every free buffer (nothing was left on the spare stack at the last
    /// publish), i.e. the ring is too small for the load; otherwise only the
    /// working set ran out. Either way the receiver counts as demand for
    /// the next publish, and the peak is held for a cold window.
    pub fn ran_short(&mut self) -> bool {
        self.working_set.ran_short()
    }

    /// Lets the per-turn peak fade (a quarter per call; the loop calls it
    /// once per sweep period; not for a cold window after a shortage), so a
    /// past burst stops pinning the working set, and gives cold memory back.
    pub fn decay(&mut self) {
        if let Some(cold) = self.working_set.sweep(self.spare.len()) {
            self.give_back(cold);
        }
    }

    /// Gives the memory of the spare buffers at positions `cold` of the
    /// spare stack (no publish reached them in the cold window) back to the
    /// kernel. Returns how many buffers that was.
    ///
    /// `madvise` works on whole pages, so only the pages that lie entirely
    /// inside a buffer are given back: a buffer smaller than a page shares
    /// its page with neighbours that may be published or held, and giving
    /// that page back would zero their bytes under a recv or a send. (It
    /// did: with 256-byte buffers, giving back a cold buffer at a page
    /// boundary zeroed the next fifteen, and echoes went out as zeros.) So
    /// a ring of buffers smaller than a page keeps its memory; it is at
    /// most `count` pages.
    fn give_back(&mut self, cold: Range<usize>) -> usize {
        let page = page_size();
        let size = self.size as usize;
        let mut given = 0;
        for &id in &self.spare[cold] {
            let start = usize::from(id) * size;
            // The pages wholly inside the buffer (the mapping is page aligned).
            let first = start.next_multiple_of(page);
            let end = (start + size) / page * page;
            if first >= end {
                continue;
            }
            // SAFETY: `first..end` lies inside buffer `id`, inside the
            // `count * size` mapping, and is page aligned, so madvise drops
            // no byte outside that buffer. A buffer on the spare stack is
            // owned by user space (not published, so the kernel does not
            // write it) and has no holds (no send reads it, no slice of it is
            // alive: `chunk` borrows need a hold). MADV_DONTNEED only drops
            // its pages; the next write faults in zeroed ones, and its bytes
            // are never read before a recv writes them.
            let result = unsafe {
                libc::madvise(
                    self.memory.ptr().add(first).cast(),
                    end - first,
                    libc::MADV_DONTNEED,
                )
            };
            if result == 0 {
                given += 1;
            }
        }
        given
    }

    /// Releases a hold on `id`. Once the kernel is done with the buffer
    /// too, the last hold recycles it onto the spare stack (published
    /// again by [`ProvidedBuffers::publish`] when the working set needs it).
    /// Returns whether it was recycled.
    pub fn release(&mut self, id: u16) -> bool {
        let index = usize::from(id);
        let holds = &mut self.holds[index];
        debug_assert!(*holds > 0, "buffer {id} released more often than held");
        *holds -= 1;
        if *holds == 0 && self.kernel_done[index] {
            self.in_user -= 1;
            self.consumed[index] = 0;
            self.kernel_done[index] = false;
            self.spare.push(id);
            true
        } else {
            false
        }
    }

    /// Tops the published buffers up to the working set from the spare
    /// stack, most recently used first, and makes them visible to the
    /// kernel (one store). The loop calls it once per turn, before it enters.
    pub fn publish(&mut self) {
        let wanted = self.working_set.start_publish();
        let mut published = self.published();
        let before = self.tail;
        while published < wanted {
            let Some(id) = self.spare.pop() else { break };
            self.push_entry(id);
            published += 1;
        }
        self.working_set.end_publish(self.spare.len());
        if self.tail != before {
            self.publish_tail();
        }
    }

    fn push_entry(&mut self, id: u16) {
        let mask = self.count - 1;
        let slot = usize::from(self.tail & mask);
        let base: *mut BufRingEntry = self.entries.ptr().cast();
        // SAFETY: `slot < count`, so the entry lies inside the entry mapping.
        // The kernel only reads entries between its head and our published
        // tail; `slot` is at our unpublished tail, so nobody reads it now.
        let entry = unsafe { &mut *base.add(slot) };
        entry.set_addr(self.memory.ptr() as u64 + u64::from(id) * u64::from(self.size));
        entry.set_len(self.size);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish_tail(&self) {
        let base: *const BufRingEntry = self.entries.ptr().cast();
        // SAFETY: `BufRingEntry::tail` points at the ring's shared `tail` field
        // (inside entry 0's reserved bytes, which `push_entry` never writes).
        // It is a naturally aligned u16 that the kernel only reads, so a
        // Release store through an AtomicU16 view publishes the entries
        // written before it.
        unsafe {
            let tail = BufRingEntry::tail(base).cast_mut();
            AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::working_set::{COLD_SWEEPS, MIN_PUBLISHED};
    use super::*;

    /// Plays the kernel: takes the next published buffer, if any, and hands
    /// it to user space the way a recv completion does.
    struct FakeKernel {
        head: u16,
    }

    impl FakeKernel {
        fn take(&mut self, ring: &mut ProvidedBuffers) -> Option<u16> {
            if self.head == ring.tail {
                return None;
            }
            let slot = usize::from(self.head & (ring.count - 1));
            let base: *const BufRingEntry = ring.entries.ptr().cast();
            // SAFETY: `slot < count`, inside the entry mapping; the entry
            // between the head and the published tail was written by
            // `push_entry` and is not being written now (`&mut ring`).
            let id = unsafe { (*base.add(slot)).bid() };
            self.head = self.head.wrapping_add(1);
            ring.take(id, ring.buffer_size(), false);
            Some(id)
        }

        /// Like an incremental ring: hands over the next `len` bytes of the
        /// buffer at the head (the rest of it if that is less), and moves
        /// on to the next buffer only once this one is full. Returns the
        /// buffer, where the bytes begin and how many they are.
        fn take_part(
            &mut self,
            ring: &mut ProvidedBuffers,
            len: usize,
        ) -> Option<(u16, usize, usize)> {
            if self.head == ring.tail {
                return None;
            }
            let slot = usize::from(self.head & (ring.count - 1));
            let base: *const BufRingEntry = ring.entries.ptr().cast();
            // SAFETY: as in `take`.
            let id = unsafe { (*base.add(slot)).bid() };
            let left = ring.buffer_size() - ring.consumed[usize::from(id)] as usize;
            let len = len.min(left);
            let more = len < left;
            if !more {
                self.head = self.head.wrapping_add(1);
            }
            let offset = ring.take(id, len, more);
            Some((id, offset, len))
        }
    }

    #[test]
    fn an_incremental_buffer_returns_once_the_kernel_and_every_hold_are_done() {
        let mut ring = ProvidedBuffers::new(64, 256).unwrap();
        let mut kernel = FakeKernel { head: 0 };
        let published = ring.published();
        // Three small completions share the first buffer, one after another.
        let parts: Vec<(u16, usize, usize)> = [100, 50, 60]
            .iter()
            .map(|&len| kernel.take_part(&mut ring, len).unwrap())
            .collect();
        assert_eq!(parts, [(0, 0, 100), (0, 100, 50), (0, 150, 60)]);
        for &(id, offset, len) in &parts {
            ring.chunk_mut(id, offset, len).fill(len as u8);
        }
        assert_eq!(ring.chunk(0, 100, 150), &[50u8; 50][..]);
        // Still the kernel's: nothing left user space, nothing to republish.
        assert_eq!(ring.free(), 64);
        assert_eq!(ring.published(), published);
        // A send piece holds the second part; the decode holds all go.
        ring.hold(0);
        for _ in &parts {
            assert!(!ring.release(0), "the kernel still fills buffer 0");
        }
        // The kernel fills the rest (46 bytes) and is done with it.
        assert_eq!(kernel.take_part(&mut ring, 100), Some((0, 210, 46)));
        assert_eq!(ring.free(), 63);
        assert!(!ring.release(0), "the send piece still holds it");
        assert!(ring.release(0), "the kernel and every hold are done");
        assert_eq!(ring.consumed[0], 0);
        assert_eq!(ring.free(), 64);
        // The next completion starts at the next buffer.
        assert_eq!(kernel.take_part(&mut ring, 10), Some((1, 0, 10)));
        ring.release(1);
    }

    #[test]
    fn a_steady_small_load_reuses_a_small_hot_working_set() {
        let mut ring = ProvidedBuffers::new(1024, 4096).unwrap();
        let mut kernel = FakeKernel { head: 0 };
        assert_eq!(ring.published(), MIN_PUBLISHED);
        let mut touched = std::collections::BTreeSet::new();
        // 10,000 turns, 3 messages each, echoed and released in the turn.
        for _ in 0..10_000 {
            let ids: Vec<u16> = (0..3).map(|_| kernel.take(&mut ring).unwrap()).collect();
            touched.extend(ids.iter().copied());
            for id in ids {
                assert!(ring.release(id));
            }
            ring.publish();
        }
        assert!(
            touched.len() <= MIN_PUBLISHED + 3,
            "{} buffers touched",
            touched.len()
        );
        assert_eq!(ring.published(), MIN_PUBLISHED);
        assert_eq!(ring.free(), 1024);
    }

    #[test]
    fn a_burst_widens_the_working_set_by_its_demand() {
        let mut ring = ProvidedBuffers::new(1024, 4096).unwrap();
        let mut kernel = FakeKernel { head: 0 };
        // The kernel takes the whole working set in one turn, and two more
        // receivers find nothing.
        let ids: Vec<u16> = (0..MIN_PUBLISHED)
            .map(|_| kernel.take(&mut ring).unwrap())
            .collect();
        assert_eq!(kernel.take(&mut ring), None, "only the working set is out");
        // Only part of the ring was published: not a real shortage.
        assert!(!ring.ran_short());
        assert!(!ring.ran_short());
        for id in ids {
            ring.release(id);
        }
        // Demand was 34: twice that is published.
        ring.publish();
        assert_eq!(ring.published(), 68);
        // A ring the demand outgrows is published whole, and then a
        // shortage is a real one.
        let mut small = ProvidedBuffers::new(64, 256).unwrap();
        let mut kernel = FakeKernel { head: 0 };
        let held: Vec<u16> = (0..32).map(|_| kernel.take(&mut small).unwrap()).collect();
        assert!(!small.ran_short());
        small.publish();
        assert_eq!(small.published(), 32, "everything free is out");
        let more: Vec<u16> = (0..32).map(|_| kernel.take(&mut small).unwrap()).collect();
        assert!(small.ran_short(), "the whole ring was out");
        for id in held.into_iter().chain(more) {
            small.release(id);
        }
        assert_eq!(small.free(), 64);
    }

    /// How many of the ring's buffer pages are resident (mincore).
    fn resident_pages(ring: &ProvidedBuffers) -> usize {
        let page = 4096;
        let len = ring.count() * ring.buffer_size();
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: the range is the ring's live mapping and `vec` has one
        // byte per page of it, as mincore(2) requires.
        let result = unsafe { libc::mincore(ring.memory.ptr().cast(), len, vec.as_mut_ptr()) };
        assert_eq!(result, 0);
        vec.iter().filter(|&&v| v & 1 == 1).count()
    }

    #[test]
    fn memory_a_burst_touched_is_given_back_once_it_is_cold() {
        let mut ring = ProvidedBuffers::new(1024, 4096).unwrap();
        let mut kernel = FakeKernel { head: 0 };
        // A burst: for 5 turns the kernel takes (and writes) every published
        // buffer and 30 more receivers find none, so the set grows to all.
        for _ in 0..5 {
            let ids: Vec<u16> = std::iter::from_fn(|| kernel.take(&mut ring)).collect();
            for &id in &ids {
                ring.chunk_mut(id, 0, 1)[0] = 1;
            }
            for _ in 0..30 {
                ring.ran_short();
            }
            for id in ids {
                ring.release(id);
            }
            ring.publish();
        }
        let after_burst = resident_pages(&ring);
        assert!(
            after_burst >= 300,
            "{after_burst} pages resident after the burst"
        );
        // Then a steady trickle, one receive per turn and 100 per sweep. The
        // shortage holds the peak for the first cold window; over the second
        // the trickle drains what the burst left published (FIFO); the
        // drained buffers go cold in the third and are given back at its end.
        for _ in 0..(4 * COLD_SWEEPS) {
            for _ in 0..100 {
                let id = kernel.take(&mut ring).unwrap();
                ring.chunk_mut(id, 0, 1)[0] = 1;
                ring.release(id);
                ring.publish();
            }
            ring.decay();
        }
        let settled = resident_pages(&ring);
        assert!(
            settled <= ring.published() + 2 * MIN_PUBLISHED,
            "{settled} pages still resident ({after_burst} after the burst, {} published)",
            ring.published()
        );
        assert_eq!(ring.free(), 1024);
    }

    #[test]
    fn giving_back_small_cold_buffers_never_touches_their_neighbours() {
        // 256-byte buffers: sixteen to a page.
        let mut ring = ProvidedBuffers::new(64, 256).unwrap();
        let mut kernel = FakeKernel { head: 0 };
        let ids: Vec<u16> = std::iter::from_fn(|| kernel.take(&mut ring)).collect();
        assert!(ids.contains(&0) && ids.contains(&1));
        for &id in &ids {
            ring.chunk_mut(id, 0, 256).fill(0xab);
        }
        // Buffer 1 stays held (a send still reads it); its page neighbours,
        // buffer 0 among them, go back to the spare stack and go cold.
        for &id in ids.iter().filter(|&&id| id != 1) {
            ring.release(id);
        }
        for _ in 0..(3 * COLD_SWEEPS) {
            ring.decay();
        }
        assert!(
            ring.chunk(1, 0, 256).iter().all(|&b| b == 0xab),
            "a held buffer lost its bytes to a neighbour's give-back"
        );
        ring.release(1);
    }

    #[test]
    fn a_ring_smaller_than_the_minimum_is_published_whole() {
        let ring = ProvidedBuffers::new(8, 256).unwrap();
        assert_eq!(ring.published(), 8);
    }
}
