//! Placeholder: replaced by the benchmark of sequoia's raw per-entry cost (issue 7).
fn main() {}
