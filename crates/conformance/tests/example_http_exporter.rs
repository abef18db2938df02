//! A complete third-party HTTP exporter (tests/support/json_http.rs) run
//! through every scenario: what docs/conformance.md describes.

mod support;

aiobs_conformance::conformance_tests!(support::json_http::harness_with(
    support::json_http::Flaws::default()
));
