//! Client source addresses (`--source-addrs`).
//!
//! # Ephemeral ports
//!
//! Every client connection to one server address takes a local port from
//! the ephemeral range (`net.ipv4.ip_local_port_range`, 32768-60999 by
//! default: 28,232 ports). A soak holds 15,000 connections and replaces
//! 200 a second; a port whose connection was closed first by the client
//! stays in `TIME_WAIT` for 60 s, so a client that closed first would
//! hold another 12,000 ports at any time, close to the whole range.
//!
//! Two things keep the soak clear of that, and either would be enough:
//!
//! * the client waits for the server to close the TCP connection after
//!   the close handshake (RFC 6455 §7.1.1: the server closes first), so
//!   `TIME_WAIT` lands on the server's side, where it costs no client
//!   port (see `super::worker`);
//! * on loopback, connections are spread over several source addresses
//!   (127.0.0.1-127.0.0.16 by default; all of 127.0.0.0/8 is local), each
//!   with its own range of ports ([`crate::io::socket::client_socket`]
//!   binds them).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::error::{Error, Result};

/// Loopback source addresses used by `--source-addrs auto`.
pub const AUTO_LOOPBACK_SOURCES: u8 = 16;

/// Parses `--source-addrs`: `auto`, `none`, or a comma-separated list of
/// addresses and IPv4 ranges (`127.0.0.1-127.0.0.16`). `auto` spreads over
/// 127.0.0.1-127.0.0.16 when `target` is an IPv4 loopback address and
/// lets the system pick otherwise; `none` always lets the system pick.
/// Returns the addresses to cycle through (empty: the system picks).
pub fn parse_sources(spec: &str, target: SocketAddr) -> Result<Vec<IpAddr>> {
    let spec = spec.trim();
    match spec {
        "none" => return Ok(Vec::new()),
        "auto" => {
            return Ok(match target.ip() {
                IpAddr::V4(v4) if v4.is_loopback() => (1..=AUTO_LOOPBACK_SOURCES)
                    .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
                    .collect(),
                _ => Vec::new(),
            })
        }
        _ => {}
    }
    let bad = |why: &str| Error::Config(format!("--source-addrs {spec:?}: {why}"));
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (Ipv4Addr, Ipv4Addr) = (
                    a.trim().parse().map_err(|_| bad("bad IPv4 range start"))?,
                    b.trim().parse().map_err(|_| bad("bad IPv4 range end"))?,
                );
                let (a, b) = (u32::from(a), u32::from(b));
                if a > b || b - a >= 65_536 {
                    return Err(bad(
                        "a range runs upwards and spans at most 65536 addresses",
                    ));
                }
                out.extend((a..=b).map(|ip| IpAddr::V4(Ipv4Addr::from(ip))));
            }
            None => out.push(part.parse().map_err(|_| bad("bad address"))?),
        }
    }
    if out.is_empty() {
        return Err(bad("no address"));
    }
    if out.iter().any(|ip| ip.is_ipv4() != target.is_ipv4()) {
        return Err(bad("source and target must be the same IP version"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_source_lists() {
        let lo: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let auto = parse_sources("auto", lo).unwrap();
        assert_eq!(auto.len(), usize::from(AUTO_LOOPBACK_SOURCES));
        assert_eq!(auto[15], "127.0.0.16".parse::<IpAddr>().unwrap());
        let remote: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert!(parse_sources("auto", remote).unwrap().is_empty());
        assert!(parse_sources("none", lo).unwrap().is_empty());
        let list = parse_sources("127.0.0.5, 127.0.1.1-127.0.1.3", lo).unwrap();
        assert_eq!(list.len(), 4);
        assert!(parse_sources("127.0.0.9-127.0.0.2", lo).is_err());
        assert!(parse_sources("::1", lo).is_err());
        assert!(parse_sources("nope", lo).is_err());
    }
}
