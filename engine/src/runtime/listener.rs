//! The listening sockets: one per worker, all bound to the same address with
//! `SO_REUSEPORT`, so the kernel spreads new connections across workers.
//!
//! The kernel socket buffers (`--socket-receive-buffer`/`--socket-send-buffer`)
//! are set here, on the listeners, before `listen()`: Linux copies a
//! listener's `SO_RCVBUF`/`SO_SNDBUF` (and the lock that stops autotuning)
//! into every socket it accepts, whether epoll or io_uring's multishot accept
//! takes it, and a receive buffer set before the handshake also sizes the
//! advertised TCP window scale.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::SocketBuffers;

/// Accept queue length requested from the kernel (capped by `somaxconn`).
const BACKLOG: i32 = 4096;

/// Fails with `AddrInUse` when another socket already listens on `addr`:
/// `SO_REUSEPORT` would let this engine's listeners join it, and the kernel
/// would then hand this engine only a share of the connections, silently.
/// The probe binds without `SO_REUSEPORT` (with `SO_REUSEADDR`, so sockets
/// in TIME_WAIT from an engine that has stopped do not count) and closes at
/// once. Port 0 always gets a fresh port, so it is not probed.
pub fn refuse_taken(addr: SocketAddr) -> io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())
}

/// Binds `count` listeners to `addr`. With port 0 the first one picks a free
/// port and the others join it. Returns the sockets and the bound address.
pub fn bind_reuseport(
    addr: SocketAddr,
    count: usize,
    buffers: SocketBuffers,
) -> io::Result<(Vec<Socket>, SocketAddr)> {
    let mut bound = addr;
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nodelay(true)?;
        socket.set_nonblocking(true)?;
        socket.set_cloexec(true)?;
        apply_socket_buffers(&socket, buffers)?;
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
    if let Some(first) = sockets.first() {
        log_effective_buffers(first, buffers);
    }
    Ok((sockets, bound))
}

/// Sets the requested kernel buffers on `socket`; unset ones stay autotuned.
fn apply_socket_buffers(socket: &Socket, buffers: SocketBuffers) -> io::Result<()> {
    if let Some(bytes) = buffers.receive {
        socket.set_recv_buffer_size(bytes)?;
    }
    if let Some(bytes) = buffers.send {
        socket.set_send_buffer_size(bytes)?;
    }
    Ok(())
}

/// Logs what the kernel made of the requested sizes: it doubles them for its
/// own bookkeeping and caps them at `net.core.rmem_max`/`wmem_max`, so a
/// request can silently shrink; that case is a warning.
fn log_effective_buffers(socket: &Socket, buffers: SocketBuffers) {
    let report = |name: &str, requested: Option<usize>, effective: io::Result<usize>, sysctl| {
        let Some(requested) = requested else { return };
        match effective {
            Ok(effective) if effective < requested.saturating_mul(2) => tracing::warn!(
                "{name} {requested} B requested, {effective} B effective: capped by {sysctl}"
            ),
            Ok(effective) => {
                tracing::info!("{name} {requested} B requested, {effective} B effective")
            }
            Err(e) => tracing::warn!("cannot read back {name}: {e}"),
        }
    };
    report(
        "SO_RCVBUF",
        buffers.receive,
        socket.recv_buffer_size(),
        "net.core.rmem_max",
    );
    report(
        "SO_SNDBUF",
        buffers.send,
        socket.send_buffer_size(),
        "net.core.wmem_max",
    );
}
