//! Close frames: which payloads a peer may send (RFC 6455 §5.5.1, §7.4).

use super::close_code::CloseCode;
use super::frame::MAX_CONTROL_PAYLOAD;
use super::utf8;

/// Validates a peer's close payload; `Err` holds the close code to fail with.
pub fn check_payload(payload: &[u8]) -> Result<(), CloseCode> {
    match payload.len() {
        0 => Ok(()),
        1 => Err(CloseCode::PROTOCOL_ERROR),
        n if n > MAX_CONTROL_PAYLOAD => Err(CloseCode::PROTOCOL_ERROR),
        _ => {
            if !code_of(payload).is_valid_from_peer() {
                Err(CloseCode::PROTOCOL_ERROR)
            } else if !utf8::is_valid(&payload[2..]) {
                Err(CloseCode::INVALID_PAYLOAD)
            } else {
                Ok(())
            }
        }
    }
}

/// The code a close payload carries, or [`CloseCode::NO_STATUS_RECEIVED`]
/// when empty.
pub fn code_of(payload: &[u8]) -> CloseCode {
    match *payload {
        [high, low, ..] => CloseCode::new(u16::from_be_bytes([high, low])),
        _ => CloseCode::NO_STATUS_RECEIVED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_payload_checks() {
        let err = |code: u16| Err(CloseCode::new(code));
        assert_eq!(check_payload(b""), Ok(()));
        assert_eq!(check_payload(&[3]), err(1002));
        assert_eq!(check_payload(&[0x03, 0xe8]), Ok(()));
        assert_eq!(check_payload(&[0x03, 0xed]), err(1002), "1005 is reserved");
        assert_eq!(check_payload(&[0x0b, 0xb8, b'h', b'i']), Ok(()), "3000");
        assert_eq!(check_payload(&[0x03, 0xe8, 0xff]), err(1007));
        assert_eq!(
            check_payload(&[0x03, 0xe8].repeat(63)),
            err(1002),
            "126 bytes"
        );
        assert_eq!(check_payload(&[0x13, 0x88]), err(1002), "5000");
    }

    #[test]
    fn code_of_empty_payload_is_no_status() {
        assert_eq!(code_of(b""), CloseCode::NO_STATUS_RECEIVED);
        assert_eq!(code_of(&[0x03, 0xe9, b'x']), CloseCode::GOING_AWAY);
    }
}
