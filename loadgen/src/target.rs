//! The target URL: `ws://host[:port][/path]`.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::error::{Error, Result};

/// A parsed WebSocket target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as the user wrote it (used in reports).
    pub url: String,
    /// Host name or address, without brackets.
    pub host: String,
    /// TCP port (80 when the URL has none).
    pub port: u16,
    /// Request path including any query, starting with `/`.
    pub path: String,
}

impl Target {
    /// Parses `ws://host[:port][/path]`. `wss://` is refused: the tool
    /// measures the echo engine, not a TLS stack.
    pub fn parse(url: &str) -> Result<Target> {
        let bad = |reason: &str| Error::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = if let Some(rest) = url.strip_prefix("ws://") {
            rest
        } else if url.starts_with("wss://") {
            return Err(bad("wss:// (TLS) is not supported"));
        } else {
            return Err(bad("must start with ws://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(bad("missing host"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or_else(|| bad("unclosed '[' in host"))?;
            let host = &v6[..end];
            let port = match &v6[end + 1..] {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        Ok(Target {
            url: url.to_string(),
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// The `Host:` header value.
    pub fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Resolves the host to the first socket address.
    pub fn resolve(&self) -> Result<SocketAddr> {
        let hp = (self.host.as_str(), self.port);
        let resolve_err = |source| Error::Resolve {
            host: self.host_header(),
            source,
        };
        hp.to_socket_addrs()
            .map_err(resolve_err)?
            .next()
            .ok_or_else(|| {
                resolve_err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no addresses",
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let t = Target::parse("ws://127.0.0.1:5000/ws").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 5000, "/ws")
        );
        let t = Target::parse("ws://localhost").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        let t = Target::parse("ws://[::1]:9/x?y=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9, "/x?y=1")
        );
        assert_eq!(t.host_header(), "[::1]:9");
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(Target::parse("http://x/").is_err());
        assert!(Target::parse("wss://x/").is_err());
        assert!(Target::parse("ws://:80/").is_err());
        assert!(Target::parse("ws://x:99999/").is_err());
    }
}
