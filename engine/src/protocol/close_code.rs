//! Close codes (RFC 6455 §7.4) as a type of their own, so that a code is
//! never a bare number: the ones the server sends are named here.

use std::fmt;

/// A WebSocket close code: a code the server sends (one of the named
/// constants) or one a peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: the connection did what it was for.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the server is going away (shutdown).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1005: what a close frame without a code reports (RFC 6455 §7.1.5);
    /// never sent.
    pub const NO_STATUS_RECEIVED: CloseCode = CloseCode(1005);
    /// 1007: a text message that is not UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a policy violation (RFC 6455 §7.4.1; used for backpressure).
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message over the size limit.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);

    /// The code `code`, whatever it is.
    pub const fn new(code: u16) -> Self {
        CloseCode(code)
    }

    /// The number on the wire.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The code as it is written in a close frame's payload.
    pub const fn to_be_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// Whether a peer may send this code: the defined ones (1004-1006 and
    /// 1015 are reserved for local use) and the registered and private
    /// ranges 3000-4999.
    pub const fn is_valid_from_peer(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_may_send_the_defined_codes_and_the_application_ranges() {
        for code in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(CloseCode::new(code).is_valid_from_peer(), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert!(!CloseCode::new(code).is_valid_from_peer(), "{code}");
        }
        assert_eq!(CloseCode::GOING_AWAY.to_be_bytes(), [0x03, 0xe9]);
        assert_eq!(u16::from(CloseCode::MESSAGE_TOO_BIG), 1009);
    }
}
