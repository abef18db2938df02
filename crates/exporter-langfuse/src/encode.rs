//! The wire formats Langfuse takes, encoded from the mapped model
//! ([`crate::mapping`]): OTLP protobuf for `/api/public/otel/v1/traces` with
//! scores as JSON for `/api/public/scores` (what current Langfuse SDKs send),
//! and the legacy `/api/public/ingestion` batch. The request shapes follow
//! the official clients' recordings (`tests/fixtures/`).

pub(crate) mod ingestion;
pub(crate) mod otlp;
pub(crate) mod scores;

use chrono::{DateTime, Utc};

/// ISO 8601 with microseconds and `Z`, as Langfuse's SDKs write times.
pub(crate) fn iso_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
