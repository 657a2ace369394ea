//! Fuzz harnesses for ringecho, run by AFL++ through `cargo-afl` on stable
//! Rust (`scripts/fuzz.sh`; `docs/fuzzing.md` says how).
//!
//! Each target is a function from arbitrary bytes to nothing that panics
//! when an invariant breaks; the `fuzz_*` binaries hand it to `afl::fuzz!`,
//! and `tests/corpus.rs` replays the committed corpus through it under
//! plain `cargo test`.
//!
//! - [`frames`]: the io_uring path's WebSocket decoder
//!   ([`ringecho::internals::protocol::Decoder`]) driven as the loop drives
//!   it, with the echo planning ([`ringecho::internals::protocol::plan`]),
//!   chunks cut at arbitrary points, checked against a plain whole-buffer
//!   model of RFC 6455;
//! - [`upgrade`]: the HTTP upgrade checks
//!   ([`ringecho::internals::http::route`]) on arbitrary request heads
//!   parsed with httparse, and the io_uring path's request-head scan
//!   ([`ringecho::internals::http::request_head`]).
//!
//! Both reach the engine through [`ringecho::internals`], the one module
//! that exposes its internals.

pub mod frames;
pub mod seeds;
pub mod upgrade;
