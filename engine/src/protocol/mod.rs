//! The WebSocket protocol (RFC 6455), server side, with no I/O in it.
//!
//! This is the io_uring path's codec, in the shape of uWebSockets'
//! `WebSocketProtocol.h`: it is fed the bytes the kernel put in the receive
//! buffers and works on them **in place**. [`Decoder`] parses frame headers
//! where they lie, unmasks payloads in the buffer with fastwebsockets'
//! `unmask` (the key rotated by the offset when a frame spans buffers),
//! checks text incrementally so invalid UTF-8 fails fast, enforces the
//! close-code and control-frame rules, and reports what it found as
//! [`Event`]s that name byte ranges of the fed slice. The ring layer
//! ([`crate::uring`]) turns those ranges into sends from the same buffers.
//!
//! - [`frame`]: header layout, opcodes, the server's header encoding;
//! - [`utf8`]: incremental UTF-8 validation across chunks;
//! - [`close_code`]: close codes as a type; [`close`]: which close
//!   payloads a peer may send;
//! - [`decoder`]: the incremental, in-place frame decoder;
//! - [`plan`]: what each decoded event asks of a connection on the
//!   io_uring path (the echo as ranges of the receive buffer);
//! - [`deflate`]: permessage-deflate (RFC 7692): negotiation and the
//!   compressed echo's parts.
//!
//! The epoll backend runs fastwebsockets' own codec and is the reference
//! this module is held to (`engine/tests/differential.rs`).

pub mod close;
pub mod close_code;
pub mod decoder;
pub mod deflate;
pub mod frame;
pub mod plan;
pub mod utf8;

#[cfg(test)]
mod parity_tests;

pub use close_code::CloseCode;
pub use decoder::{DataFrame, Decoder, Event};
