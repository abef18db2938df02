//! End-to-end scenarios across crates live in this package's `tests/` folder.
