//! Fake exporters: [`InMemoryExporter`] (core's, re-exported: it keeps its
//! records after shutdown) and [`FaultyExporter`], which wraps any exporter
//! and injects failures chosen per `export` call.

mod faulty;

pub use aiobs_core::InMemoryExporter;
pub use faulty::{Decision, ExportCall, FaultyExporter};
