//! The seed inputs the corpus started from, in each target's input format
//! (`fuzz_seeds` writes them; afl-fuzz grew and `afl-cmin` minimised the
//! committed corpus from them).

use crate::frames::build_frames;

/// The settings byte of a `frames` input: `max` indexes the size limits
/// (7: 1 MiB), `built` reads the rest as frame descriptors.
fn frames_input(max: u8, built: bool, chunk_bytes: &[u8], body: &[u8]) -> Vec<u8> {
    let mut input = vec![max | if built { 0x08 } else { 0 }, chunk_bytes.len() as u8];
    input.extend_from_slice(chunk_bytes);
    input.extend_from_slice(body);
    input
}

/// The settings bit of a `frames` input that agrees on permessage-deflate.
const COMPRESSION: u8 = 0x40;

/// `message` compressed as a permessage-deflate client does (raw DEFLATE,
/// sync flush, the `00 00 ff ff` tail left off).
fn deflated(message: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(message).expect("deflate");
    // A flush of the encoder is a sync flush.
    encoder.flush().expect("sync flush");
    let mut out = std::mem::take(encoder.get_mut());
    out.truncate(out.len() - 4);
    out
}

/// One frame descriptor (see [`build_frames`]).
pub fn descriptor(first: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![first, flags];
    if payload.len() >= 255 {
        d.push(255);
        d.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        d.push(payload.len() as u8);
    }
    d.extend_from_slice(&[0x5a, 0x01, 0xc3, 0x7e]);
    d.extend_from_slice(payload);
    d
}

/// Seeds for the `frames` target, named.
pub fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let text = descriptor(0x81, 0, "héllo €𝄞".as_bytes());
    let binary = descriptor(0x82, 0, &[0, 1, 2, 3, 4, 5]);
    let fragmented = [
        descriptor(0x01, 0, b"h\xc3"),
        descriptor(0x89, 0, b"ping"),
        descriptor(0x00, 1, b"\xa9llo"),
        descriptor(0x8a, 0, b""),
        descriptor(0x80, 2, "wörld".as_bytes()),
    ]
    .concat();
    let close = descriptor(0x88, 0, &[0x03, 0xe8, b'b', b'y', b'e']);
    let big = descriptor(0x82, 0, &[0xab; 300]);
    let big_text = descriptor(0x81, 1, &b"abcdefgh".repeat(40));
    let bad_utf8 = descriptor(0x81, 0, b"ok\xed\xa0\x80");
    let unmasked = descriptor(0x82, 0x80, b"x");
    let mut session = [text.clone(), binary.clone(), fragmented.clone()].concat();
    session.extend_from_slice(&close);
    let json = b"{\"id\":1,\"x\":10.5,\"state\":\"running\"}".repeat(20);
    let compressed_text = descriptor(0xC1, 0, &deflated(&json));
    let payload = deflated(&json);
    let (a, b) = payload.split_at(payload.len() / 2);
    let compressed_fragments = [
        descriptor(0x42, 0, a),
        descriptor(0x89, 0, b"ping"),
        descriptor(0x80, 0, b),
    ]
    .concat();
    let compressed_bad_utf8 = descriptor(0xC1, 0, &deflated(b"ok\xed\xa0\x80 and more"));
    let bomb = descriptor(0xC2, 1, &deflated(&[0; 4000]));
    let compressed_session = [
        compressed_text.clone(),
        text.clone(),
        compressed_fragments.clone(),
        close.clone(),
    ]
    .concat();
    vec![
        ("text", frames_input(7, true, &[], &text)),
        ("binary-split", frames_input(7, true, &[1, 3], &binary)),
        ("fragmented", frames_input(7, true, &[2, 5, 9], &fragmented)),
        ("session", frames_input(4, true, &[0, 30], &session)),
        ("big", frames_input(7, true, &[40, 100], &big)),
        ("big-text-limit", frames_input(4, true, &[60], &big_text)),
        ("too-big", frames_input(2, true, &[], &big)),
        ("bad-utf8", frames_input(7, true, &[3], &bad_utf8)),
        ("unmasked", frames_input(7, true, &[], &unmasked)),
        ("close", frames_input(7, true, &[1], &close)),
        ("raw", frames_input(7, false, &[4], &build_frames(&session))),
        ("closing", frames_input(0x77, true, &[], &session)),
        (
            "compressed-text",
            frames_input(7 | COMPRESSION, true, &[3, 20], &compressed_text),
        ),
        (
            "compressed-fragments",
            frames_input(7 | COMPRESSION, true, &[5], &compressed_fragments),
        ),
        (
            "compressed-bad-utf8",
            frames_input(7 | COMPRESSION, true, &[2], &compressed_bad_utf8),
        ),
        (
            "compressed-bomb",
            frames_input(4 | COMPRESSION, true, &[9], &bomb),
        ),
        (
            "compressed-session",
            frames_input(6 | COMPRESSION, true, &[1, 40], &compressed_session),
        ),
    ]
}

const UPGRADE: &str =
    "GET /ws HTTP/1.1\r\nHost: localhost:8080\r\nConnection: keep-alive, Upgrade\r\n\
    Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://game.example\r\n\r\n";

/// Seeds for the `upgrade` target, named.
pub fn upgrade() -> Vec<(&'static str, Vec<u8>)> {
    let with = |settings: u8, read: u8, wire: &str| {
        let mut input = vec![settings, read];
        input.extend_from_slice(wire.as_bytes());
        input
    };
    let frames_after = format!("{UPGRADE}\u{1}\u{5}hello");
    vec![
        ("upgrade", with(1, 255, UPGRADE)),
        ("upgrade-split", with(0, 6, &frames_after)),
        ("upgrade-full", with(5, 30, UPGRADE)),
        (
            "upgrade-post",
            with(0, 255, &UPGRADE.replacen("GET", "POST", 1)),
        ),
        (
            "upgrade-v8",
            with(0, 255, &UPGRADE.replace("n: 13", "n: 8")),
        ),
        ("upgrade-lf", with(2, 255, &UPGRADE.replace("\r\n", "\n"))),
        ("page", with(0, 255, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
        (
            "stats",
            with(
                0,
                9,
                "HEAD /stats HTTP/1.0\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
            ),
        ),
        (
            "absolute",
            with(3, 255, &UPGRADE.replacen("/ws", "http://h/ws", 1)),
        ),
    ]
}
