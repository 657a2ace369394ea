//! The listening sockets: one per worker, all bound to the same address with
//! `SO_REUSEPORT`, so the kernel spreads new connections across workers.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length requested from the kernel (capped by `somaxconn`).
const BACKLOG: i32 = 4096;

/// Binds `count` listeners to `addr`. With port 0 the first one picks a free
/// port and the others join it. Returns the sockets and the bound address.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<(Vec<Socket>, SocketAddr)> {
    let mut bound = addr;
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nodelay(true)?;
        socket.set_nonblocking(true)?;
        socket.set_cloexec(true)?;
        socket.bind(&bound.into())?;
        socket.listen(BACKLOG)?;
        if bound.port() == 0 {
            bound = socket
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::other("listener has no IP address"))?;
        }
        sockets.push(socket);
    }
    Ok((sockets, bound))
}
