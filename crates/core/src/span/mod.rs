//! Spans: the data model exporters receive, and the live handle applications hold.

mod handle;
mod model;
mod options;

pub use handle::Span;
pub use model::{
    AgentAttributes, Ancestor, Cost, EntityInfo, ExportedSpan, InputTokenDetails, ModelAttributes,
    OutputTokenDetails, SpanAttributes, SpanError, SpanStatus, SpanType, ToolAttributes, Usage,
    WorkflowAttributes,
};
pub use options::{SpanOptions, TracingOptions};
