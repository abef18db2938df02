//! Exporters shared by the kit's own tests: a complete example HTTP exporter
//! (also the one `docs/conformance.md` walks through), a local JSON-lines
//! file exporter, a buffering exporter, and deliberately broken variants.

#![allow(dead_code, unreachable_pub)]

pub mod buffering;
pub mod json_http;
pub mod jsonl_file;
