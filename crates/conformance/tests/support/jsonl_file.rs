//! A small local exporter: appends every event as one JSON line to a file,
//! synced to disk before `export` returns. Its probe reads the file back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use aiobs_conformance::{DeliveredItem, Destination, Harness, HarnessError};
use aiobs_core::{
    BatchPolicy, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext, RetryPolicy,
    Signals, async_trait,
};
use serde_json::Value;

/// Appends events to a JSON-lines file.
#[derive(Debug)]
pub struct JsonLinesExporter {
    path: PathBuf,
}

impl JsonLinesExporter {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn append(&self, batch: &ExportBatch) -> std::io::Result<()> {
        let mut text = Vec::new();
        for event in batch {
            serde_json::to_writer(&mut text, &**event)?;
            text.push(b'\n');
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&text)?;
        file.sync_data()
    }
}

#[async_trait]
impl Exporter for JsonLinesExporter {
    fn name(&self) -> &str {
        "jsonl-file"
    }
    fn signals(&self) -> Signals {
        Signals::ALL_SPANS
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default()
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    async fn init(&self, _ctx: &ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        // A full disk or a vanished directory may pass: retry rather than lose.
        self.append(batch)
            .map(|()| ExportOutcome::all_delivered())
            .map_err(|e| ExportError::transient("could not append to the file").with_source(e))
    }
    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        // Every export is on disk before it returns.
        Ok(())
    }
    async fn shutdown(&self, _deadline: Instant) -> Result<(), ExportError> {
        Ok(())
    }
}

fn file(dest: &Destination) -> Result<PathBuf, HarnessError> {
    Ok(dest.scratch_dir()?.join("events.jsonl"))
}

fn read(path: &Path) -> Result<Vec<DeliveredItem>, HarnessError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let mut items = Vec::new();
    for line in text.lines() {
        let event: Value = serde_json::from_str(line)?;
        items.push(super::json_http::decode_event(&event)?);
    }
    Ok(items)
}

/// The harness: every exporter of a scenario appends to the scenario's file.
pub fn harness() -> Harness {
    Harness::try_local(|dest| file(dest).map(JsonLinesExporter::new))
        .probe(|dest| read(&file(dest)?))
        .named("JsonLinesExporter")
}
