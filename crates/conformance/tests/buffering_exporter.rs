//! An exporter that buffers like a vendor SDK and delivers on flush passes
//! every scenario.

mod support;

aiobs_conformance::conformance_tests!(support::buffering::buffering);
