//! Incremental UTF-8 validation: text arrives in chunks that may cut a
//! character in two, and an invalid byte must fail the message as soon as it
//! arrives (Autobahn 6.4.x "fail fast"), not once the message is whole.

/// Validation state across the chunks of one text message: at most three
/// bytes of a character whose rest has not arrived yet.
#[derive(Debug, Default, Clone, Copy)]
pub struct Utf8Stream {
    carry: [u8; 4],
    carry_len: u8,
}

/// Whether `bytes` are valid UTF-8 as a whole.
pub fn is_valid(bytes: &[u8]) -> bool {
    simdutf8::basic::from_utf8(bytes).is_ok()
}

impl Utf8Stream {
    /// Feeds the next chunk; `false` once the bytes so far cannot be UTF-8.
    /// A character cut at the end of the chunk is carried to the next one.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        if self.carry_len > 0 {
            let have = usize::from(self.carry_len);
            // Complete the carried character from the front of `bytes`.
            let mut joined = [0u8; 8];
            joined[..have].copy_from_slice(&self.carry[..have]);
            let take = bytes.len().min(4);
            joined[have..have + take].copy_from_slice(&bytes[..take]);
            let joined = &joined[..have + take];
            let consumed = match std::str::from_utf8(joined) {
                Ok(_) => joined.len(),
                Err(e) if e.error_len().is_some() && e.valid_up_to() < have => return false,
                Err(e) => e.valid_up_to(),
            };
            if consumed < have {
                // Still incomplete (the chunk was shorter than the character).
                self.carry[..joined.len()].copy_from_slice(joined);
                self.carry_len = joined.len() as u8;
                return true;
            }
            bytes = &bytes[consumed - have..];
            self.carry_len = 0;
        }
        match simdutf8::compat::from_utf8(bytes) {
            Ok(_) => true,
            Err(e) if e.error_len().is_some() => false,
            Err(e) => {
                let tail = &bytes[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len() as u8;
                true
            }
        }
    }

    /// Whether the text fed so far ends on a character boundary: a message
    /// that ends with a character cut short is invalid.
    pub fn is_complete(&self) -> bool {
        self.carry_len == 0
    }

    /// Forgets any carried bytes, for the next message.
    pub fn reset(&mut self) {
        self.carry_len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_split_at_every_offset_is_valid() {
        let text = "aé€𝄞z".as_bytes();
        for cut in 0..=text.len() {
            for cut2 in cut..=text.len() {
                let mut s = Utf8Stream::default();
                assert!(s.feed(&text[..cut]), "{cut}");
                assert!(s.feed(&text[cut..cut2]), "{cut} {cut2}");
                assert!(s.feed(&text[cut2..]), "{cut} {cut2}");
                assert!(s.is_complete());
            }
        }
    }

    #[test]
    fn invalid_byte_fails_when_it_arrives() {
        let mut s = Utf8Stream::default();
        assert!(s.feed(b"ok \xCE"));
        assert!(!s.is_complete());
        assert!(!s.feed(b"\x41"), "a continuation byte was expected");
        let mut s = Utf8Stream::default();
        assert!(!s.feed(b"\xED\xA0\x80"), "surrogate");
        let mut s = Utf8Stream::default();
        assert!(!s.feed(b"\xFF"));
    }

    #[test]
    fn truncated_character_is_incomplete() {
        let mut s = Utf8Stream::default();
        assert!(s.feed(&"€".as_bytes()[..2]));
        assert!(!s.is_complete());
        s.reset();
        assert!(s.is_complete());
    }
}
