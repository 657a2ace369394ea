//! Where a request head ends, found across reads.
//!
//! hyper's reads on the io_uring path stop at the end of each request head
//! (`event_loop::Loop::http_read`), so that the bytes a client sends right
//! after an upgrade request stay in the receive buffers for the WebSocket
//! decoder. [`HeadEnd`] finds that end (`\r\n\r\n`) in buffers that may cut
//! it anywhere.
//!
//! Only a head with something in it ends there. HTTP/1.1 lets a client send
//! empty lines before a request (httparse skips them), and each read that
//! stops makes hyper parse its whole buffer again: stopping at every
//! `\r\n\r\n` of a run of empty lines would let one client that sends
//! 400 KB of them (hyper's buffer limit) cost its worker seconds of CPU,
//! 100,000 parses that each skip up to 400 KB of empty lines, while every
//! other connection on that worker waits. Found by the `upgrade` fuzz
//! target (`engine/fuzz`).
//!
//! Public so that the fuzz targets check it against a plain search on
//! arbitrary splits.

/// The scan's state between reads: how much of `\r\n\r\n` the bytes so far
/// end with, and whether the head under way has a byte other than CR or LF.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HeadEnd {
    matched: u8,
    has_content: bool,
}

impl HeadEnd {
    /// Scans `bytes`, the next received bytes. Returns how many of them
    /// to hand over (all, or up to and including the end of a head) and
    /// whether a head ended there; the next scan starts a new head.
    pub fn scan(&mut self, bytes: &[u8]) -> (usize, bool) {
        const END: &[u8; 4] = b"\r\n\r\n";
        for (i, &byte) in bytes.iter().enumerate() {
            self.has_content |= byte != b'\r' && byte != b'\n';
            self.matched = if byte == END[usize::from(self.matched)] {
                self.matched + 1
            } else {
                u8::from(byte == b'\r')
            };
            if self.matched == 4 {
                self.matched = 0;
                if std::mem::take(&mut self.has_content) {
                    return (i + 1, true);
                }
            }
        }
        (bytes.len(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_end_is_found_across_reads() {
        let mut scan = HeadEnd::default();
        assert_eq!(scan.scan(b"GET / HTTP/1.1\r\nHost: x\r"), (24, false));
        assert_eq!(scan.scan(b"\n\r\n\x81\x85"), (3, true));
        assert_eq!(scan.scan(b"G\r\r\n\r\nrest"), (6, true));
    }

    #[test]
    fn empty_lines_are_not_a_head() {
        let mut scan = HeadEnd::default();
        let flood = b"\r\n".repeat(1000);
        assert_eq!(scan.scan(&flood), (flood.len(), false));
        assert_eq!(scan.scan(b"\n\n\r\n\r\n"), (6, false));
        let request = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n\x81";
        assert_eq!(scan.scan(request), (request.len() - 1, true));
        assert_eq!(
            scan.scan(b"\r\n\r\n"),
            (4, false),
            "a new head starts empty"
        );
    }
}
