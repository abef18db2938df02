//! Options for starting spans and continuing traces.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use super::model::{EntityInfo, SpanAttributes, SpanType};
use crate::id::{IdError, SpanId, TraceId, TraceParent};
use crate::payload::{SerializationLimits, capture};

/// Trace-level context for a root span: continue an upstream trace, and tag
/// the whole trace.
///
/// Everything here applies to every span of the trace and travels with
/// [`Span::export`](crate::Span::export) to a rebuilt span in another
/// process ([`ExportedSpan::trace_context`](crate::ExportedSpan::trace_context)).
/// A trace continued from upstream (`trace_id`, `parent_span_id` or
/// `traceparent` given) is marked so: its spans never claim trace-level
/// fields (name, input, output) at a destination.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TracingOptions {
    /// Use this trace id instead of a fresh one (continues that trace).
    pub trace_id: Option<TraceId>,
    /// The upstream span this root continues.
    pub parent_span_id: Option<SpanId>,
    /// The upstream sampling decision (from `traceparent`).
    pub parent_sampled: Option<bool>,
    /// Tags for the whole trace.
    pub tags: Vec<String>,
    /// Metadata merged into every span of the trace (span keys win).
    pub metadata: Map<String, Value>,
    /// End user.
    pub user_id: Option<String>,
    /// Conversation or session.
    pub session_id: Option<String>,
    /// Never record inputs in this trace, in this process or after a rebuild.
    pub hide_input: bool,
    /// Never record outputs in this trace, in this process or after a rebuild.
    pub hide_output: bool,
}

impl TracingOptions {
    /// Empty options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Continues the trace of a W3C `traceparent` header.
    ///
    /// A malformed header is **ignored with a logged warning** (a new trace
    /// starts): telemetry must not fail a request. Use
    /// [`TracingOptions::try_traceparent`] to get the error instead.
    #[must_use]
    pub fn traceparent(self, header: &str) -> Self {
        match self.clone().try_traceparent(header) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(target: "aiobs", error = %e, "ignoring invalid traceparent; starting a new trace");
                self
            }
        }
    }

    /// Continues the trace of a W3C `traceparent` header, or says why not.
    pub fn try_traceparent(mut self, header: &str) -> Result<Self, IdError> {
        let tp = TraceParent::parse(header)?;
        self.trace_id = Some(tp.trace_id);
        self.parent_span_id = Some(tp.parent_span_id);
        self.parent_sampled = Some(tp.sampled);
        Ok(self)
    }

    /// Continues trace `trace_id` (32 hex digits), under `parent_span_id` (16 hex) if given.
    /// Invalid ids are an error.
    pub fn try_continue(
        mut self,
        trace_id: &str,
        parent_span_id: Option<&str>,
    ) -> Result<Self, IdError> {
        self.trace_id = Some(trace_id.parse()?);
        self.parent_span_id = parent_span_id.map(str::parse).transpose()?;
        Ok(self)
    }

    /// Uses this trace id: continues the trace of that id (without a known
    /// parent span).
    #[must_use]
    pub fn trace_id(mut self, id: TraceId) -> Self {
        self.trace_id = Some(id);
        self
    }
    /// Sets the upstream parent span.
    #[must_use]
    pub fn parent_span_id(mut self, id: SpanId) -> Self {
        self.parent_span_id = Some(id);
        self
    }
    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
    /// Sets the user id.
    #[must_use]
    pub fn user_id(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }
    /// Sets the session id.
    #[must_use]
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }
    /// Adds trace-level metadata.
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        self.metadata.insert(
            key.into(),
            capture(&value, &SerializationLimits::default()).value,
        );
        self
    }
    /// Hides inputs: no span of the trace records one, even after export and rebuild.
    #[must_use]
    pub fn hide_input(mut self) -> Self {
        self.hide_input = true;
        self
    }
    /// Hides outputs: no span of the trace records one, even after export and rebuild.
    #[must_use]
    pub fn hide_output(mut self) -> Self {
        self.hide_output = true;
        self
    }
}

/// How to start a span.
#[derive(Debug, Clone)]
#[must_use]
#[non_exhaustive]
pub struct SpanOptions {
    /// Span name (a `&'static str` costs no allocation).
    pub name: Cow<'static, str>,
    /// Span type.
    pub span_type: SpanType,
    /// Typed attributes.
    pub attributes: SpanAttributes,
    /// Input.
    pub input: Option<Value>,
    /// Metadata.
    pub metadata: Map<String, Value>,
    /// Entity that ran.
    pub entity: Option<Arc<EntityInfo>>,
    /// Trace context (root spans only; ignored on children).
    pub tracing: Option<Box<TracingOptions>>,
    /// Payload fields cut while capturing.
    pub(crate) truncations: u32,
}

impl SpanOptions {
    /// A span named `name` of type `span_type`.
    pub fn new(name: impl Into<Cow<'static, str>>, span_type: SpanType) -> Self {
        Self {
            name: name.into(),
            span_type,
            attributes: SpanAttributes::None,
            input: None,
            metadata: Map::new(),
            entity: None,
            tracing: None,
            truncations: 0,
        }
    }
    /// Sets typed attributes.
    pub fn attributes(mut self, attributes: impl Into<SpanAttributes>) -> Self {
        self.attributes = attributes.into();
        self
    }
    /// Sets the input (captured now, bounded by the default limits and later by the
    /// pipeline's own limits).
    pub fn input(mut self, input: impl Serialize) -> Self {
        let c = capture(&input, &SerializationLimits::default());
        self.truncations += c.truncations;
        self.input = Some(c.value);
        self
    }
    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        let c = capture(&value, &SerializationLimits::default());
        self.truncations += c.truncations;
        self.metadata.insert(key.into(), c.value);
        self
    }
    /// Sets the entity.
    pub fn entity(
        mut self,
        entity_type: impl Into<String>,
        id: impl Into<String>,
        name: Option<String>,
    ) -> Self {
        self.entity = Some(Arc::new(EntityInfo {
            entity_type: entity_type.into(),
            id: id.into(),
            name,
        }));
        self
    }
    /// Sets the trace context (for root spans).
    pub fn tracing(mut self, tracing: TracingOptions) -> Self {
        self.tracing = Some(Box::new(tracing));
        self
    }
}
