//! A complete local exporter (tests/support/jsonl_file.rs): the kit injects
//! faults by wrapping it, and reads the file back to check what arrived.

mod support;

aiobs_conformance::conformance_tests!(support::jsonl_file::harness);
