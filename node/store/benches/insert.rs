//! Placeholder until the store lands.
fn main() {}
