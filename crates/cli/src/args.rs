//! The command line: commands, options and the parsers that turn malformed
//! values into usage errors.

use std::time::Duration;

use aiobs_core::{SpanType, TraceId};
use aiobs_exporter_default::{Cursor, DatabaseUrl, TraceStatus};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Args, Parser, Subcommand};

/// aiobs: observability for AI agents. Traces agent runs, model calls and
/// tool calls into a local SQLite file (or PostgreSQL) and shows them.
#[derive(Debug, Parser)]
#[command(name = "aiobs", version, about, long_about = None)]
pub(crate) struct Cli {
    /// The store: a SQLite file path, `sqlite://<path>`, `sqlite::memory:` or `postgres://…`.
    #[arg(
        long,
        global = true,
        env = "AIOBS_DATABASE_URL",
        default_value = aiobs_exporter_default::DEFAULT_DATABASE,
        value_parser = parse_db
    )]
    pub(crate) db: DatabaseUrl,

    #[command(subcommand)]
    pub(crate) command: Command,
}

// Parsed once per run: the size of the larger variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Traces a simulated support-agent run into the store and prints its tree
    /// and the flush report. Exits non-zero if any event failed or was dropped.
    Demo(DemoArgs),
    /// Lists, shows and prunes stored traces.
    #[command(subcommand)]
    Traces(TracesCommand),
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How long the final flush may take (e.g. `30s`, `2m`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) flush_timeout: Duration,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum TracesCommand {
    /// Lists traces, newest first.
    List(ListArgs),
    /// Shows one trace as an indented tree.
    Show(ShowArgs),
    /// Deletes traces (and their logs, scores, feedback) older than a duration.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Root started at or after: a duration ago (`2h`, `7d`) or a time (`2026-06-01`, RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub(crate) since: Option<DateTime<Utc>>,
    /// Root started before: a duration ago or a time.
    #[arg(long, value_parser = parse_time)]
    pub(crate) until: Option<DateTime<Utc>>,
    /// Root span name (exact).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// A span of this type in the trace (`tool_call`, `model_generation`, …).
    #[arg(long = "type", value_parser = parse_span_type)]
    pub(crate) span_type: Option<SpanType>,
    /// A span whose entity has this id.
    #[arg(long)]
    pub(crate) entity_id: Option<String>,
    /// A span whose entity has this name.
    #[arg(long)]
    pub(crate) entity_name: Option<String>,
    /// The trace's user id.
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// The trace's session id.
    #[arg(long)]
    pub(crate) session: Option<String>,
    /// A tag the trace carries (repeat: all must match).
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// Trace status: ok, error or running.
    #[arg(long, value_parser = parse_status)]
    pub(crate) status: Option<TraceStatus>,
    /// Text contained in the name of any span (case-insensitive).
    #[arg(long)]
    pub(crate) search: Option<String>,
    /// Traces per page (1–1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub(crate) limit: u16,
    /// Continue a listing (the cursor a previous page printed).
    #[arg(long, value_parser = parse_cursor)]
    pub(crate) cursor: Option<Cursor>,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The trace id (32 hex digits).
    #[arg(value_parser = parse_trace_id)]
    pub(crate) trace_id: TraceId,
    /// Print JSON (every span complete).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Delete traces whose spans all started longer ago than this (`30d`, `12h`).
    #[arg(long, value_parser = parse_duration)]
    pub(crate) older_than: Duration,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_db(s: &str) -> Result<DatabaseUrl, String> {
    s.parse()
        .map_err(|e: aiobs_exporter_default::StorageError| e.message().to_owned())
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}: expected a duration such as 30s, 15m, 12h or 30d"))
}

/// A duration ago, an RFC 3339 time, or a date (midnight UTC).
pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .ok_or_else(|| format!("invalid date {s:?}"));
    }
    let ago = humantime::parse_duration(s).map_err(|_| {
        format!(
            "{s:?} is neither a duration ago (2h, 7d) nor a time (2026-06-01, 2026-06-01T12:00:00Z)"
        )
    })?;
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .ok_or_else(|| format!("{s:?} reaches back too far"))
}

fn parse_span_type(s: &str) -> Result<SpanType, String> {
    SpanType::parse(s.trim()).ok_or_else(|| {
        let all: Vec<&str> = SpanType::ALL.iter().map(|t| t.as_str()).collect();
        format!("unknown span type {s:?}; one of: {}", all.join(", "))
    })
}

fn parse_status(s: &str) -> Result<TraceStatus, String> {
    s.parse()
}

fn parse_trace_id(s: &str) -> Result<TraceId, String> {
    s.trim().parse().map_err(|e| format!("{e}"))
}

fn parse_cursor(s: &str) -> Result<Cursor, String> {
    s.parse()
        .map_err(|e: aiobs_exporter_default::StorageError| e.message().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_accept_durations_dates_and_rfc3339() {
        let before = Utc::now();
        let t = parse_time("2h").unwrap();
        assert!(t <= before - chrono::Duration::hours(2) + chrono::Duration::seconds(1));
        assert_eq!(
            parse_time("2026-06-01").unwrap().to_rfc3339(),
            "2026-06-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("2026-06-01T12:30:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-06-01T10:30:00+00:00"
        );
        assert!(parse_time("yesterday-ish").is_err());
    }

    #[test]
    fn malformed_values_are_refused() {
        assert!(parse_duration("30 parsecs").is_err());
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert!(parse_span_type("tool").is_err());
        assert!(parse_status("fine").is_err());
        assert!(parse_trace_id("abc").is_err());
        assert!(parse_cursor("nope").is_err());
        assert!(parse_db("mysql://x").is_err());
    }
}
