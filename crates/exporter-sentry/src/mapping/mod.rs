//! aiobs spans → Sentry transactions and error events.
//!
//! A batch (as `Tracking` hands it over: gathered children with their root)
//! is cut into *segments*: each span goes with the highest of its ancestors
//! present in the batch. A segment headed by a root span is a complete
//! transaction (`contexts.trace` = the root, children in `spans[]`). A segment
//! whose head is not a root — its root is still open, ended in another
//! process, or was already sent — is a transaction of its own, headed by that
//! span, whose `parent_span_id` points at its parent: Sentry's trace view
//! nests it under that parent, as it does for a downstream service's
//! transaction. Each failed span also becomes an error event.

mod data;
mod error;
mod ops;

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use aiobs_core::{ExportedSpan, Release, SpanStatus, TrackedEvent};
use sentry::protocol::{
    ClientSdkInfo, ClientSdkPackage, Context, DynamicSamplingContext, Event, Span,
    SpanStatus as SentrySpanStatus, TraceContext, Transaction, User,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::SentryConfig;
use crate::exporter::NAME;

/// What one envelope carries.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    /// A transaction: a root with its children, or a detached segment.
    Transaction(Box<Transaction<'static>>),
    /// An error event linked to a failed span.
    Error(Box<Event<'static>>),
}

/// One envelope to send, and the batch items it carries.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub(crate) event_id: Uuid,
    pub(crate) payload: Payload,
    /// The envelope header's dynamic sampling context.
    pub(crate) trace: DynamicSamplingContext,
    /// Indices (in the slice passed to `map_batch`) of the spans it carries;
    /// for a transaction the head first (if `carries_head`), then its
    /// children in `spans[]` order.
    pub(crate) items: Vec<usize>,
    /// Whether `items[0]` is the head of the transaction (false for the
    /// second half of a split one, which repeats the head's context only).
    pub(crate) carries_head: bool,
}

/// Maps spans with the exporter's settings.
#[derive(Debug, Clone)]
pub(crate) struct Mapper {
    pub(crate) release: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) server_name: Option<String>,
    pub(crate) public_key: String,
    pub(crate) capture: bool,
}

impl Mapper {
    pub(crate) fn new(config: &SentryConfig) -> Self {
        Self {
            release: config.release.clone(),
            environment: config.environment.clone(),
            server_name: config.server_name.clone(),
            public_key: config.dsn.public_key().to_owned(),
            capture: config.capture_content,
        }
    }

    /// Cuts the ended spans among `items` into documents. Items that are not
    /// ended spans are returned as unmappable.
    pub(crate) fn map_batch(&self, items: &[TrackedEvent]) -> (Vec<Document>, Vec<usize>) {
        let mut spans: Vec<(usize, &ExportedSpan, &TrackedEvent)> = Vec::new();
        let mut other = Vec::new();
        for (i, t) in items.iter().enumerate() {
            match t.event.span() {
                Some(s) if s.is_ended() => spans.push((i, s, t)),
                _ => other.push(i),
            }
        }
        let present: HashMap<(aiobs_core::TraceId, aiobs_core::SpanId), usize> = spans
            .iter()
            .enumerate()
            .map(|(k, (_, s, _))| ((s.trace_id, s.span_id), k))
            .collect();
        // Segment head of each span: its highest ancestor present here, else itself.
        let mut segments: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (k, (_, s, _)) in spans.iter().enumerate() {
            let head = s
                .ancestry
                .iter()
                .map(|a| a.span_id)
                .chain(s.parent_span_id)
                .find_map(|id| present.get(&(s.trace_id, id)).copied())
                .unwrap_or(k);
            segments.entry(head).or_default().push(k);
        }
        let mut docs = Vec::new();
        for (head, members) in segments {
            let (_, head_span, head_tracked) = spans[head];
            let children: Vec<&ExportedSpan> = members
                .iter()
                .filter(|&&k| k != head)
                .map(|&k| spans[k].1)
                .collect();
            let detached = detached_reason(head_span, head_tracked);
            let txn = self.transaction(head_span, &children, detached);
            let name = txn.name.clone();
            let items_of: Vec<usize> = std::iter::once(spans[head].0)
                .chain(members.iter().filter(|&&k| k != head).map(|&k| spans[k].0))
                .collect();
            let mut errors = Vec::new();
            for &k in &members {
                let (i, s, _) = spans[k];
                if let Some(e) = failure(s) {
                    let trace = self.trace_context(s);
                    let mut event = error::error_event(s, &e, trace, name.clone());
                    self.decorate_event(&mut event, s);
                    event.event_id = event_id("error", s);
                    errors.push(Document {
                        event_id: event.event_id,
                        trace: self.dsc(s, name.clone()),
                        payload: Payload::Error(Box::new(event)),
                        items: vec![i],
                        carries_head: false,
                    });
                }
            }
            // The sampling context names the trace's head transaction: not
            // ours to claim when this process continues an upstream trace.
            let head_name = name.clone().filter(|_| head_span.is_trace_root());
            docs.push(Document {
                event_id: txn.event_id,
                trace: self.dsc(head_span, head_name),
                payload: Payload::Transaction(Box::new(txn)),
                items: items_of,
                carries_head: true,
            });
            docs.extend(errors);
        }
        (docs, other)
    }

    /// The transaction headed by `head`.
    fn transaction(
        &self,
        head: &ExportedSpan,
        children: &[&ExportedSpan],
        detached: Option<&'static str>,
    ) -> Transaction<'static> {
        let mut contexts = BTreeMap::new();
        let mut trace = self.trace_context(head);
        if let Some(reason) = detached {
            trace
                .data
                .insert("aiobs.segment".into(), json!(format!("detached:{reason}")));
        }
        contexts.insert("trace".to_owned(), Context::Trace(Box::new(trace)));
        if let Some(meta) = metadata_context(head) {
            contexts.insert("metadata".to_owned(), Context::Other(meta));
        }
        let name = sentry_directive(head, "transaction")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| head.name.to_string());
        let spans: Vec<Span> = children.iter().map(|c| self.span(c)).collect();
        let mut txn = Transaction {
            event_id: event_id("transaction", head),
            name: Some(name),
            release: self.release.clone().map(Into::into),
            environment: self.environment.clone().map(Into::into),
            user: user(head),
            tags: tags(head),
            sdk: Some(sdk()),
            timestamp: Some(end_of(head)),
            start_timestamp: start_of(head),
            spans,
            contexts,
            server_name: self.server_name.clone().map(Into::into),
            ..Transaction::default()
        };
        if let Some(reason) = detached {
            txn.tags
                .insert("aiobs.segment".into(), format!("detached:{reason}"));
        }
        txn
    }

    /// `contexts.trace` for a span: ids, op, description, status, data.
    fn trace_context(&self, s: &ExportedSpan) -> TraceContext {
        TraceContext {
            span_id: span_id(s.span_id),
            trace_id: trace_id(s.trace_id),
            parent_span_id: s.effective_parent().map(span_id),
            description: Some(ops::description(s)),
            status: Some(status(s)),
            origin: Some("auto.ai.aiobs".into()),
            data: data::span_data(s, self.capture).into_iter().collect(),
            op: Some(ops::op(s)),
        }
    }

    /// One child in `spans[]`.
    fn span(&self, s: &ExportedSpan) -> Span {
        let mut tags = sentry::protocol::Map::new();
        let status = status(s);
        if status != SentrySpanStatus::Ok {
            tags.insert("status".to_owned(), status.to_string());
        }
        Span {
            span_id: span_id(s.span_id),
            trace_id: trace_id(s.trace_id),
            parent_span_id: s.effective_parent().map(span_id),
            description: Some(ops::description(s)),
            timestamp: Some(end_of(s)),
            start_timestamp: start_of(s),
            status: Some(status),
            tags,
            data: data::span_data(s, self.capture).into_iter().collect(),
            op: Some(ops::op(s)),
            ..Span::default()
        }
    }

    /// User, tags, release, environment and server name on an error event.
    fn decorate_event(&self, e: &mut Event<'static>, s: &ExportedSpan) {
        e.release = self.release.clone().map(Into::into);
        e.environment = self.environment.clone().map(Into::into);
        e.server_name = self.server_name.clone().map(Into::into);
        e.user = user(s);
        e.tags = tags(s);
        e.sdk = Some(std::borrow::Cow::Owned(sdk_info()));
        if let Some(meta) = metadata_context(s) {
            e.contexts
                .insert("metadata".to_owned(), Context::Other(meta));
        }
    }

    /// The envelope header's dynamic sampling context (aiobs already sampled:
    /// whatever reaches an exporter was kept, so `sampled` is true at rate 1).
    fn dsc(&self, s: &ExportedSpan, transaction: Option<String>) -> DynamicSamplingContext {
        let mut d = DynamicSamplingContext::new()
            .with_trace_id(trace_id(s.trace_id))
            .with_public_key(self.public_key.clone())
            .with_sample_rate(1.0)
            .with_sampled(true);
        if let Some(r) = &self.release {
            d = d.with_release(r.clone());
        }
        if let Some(e) = &self.environment {
            d = d.with_environment(e.clone());
        }
        if let Some(t) = transaction {
            d = d.with_transaction(t);
        }
        d
    }
}

/// Why a segment head that is not a root is sent as its own transaction.
fn detached_reason(head: &ExportedSpan, t: &TrackedEvent) -> Option<&'static str> {
    if head.is_root {
        return None;
    }
    Some(match t.release {
        _ if t.after_root_end => "late_child",
        Some(Release::Flush) => "root_not_ended",
        Some(Release::OverLimit) => "over_limit",
        Some(Release::Expired) => "expired",
        _ => "root_not_in_batch",
    })
}

/// The error to report for a span, if it failed.
fn failure(s: &ExportedSpan) -> Option<aiobs_core::SpanError> {
    match (&s.error, s.status) {
        (Some(e), _) => Some((**e).clone()),
        (None, SpanStatus::Error) => Some(aiobs_core::SpanError::new(format!(
            "span `{}` failed",
            s.name
        ))),
        _ => None,
    }
}

/// A stable event id per span and kind: a retried envelope keeps its id, and
/// Sentry drops duplicates of an event id.
fn event_id(kind: &str, s: &ExportedSpan) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("aiobs-sentry:{kind}:{}:{}", s.trace_id, s.span_id).as_bytes(),
    )
}

fn span_id(id: aiobs_core::SpanId) -> sentry::protocol::SpanId {
    sentry::protocol::SpanId::from(id.to_bytes())
}

fn trace_id(id: aiobs_core::TraceId) -> sentry::protocol::TraceId {
    sentry::protocol::TraceId::from(id.to_bytes())
}

/// Start and end in whole microseconds, end never before start. The
/// `sentry` crate writes starts as float seconds and ends as RFC 3339; Relay
/// reads both at microsecond precision and refuses a transaction whose end
/// comes before its start, which sub-microsecond spans would otherwise hit.
fn times(s: &ExportedSpan) -> (SystemTime, SystemTime) {
    let micros = |t: chrono::DateTime<chrono::Utc>| {
        SystemTime::UNIX_EPOCH
            + std::time::Duration::from_micros(u64::try_from(t.timestamp_micros()).unwrap_or(0))
    };
    let start = micros(s.start_time);
    let end = micros(s.end_time.unwrap_or(s.start_time)).max(start);
    (start, end)
}

fn end_of(s: &ExportedSpan) -> SystemTime {
    times(s).1
}

fn start_of(s: &ExportedSpan) -> SystemTime {
    times(s).0
}

fn status(s: &ExportedSpan) -> SentrySpanStatus {
    match s.status {
        SpanStatus::Error => SentrySpanStatus::InternalError,
        _ if s.error.is_some() => SentrySpanStatus::InternalError,
        // Running never reaches here (ended spans only); Dropped is ended by
        // RAII, not a failure (marked `aiobs.ended_by_drop` in data).
        _ => SentrySpanStatus::Ok,
    }
}

fn user(s: &ExportedSpan) -> Option<User> {
    s.user_id.as_ref().map(|id| User {
        id: Some(id.to_string()),
        ..User::default()
    })
}

/// Sentry tags are key → value strings: a trace tag `key:value` or
/// `key=value` becomes that pair, a bare tag `t` becomes `t: "true"`;
/// `metadata.sentry.tags` (an object of strings) is added as is.
fn tags(s: &ExportedSpan) -> sentry::protocol::Map<String, String> {
    let mut out = sentry::protocol::Map::new();
    for t in s.tags.iter() {
        match t.split_once([':', '=']) {
            Some((k, v)) if !k.trim().is_empty() => {
                out.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            _ => {
                out.insert(t.clone(), "true".to_owned());
            }
        }
    }
    if let Some(Value::Object(extra)) = sentry_directive(s, "tags") {
        for (k, v) in extra {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.insert(k.clone(), v);
        }
    }
    out
}

/// `metadata.sentry.<key>`: per-span settings for this exporter.
fn sentry_directive<'a>(s: &'a ExportedSpan, key: &str) -> Option<&'a Value> {
    s.exporter_metadata(NAME).and_then(|m| m.get(key))
}

/// The span's metadata (without the `sentry` directives) and its trace tags
/// as the `metadata` context.
fn metadata_context(s: &ExportedSpan) -> Option<BTreeMap<String, Value>> {
    let mut m: BTreeMap<String, Value> = s
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != NAME)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !s.tags.is_empty() {
        m.insert("tags".into(), json!(&*s.tags));
    }
    (!m.is_empty()).then_some(m)
}

fn sdk_info() -> ClientSdkInfo {
    ClientSdkInfo {
        name: "aiobs.rust".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        integrations: Vec::new(),
        packages: vec![ClientSdkPackage {
            name: "cargo:aiobs-exporter-sentry".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }],
    }
}

fn sdk() -> std::borrow::Cow<'static, ClientSdkInfo> {
    std::borrow::Cow::Owned(sdk_info())
}
