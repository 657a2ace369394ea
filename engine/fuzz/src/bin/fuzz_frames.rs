//! afl-fuzz target: the io_uring path's frame decoder and echo planning
//! (see `ringecho_fuzz::frames`). Build with `cargo afl build --features afl`.

fn main() {
    afl::fuzz!(|data: &[u8]| ringecho_fuzz::frames::check(data));
}
