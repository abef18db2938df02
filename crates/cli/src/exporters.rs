//! Exporters besides the store, for `aiobs demo`.
//!
//! This is the place where exporters configured by their vendors'
//! environment variables (DESIGN.md §7: `LANGFUSE_*`, `LANGSMITH_*`,
//! `SENTRY_DSN`, `OTEL_EXPORTER_OTLP_*`, `AIOBS_CLOUD_*`) join the demo,
//! each through its crate's `from_env()`. None is wired yet: the demo writes
//! to the store only.

use std::sync::Arc;

use aiobs_core::Exporter;

/// An exporter, and a line saying which environment variables enabled it.
pub(crate) type Configured = (Arc<dyn Exporter>, String);

/// The extra exporters the environment asks for; an `Err` when one is
/// configured but cannot be built (never a silent no-op).
pub(crate) fn from_env() -> Result<Vec<Configured>, String> {
    Ok(Vec::new())
}
