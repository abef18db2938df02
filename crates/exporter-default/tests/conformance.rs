//! The conformance kit against `DefaultExporter` over SQLite files (and over
//! PostgreSQL when `AIOBS_TEST_POSTGRES_URL` is set; see `postgres_storage.rs`
//! for the rule that CI must set it).

#![cfg(feature = "sqlite")]

use std::sync::Arc;

use aiobs_conformance::{DeliveredItem, Destination, Harness, HarnessError, ItemKind};
use aiobs_core::ExportedSpan;
use aiobs_exporter_default::{DefaultExporter, SqliteStorage};

fn db_path(dest: &Destination) -> Result<std::path::PathBuf, HarnessError> {
    Ok(dest.scratch_dir()?.join("conformance.db"))
}

/// One store per scenario: every exporter made for it (durable replay makes
/// two) writes to the same file.
fn store(dest: &Destination) -> Result<Arc<SqliteStorage>, HarnessError> {
    let path = db_path(dest)?;
    let opened = dest.shared(move || {
        SqliteStorage::open(&path)
            .map(Arc::new)
            .map_err(|e| e.to_string())
    });
    opened.map_err(HarnessError::from)
}

/// Reads the tables directly, as a third party inspecting the file would.
fn probe(dest: &Destination) -> Result<Vec<DeliveredItem>, HarnessError> {
    store(dest)?; // make sure the schema exists even if nothing was written
    let conn = rusqlite::Connection::open(db_path(dest)?).map_err(HarnessError::new)?;
    let mut items = Vec::new();
    let mut spans = conn
        .prepare("SELECT phase, data FROM aiobs_spans")
        .map_err(HarnessError::new)?;
    let rows = spans
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .map_err(HarnessError::new)?;
    for row in rows {
        let (phase, data) = row.map_err(HarnessError::new)?;
        let s: ExportedSpan = serde_json::from_str(&data)?;
        items.push(
            DeliveredItem::span(s.span_id.to_string())
                .ended(phase == 2)
                .trace(s.trace_id.to_string())
                .parent(s.effective_parent().map(|p| p.to_string()))
                .name(s.name.to_string())
                .input(s.input.clone())
                .output(s.output.clone())
                .trace_claims(DeliveredItem::claims_of(&s)),
        );
    }
    for (table, kind) in [
        ("aiobs_logs", ItemKind::Log),
        ("aiobs_metrics", ItemKind::Metric),
        ("aiobs_scores", ItemKind::Score),
        ("aiobs_feedback", ItemKind::Feedback),
    ] {
        let mut st = conn
            .prepare(&format!("SELECT record_id, trace_id FROM {table}"))
            .map_err(HarnessError::new)?;
        let rows = st
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
            })
            .map_err(HarnessError::new)?;
        for row in rows {
            let (id, trace) = row.map_err(HarnessError::new)?;
            let mut item = DeliveredItem::record(kind, id);
            if let Some(t) = trace {
                let bytes: [u8; 16] = t
                    .as_slice()
                    .try_into()
                    .map_err(|_| HarnessError::new("bad trace id"))?;
                item = item.trace(format!("{:032x}", u128::from_be_bytes(bytes)));
            }
            items.push(item);
        }
    }
    Ok(items)
}

fn sqlite_harness() -> Harness {
    Harness::try_local(|dest| {
        let storage = store(dest)?;
        DefaultExporter::builder_shared(storage)
            .build()
            .map_err(HarnessError::new)
    })
    .probe(probe)
    .named("DefaultExporter(SQLite, batch-with-updates)")
}

aiobs_conformance::conformance_tests!(sqlite_harness);
