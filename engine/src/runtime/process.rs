//! Process-wide settings the engine makes once at start.
//!
//! **Transparent huge pages off.** mimalloc asks the kernel for huge pages
//! on its arenas (`madvise(MADV_HUGEPAGE)`, unless built with its `no_thp`
//! feature, as this workspace does), and on hosts whose THP mode is
//! `always` the kernel uses them anyway; the first allocation in a fresh
//! 2 MiB region then faults in all 2 MiB at once. For an engine whose idle
//! WebSocket is a few hundred bytes that turns memory into a staircase of
//! 2 MiB steps (the figures, with and without huge pages, are in
//! `docs/how-it-works.md`, "Memory").

/// Turns transparent huge pages off for this process
/// (`prctl(PR_SET_THP_DISABLE)`), so resident memory grows with what the
/// engine touches, 4 KiB at a time. Regions already faulted in keep their
/// pages. Returns the OS error if the kernel refuses (older than 3.15).
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes one integer argument (1 = disable)
    // and the unused arguments must be zero; it reads and writes no memory
    // of ours, only a flag on this process's mm, so no Rust invariant can
    // be broken by it.
    let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
