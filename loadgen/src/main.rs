//! Placeholder: the load generator lands with its own issue.
fn main() {}
