//! The `aiobs` command-line tool (under construction).
fn main() {}
