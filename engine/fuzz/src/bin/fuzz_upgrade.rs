//! afl-fuzz target: the HTTP upgrade checks and the request-head scan (see
//! `ringecho_fuzz::upgrade`). Build with `cargo afl build --features afl`.

fn main() {
    afl::fuzz!(|data: &[u8]| ringecho_fuzz::upgrade::check(data));
}
