//! Spans: the data model exporters receive, and the live handle applications hold.

mod handle;
mod model;
mod options;
mod usage;

pub use handle::Span;
pub use model::{
    AgentAttributes, Ancestor, EntityInfo, ExportedSpan, ModelAttributes, SpanAttributes,
    SpanError, SpanStatus, SpanType, ToolAttributes, TraceContext, WorkflowAttributes,
};
pub use options::{SpanOptions, TracingOptions};
pub use usage::{Cost, ExclusiveUsage, InputTokenDetails, OutputTokenDetails, Usage};
