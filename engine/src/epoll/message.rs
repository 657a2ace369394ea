//! Reassembly of fragmented messages, with the checks RFC 6455 asks for.
//!
//! fastwebsockets validates UTF-8 only for unfragmented text frames and caps
//! single frames, so fragmented messages are assembled here: UTF-8 is
//! validated incrementally as each fragment arrives (fail fast, so a bad
//! first fragment is refused without waiting for the rest), and the size cap
//! counts the whole message.

use fastwebsockets::OpCode;
use thiserror::Error;

use crate::protocol::CloseCode;

/// Why a fragmented message is refused; each maps to a close code.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MessageError {
    /// Text that is not UTF-8 (close 1007).
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// More bytes than `--max-message-size` (close 1009).
    #[error("message exceeds the size limit")]
    TooBig,
    /// A continuation without a start, or a new message inside one (close 1002).
    #[error("fragments out of order")]
    OutOfOrder,
}

impl MessageError {
    /// The close code RFC 6455 assigns to this failure.
    pub fn close_code(&self) -> CloseCode {
        match self {
            MessageError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            MessageError::TooBig => CloseCode::MESSAGE_TOO_BIG,
            MessageError::OutOfOrder => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// Collects the fragments of one message at a time.
#[derive(Debug)]
pub struct MessageAssembler {
    opcode: Option<OpCode>,
    data: Vec<u8>,
    /// Prefix of `data` known to be valid UTF-8 (text only).
    checked: usize,
    max_size: usize,
}

impl MessageAssembler {
    /// An assembler refusing messages over `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        Self {
            opcode: None,
            data: Vec::new(),
            checked: 0,
            max_size,
        }
    }

    /// Whether a fragmented message is under way.
    pub fn in_progress(&self) -> bool {
        self.opcode.is_some()
    }

    /// Starts a message with the first fragment of a text or binary frame.
    pub fn start(&mut self, opcode: OpCode, fragment: &[u8]) -> Result<(), MessageError> {
        if self.in_progress() {
            return Err(MessageError::OutOfOrder);
        }
        self.opcode = Some(opcode);
        self.data.clear();
        self.checked = 0;
        self.append(fragment)
    }

    /// Adds a continuation fragment. On the final one returns the whole
    /// message and its opcode.
    pub fn push(
        &mut self,
        fragment: &[u8],
        fin: bool,
    ) -> Result<Option<(OpCode, Vec<u8>)>, MessageError> {
        let Some(opcode) = self.opcode else {
            return Err(MessageError::OutOfOrder);
        };
        self.append(fragment)?;
        if !fin {
            return Ok(None);
        }
        if opcode == OpCode::Text && self.checked != self.data.len() {
            return Err(MessageError::InvalidUtf8);
        }
        self.opcode = None;
        Ok(Some((opcode, std::mem::take(&mut self.data))))
    }

    fn append(&mut self, fragment: &[u8]) -> Result<(), MessageError> {
        if self.data.len() + fragment.len() > self.max_size {
            return Err(MessageError::TooBig);
        }
        self.data.extend_from_slice(fragment);
        if self.opcode == Some(OpCode::Text) {
            match std::str::from_utf8(&self.data[self.checked..]) {
                Ok(_) => self.checked = self.data.len(),
                // An incomplete sequence at the end may finish in the next fragment.
                Err(e) if e.error_len().is_none() => self.checked += e.valid_up_to(),
                Err(_) => return Err(MessageError::InvalidUtf8),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_inside_a_character_is_fine() {
        let euro = "€".as_bytes();
        let mut m = MessageAssembler::new(100);
        m.start(OpCode::Text, &euro[..1]).unwrap();
        assert_eq!(m.push(&euro[1..2], false), Ok(None));
        assert_eq!(
            m.push(&euro[2..], true),
            Ok(Some((OpCode::Text, euro.to_vec())))
        );
        assert!(!m.in_progress());
    }

    #[test]
    fn invalid_utf8_fails_at_the_first_bad_fragment() {
        let mut m = MessageAssembler::new(100);
        m.start(OpCode::Text, b"ok").unwrap();
        assert_eq!(m.push(&[0xff], false), Err(MessageError::InvalidUtf8));
    }

    #[test]
    fn truncated_character_at_the_end_is_invalid() {
        let mut m = MessageAssembler::new(100);
        m.start(OpCode::Text, &"€".as_bytes()[..2]).unwrap();
        assert_eq!(m.push(b"", true), Err(MessageError::InvalidUtf8));
    }

    #[test]
    fn size_cap_counts_all_fragments() {
        let mut m = MessageAssembler::new(10);
        m.start(OpCode::Binary, &[0; 6]).unwrap();
        assert_eq!(m.push(&[0; 5], true), Err(MessageError::TooBig));
    }

    #[test]
    fn order_is_enforced() {
        let mut m = MessageAssembler::new(10);
        assert_eq!(m.push(b"x", true), Err(MessageError::OutOfOrder));
        m.start(OpCode::Binary, b"x").unwrap();
        assert_eq!(m.start(OpCode::Binary, b"y"), Err(MessageError::OutOfOrder));
    }
}
