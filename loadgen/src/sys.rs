//! `send`/`recv` as raw system calls.
//!
//! loadgen is multi-threaded (a coordinator plus workers), and in a
//! multi-threaded process glibc wraps every `send()`/`recv()` in
//! `pthread_enable_asynccancel`/`pthread_disable_asynccancel`, because they
//! are cancellation points. We never cancel threads, and on the hot path
//! those wrappers measured at 16% of loadgen's user time at 100 x 20 B
//! (`perf record -e cpu-clock:u`; a single-threaded C client such as
//! `load_test` does not pay them). `syscall(2)` is not a cancellation point,
//! so these functions go straight to the kernel.

use std::io;
use std::os::fd::RawFd;

/// `recv(fd, buf, MSG_DONTWAIT)`.
#[inline]
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; the kernel
    // writes at most that many. Null address arguments are allowed.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            buf.as_mut_ptr(),
            buf.len(),
            libc::MSG_DONTWAIT,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `send(fd, buf, MSG_DONTWAIT | MSG_NOSIGNAL)`.
#[inline]
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes. Null address
    // arguments are allowed.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            buf.as_ptr(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn send_and_recv_over_a_socket_pair() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(send(a.as_raw_fd(), b"hello").unwrap(), 5);
        let mut buf = [0u8; 16];
        assert_eq!(recv(b.as_raw_fd(), &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        let e = recv(b.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
