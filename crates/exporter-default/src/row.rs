//! The columns both backends derive from a span, and the conversions between
//! core ids/times and what the databases store.
//!
//! Each row keeps the whole record as JSON (`data`) for a faithful read-back;
//! the other columns exist to filter, order and aggregate.

// Each backend uses the part it needs.
#![cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]

use std::borrow::Cow;

use aiobs_core::{SpanId, SpanStatus, TraceId};
use chrono::{DateTime, Utc};

use crate::batch::SpanWrite;
use crate::error::StorageError;

/// The indexed and aggregated columns of one span row. Text columns hold no
/// NUL characters (SQLite's string functions stop at one, PostgreSQL refuses
/// them): they become U+FFFD there, while `data` keeps them.
pub(crate) struct SpanColumns<'a> {
    pub(crate) trace_id: [u8; 16],
    pub(crate) span_id: i64,
    pub(crate) parent_span_id: Option<i64>,
    pub(crate) phase: i16,
    pub(crate) name: Cow<'a, str>,
    pub(crate) span_type: &'static str,
    pub(crate) status: &'static str,
    pub(crate) is_root: bool,
    pub(crate) start_time: DateTime<Utc>,
    pub(crate) end_time: Option<DateTime<Utc>>,
    pub(crate) user_id: Option<Cow<'a, str>>,
    pub(crate) session_id: Option<Cow<'a, str>>,
    pub(crate) entity_type: Option<Cow<'a, str>>,
    pub(crate) entity_id: Option<Cow<'a, str>>,
    pub(crate) entity_name: Option<Cow<'a, str>>,
    /// Tags as a JSON array; `None` when there are none.
    pub(crate) tags: Option<String>,
    pub(crate) input_tokens: Option<i64>,
    pub(crate) output_tokens: Option<i64>,
    pub(crate) cached_tokens: Option<i64>,
}

impl<'a> SpanColumns<'a> {
    pub(crate) fn of(w: &'a SpanWrite) -> Self {
        let s = &*w.span;
        // Only billable usage is aggregated (core's one rule: a model span
        // with no model ancestor), so a trace's totals never count the same
        // tokens twice; each span's own usage stays in `data`.
        let usage = s.billable_usage();
        let entity = s.entity.as_deref();
        Self {
            trace_id: s.trace_id.to_bytes(),
            span_id: span_to_i64(s.span_id),
            parent_span_id: s.parent_span_id.map(span_to_i64),
            phase: w.phase(),
            name: without_nul(&s.name),
            span_type: s.span_type.as_str(),
            status: status_str(s.status),
            is_root: s.is_root,
            start_time: s.start_time,
            end_time: s.end_time,
            user_id: s.user_id.as_deref().map(without_nul),
            session_id: s.session_id.as_deref().map(without_nul),
            entity_type: entity.map(|e| without_nul(&e.entity_type)),
            entity_id: entity.map(|e| without_nul(&e.id)),
            entity_name: entity.and_then(|e| e.name.as_deref()).map(without_nul),
            tags: (!s.tags.is_empty())
                .then(|| serde_json::to_string(&*s.tags).unwrap_or_else(|_| "[]".into())),
            input_tokens: usage.map(|u| clamp_i64(u.input_tokens)),
            output_tokens: usage.map(|u| clamp_i64(u.output_tokens)),
            cached_tokens: usage.and_then(|u| u.input_details.cache_read.map(clamp_i64)),
        }
    }
}

/// The stored name of a span status.
pub(crate) fn status_str(s: SpanStatus) -> &'static str {
    match s {
        SpanStatus::Running => "running",
        SpanStatus::Ok => "ok",
        SpanStatus::Error => "error",
        SpanStatus::Dropped => "dropped",
        _ => "unknown",
    }
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Span ids are stored as the signed integer with the same 64 bits.
pub(crate) fn span_to_i64(id: SpanId) -> i64 {
    id.to_u64() as i64
}

pub(crate) fn span_from_i64(v: i64) -> Result<SpanId, StorageError> {
    SpanId::from_u64(v as u64).ok_or_else(|| StorageError::corrupt("zero span id"))
}

/// Trace ids are stored as their 16 big-endian bytes.
pub(crate) fn trace_from_bytes(b: &[u8]) -> Result<TraceId, StorageError> {
    let arr: [u8; 16] = b
        .try_into()
        .map_err(|_| StorageError::corrupt(format!("trace id of {} bytes", b.len())))?;
    TraceId::from_u128(u128::from_be_bytes(arr))
        .ok_or_else(|| StorageError::corrupt("zero trace id"))
}

/// Microseconds since the epoch (SQLite's time columns).
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> Result<DateTime<Utc>, StorageError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| StorageError::corrupt(format!("timestamp {us} out of range")))
}

/// NUL characters become U+FFFD in indexed text columns (see [`SpanColumns`]).
pub(crate) fn without_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Parses a stored JSON record.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &str,
    text: &str,
) -> Result<T, StorageError> {
    serde_json::from_str(text).map_err(|e| {
        StorageError::corrupt(format!("stored {what} is not valid: {e}")).with_source(e)
    })
}

/// A metric as stored JSON. JSON has no NaN or infinity, so a non-finite
/// value is kept as the string `"NaN"`, `"inf"` or `"-inf"` rather than lost.
pub(crate) fn metric_json(m: &aiobs_core::MetricRecord) -> Result<String, String> {
    let mut v = serde_json::to_value(m).map_err(|e| format!("cannot serialise: {e}"))?;
    if !m.value.is_finite()
        && let Some(obj) = v.as_object_mut()
    {
        let repr = if m.value.is_nan() {
            "NaN"
        } else if m.value > 0.0 {
            "inf"
        } else {
            "-inf"
        };
        obj.insert("value".into(), repr.into());
    }
    serde_json::to_string(&v).map_err(|e| format!("cannot serialise: {e}"))
}

/// The stored name of a log level.
pub(crate) fn level_str(l: aiobs_core::LogLevel) -> &'static str {
    use aiobs_core::LogLevel;
    match l {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
        _ => "unknown",
    }
}

/// The stored name of a metric kind.
pub(crate) fn metric_kind_str(k: aiobs_core::MetricKind) -> &'static str {
    use aiobs_core::MetricKind;
    match k {
        MetricKind::Counter => "counter",
        MetricKind::Gauge => "gauge",
        MetricKind::Histogram => "histogram",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_survive_the_round_trip() {
        let big = SpanId::from_u64(u64::MAX).unwrap();
        assert_eq!(span_from_i64(span_to_i64(big)).unwrap(), big);
        let t = TraceId::from_u128(u128::MAX - 3).unwrap();
        assert_eq!(trace_from_bytes(&t.to_bytes()).unwrap(), t);
        assert!(trace_from_bytes(&[1, 2]).is_err());
        assert_eq!(without_nul("a\0b"), "a\u{fffd}b");
    }
}
