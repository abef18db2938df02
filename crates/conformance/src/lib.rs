//! aiobs-conformance (under construction).
