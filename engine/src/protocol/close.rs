//! Close frames: which codes and payloads a peer may send (RFC 6455 §5.5.1,
//! §7.4), and the close codes the server answers failures with.

use super::frame::MAX_CONTROL_PAYLOAD;
use super::utf8;

/// Close code: the server is going away (shutdown).
pub const GOING_AWAY: u16 = 1001;
/// Close code: a protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// Close code: a text message that is not UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// Close code: a policy violation (RFC 6455 §7.4.1; used for backpressure).
pub const POLICY_VIOLATION: u16 = 1008;
/// Close code: a message over the size limit.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The code RFC 6455 §7.1.5 reports for a close frame without one (never sent).
pub const NO_STATUS_RECEIVED: u16 = 1005;

/// Validates a peer's close payload; `Err` holds the close code to fail with.
pub fn check_payload(payload: &[u8]) -> Result<(), u16> {
    match payload.len() {
        0 => Ok(()),
        1 => Err(PROTOCOL_ERROR),
        n if n > MAX_CONTROL_PAYLOAD => Err(PROTOCOL_ERROR),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_code(code) {
                Err(PROTOCOL_ERROR)
            } else if !utf8::is_valid(&payload[2..]) {
                Err(INVALID_PAYLOAD)
            } else {
                Ok(())
            }
        }
    }
}

/// The code a close payload carries, or [`NO_STATUS_RECEIVED`] when empty.
pub fn code_of(payload: &[u8]) -> u16 {
    match *payload {
        [high, low, ..] => u16::from_be_bytes([high, low]),
        _ => NO_STATUS_RECEIVED,
    }
}

/// Close codes a peer may send: the defined ones (1004-1006 and 1015 are
/// reserved for local use) and the registered/private ranges 3000-4999.
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_payload_checks() {
        assert_eq!(check_payload(b""), Ok(()));
        assert_eq!(check_payload(&[3]), Err(1002));
        assert_eq!(check_payload(&[0x03, 0xe8]), Ok(()));
        assert_eq!(check_payload(&[0x03, 0xed]), Err(1002), "1005 is reserved");
        assert_eq!(check_payload(&[0x0b, 0xb8, b'h', b'i']), Ok(()), "3000");
        assert_eq!(check_payload(&[0x03, 0xe8, 0xff]), Err(1007));
        assert_eq!(
            check_payload(&[0x03, 0xe8].repeat(63)),
            Err(1002),
            "126 bytes"
        );
        assert_eq!(check_payload(&[0x13, 0x88]), Err(1002), "5000");
    }

    #[test]
    fn code_of_empty_payload_is_no_status() {
        assert_eq!(code_of(b""), NO_STATUS_RECEIVED);
        assert_eq!(code_of(&[0x03, 0xe9, b'x']), GOING_AWAY);
    }
}
