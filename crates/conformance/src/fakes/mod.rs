//! Fake exporters: [`InMemoryExporter`] (core's, re-exported: it keeps its
//! records after shutdown), [`FaultyExporter`], which wraps any exporter and
//! injects failures chosen per `export` call, and [`BlockingExporter`], which
//! blocks its thread in every call.

mod blocking;
mod faulty;

pub use aiobs_core::InMemoryExporter;
pub use blocking::BlockingExporter;
pub use faulty::{Decision, ExportCall, FaultyExporter};
