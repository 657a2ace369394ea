//! The anonymous memory the buffer ring lives in: the ring of entries the
//! kernel reads, and the buffers themselves.

use std::io;
use std::ptr::NonNull;

/// The system's page size.
pub(super) fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system and touches no memory.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// An anonymous private mapping, unmapped on drop.
pub(super) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes, readable and writable, with no swap reserved: pages
    /// become resident only when first touched.
    pub(super) fn new(len: usize) -> io::Result<Self> {
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

    /// The first byte of the mapping (page aligned).
    pub(super) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned and nothing else
        // unmaps them. Callers leak the `Mapping` instead of dropping it while
        // the kernel may still write to it (see the loop's Drop).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
