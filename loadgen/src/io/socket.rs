//! The client socket both drivers connect: non-blocking, close-on-exec,
//! optionally bound to a source address first.
//!
//! A source address (`loadgen soak --source-addrs`) is bound with
//! `IP_BIND_ADDRESS_NO_PORT`, so the port is still picked at `connect()`
//! for the full 4-tuple rather than reserved at `bind()`: see
//! [`crate::soak::source`] for why the soak spreads its connections over
//! several loopback addresses.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

/// A non-blocking TCP socket for a connection to `target`, bound to
/// `source` (any port) when given; not connected yet.
pub fn client_socket(target: SocketAddr, source: Option<IpAddr>) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    if let Some(ip) = source {
        bind_address_no_port(&socket)?;
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    Ok(socket)
}

/// `IP_BIND_ADDRESS_NO_PORT`: `bind()` takes the address only, and the
/// port is chosen at `connect()` (so ports are shared across destinations
/// and not reserved for the whole range of the address).
fn bind_address_no_port(socket: &Socket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a valid
    // c_int that lives across the call; the fd is a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connects_from_a_chosen_loopback_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let source: IpAddr = "127.0.0.7".parse().unwrap();
        let socket = client_socket(target, Some(source)).unwrap();
        match socket.connect(&target.into()) {
            Ok(()) => {}
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EINPROGRESS)),
        }
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), source);
    }
}
