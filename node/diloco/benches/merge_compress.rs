//! Placeholder until the merge/compression bench lands.
fn main() {}
