//! Replays the committed, minimised corpus of every target (and the seeds
//! it grew from) through the harnesses under plain `cargo test`: each input
//! afl-fuzz found interesting stays a regression test, without AFL++.

use std::path::Path;

/// Runs `check` on every file in `engine/fuzz/corpus/<target>`; returns
/// how many there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let input = std::fs::read(&path).expect("corpus file");
        let outcome = std::panic::catch_unwind(|| check(&input));
        assert!(outcome.is_ok(), "{} broke an invariant", path.display());
        count += 1;
    }
    count
}

#[test]
fn frames_corpus_holds() {
    let count = replay("frames", ringecho_fuzz::frames::check);
    assert!(
        count >= 50,
        "only {count} frames inputs: the corpus is missing"
    );
    for (name, seed) in ringecho_fuzz::seeds::frames() {
        let outcome = std::panic::catch_unwind(|| ringecho_fuzz::frames::check(&seed));
        assert!(outcome.is_ok(), "seed {name} broke an invariant");
    }
}

#[test]
fn upgrade_corpus_holds() {
    let count = replay("upgrade", ringecho_fuzz::upgrade::check);
    assert!(
        count >= 50,
        "only {count} upgrade inputs: the corpus is missing"
    );
    for (name, seed) in ringecho_fuzz::seeds::upgrade() {
        let outcome = std::panic::catch_unwind(|| ringecho_fuzz::upgrade::check(&seed));
        assert!(outcome.is_ok(), "seed {name} broke an invariant");
    }
}
