//! Where a request head ends, found across reads.
//!
//! hyper's reads on the io_uring path stop at the end of each request head
//! (`event_loop::Loop::http_read`), so that the bytes a client sends right
//! after an upgrade request stay in the receive buffers for the WebSocket
//! decoder. [`scan_head_end`] finds that end (`\r\n\r\n`) in buffers that
//! may cut it anywhere.
//!
//! Public so that the fuzz targets in `engine/fuzz` check it against a
//! plain search on arbitrary splits.

/// Finds where `bytes` complete a request head (`\r\n\r\n`), continuing
/// from `matched` bytes of it. Returns how many bytes to hand over (all of
/// them, or up to and including the head's end) and whether the head ended.
pub fn scan_head_end(bytes: &[u8], matched: &mut u8) -> (usize, bool) {
    const HEAD_END: &[u8; 4] = b"\r\n\r\n";
    for (i, &byte) in bytes.iter().enumerate() {
        *matched = if byte == HEAD_END[usize::from(*matched)] {
            *matched + 1
        } else {
            u8::from(byte == b'\r')
        };
        if *matched == 4 {
            *matched = 0;
            return (i + 1, true);
        }
    }
    (bytes.len(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_end_is_found_across_reads() {
        let mut matched = 0;
        assert_eq!(
            scan_head_end(b"GET / HTTP/1.1\r\nHost: x\r", &mut matched),
            (24, false)
        );
        assert_eq!(scan_head_end(b"\n\r\n\x81\x85", &mut matched), (3, true));
        assert_eq!(scan_head_end(b"\r\r\n\r\nrest", &mut matched), (5, true));
    }
}
