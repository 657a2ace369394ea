//! Placeholder main until the sweep lands.
fn main() {}
