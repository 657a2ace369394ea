//! permessage-deflate (RFC 7692), with no I/O and no memory per idle
//! connection.
//!
//! - [`negotiation`]: the client's offers in, the agreed parameters and the
//!   server's answer out; by default both sides keep no context, so every
//!   message is a self-contained deflate stream;
//! - [`raw_stream`]: raw DEFLATE streams (flate2 on zlib-rs), inflated
//!   under a size cap that a compression bomb cannot pass;
//! - [`message`]: the echo of one compressed message: checked as it
//!   inflates (UTF-8, size), then either the client's own compressed bytes
//!   (passthrough) or compressed again, with one inflater and one deflater
//!   per worker.
//!
//! The frame rules (RSV1 only on the first frame of a data message, and only
//! once the extension was agreed) belong to the frame decoders of each
//! backend.

pub mod message;
pub mod negotiation;
pub mod raw_stream;

pub use message::{ConnDeflate, Echo, Piece, WorkerDeflate};
pub use negotiation::{negotiate, Agreed, Policy};

/// A JSON-like message of `len` bytes (state snapshots, as games send),
/// for tests.
#[cfg(test)]
pub(crate) fn json_like(len: usize) -> Vec<u8> {
    let mut text = String::from("[");
    let mut i = 0;
    while text.len() < len {
        text.push_str(&format!(
            "{{\"id\":{i},\"x\":{}.5,\"y\":-{}.25,\"state\":\"running\",\"hp\":100}},",
            i * 7 % 1000,
            i * 13 % 1000
        ));
        i += 1;
    }
    text.truncate(len.saturating_sub(1));
    if len > 0 {
        text.push(']');
    }
    text.into_bytes()
}
