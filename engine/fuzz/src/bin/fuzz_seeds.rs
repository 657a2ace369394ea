//! Writes the seed inputs of every target (`ringecho_fuzz::seeds`) into
//! `DIR/frames` and `DIR/upgrade`, where afl-fuzz can start from them.
//! Usage: `fuzz_seeds DIR`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: fuzz_seeds DIR (writes DIR/frames and DIR/upgrade)");
        std::process::exit(2);
    };
    for (target, seeds) in [
        ("frames", ringecho_fuzz::seeds::frames()),
        ("upgrade", ringecho_fuzz::seeds::upgrade()),
    ] {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir)?;
        for (name, bytes) in seeds {
            std::fs::write(target_dir.join(format!("seed-{name}")), bytes)?;
        }
        println!("wrote {target} seeds to {}", target_dir.display());
    }
    Ok(())
}
