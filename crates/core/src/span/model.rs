//! The exported span: what every exporter receives.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::id::{SpanId, TraceId};

/// The kind of work a span records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SpanType {
    /// One run of an agent: the usual root of a trace.
    AgentRun,
    /// One call to a language model, with its usage.
    ModelGeneration,
    /// One step of a multi-step model call.
    ModelStep,
    /// The provider's inference inside a step.
    ModelInference,
    /// A streamed chunk (usually excluded as noise).
    ModelChunk,
    /// A tool call.
    ToolCall,
    /// A tool call through an MCP server.
    McpToolCall,
    /// A tool the client executes.
    ClientToolCall,
    /// A tool the model provider executes.
    ProviderToolCall,
    /// An input/output processor run.
    ProcessorRun,
    /// A memory read or write.
    MemoryOperation,
    /// A workflow run.
    WorkflowRun,
    /// One workflow step.
    WorkflowStep,
    /// A conditional branch.
    WorkflowConditional,
    /// The evaluation of a condition.
    WorkflowConditionalEval,
    /// Parallel branches.
    WorkflowParallel,
    /// A loop.
    WorkflowLoop,
    /// A sleep.
    WorkflowSleep,
    /// Waiting for an external event.
    WorkflowWaitEvent,
    /// RAG document ingestion.
    RagIngestion,
    /// RAG embedding.
    RagEmbedding,
    /// A vector store operation.
    RagVectorOperation,
    /// A scorer (evaluator) run.
    ScorerRun,
    /// Anything else.
    Generic,
}

impl SpanType {
    /// Every span type, in declaration order.
    pub const ALL: [SpanType; 24] = [
        Self::AgentRun,
        Self::ModelGeneration,
        Self::ModelStep,
        Self::ModelInference,
        Self::ModelChunk,
        Self::ToolCall,
        Self::McpToolCall,
        Self::ClientToolCall,
        Self::ProviderToolCall,
        Self::ProcessorRun,
        Self::MemoryOperation,
        Self::WorkflowRun,
        Self::WorkflowStep,
        Self::WorkflowConditional,
        Self::WorkflowConditionalEval,
        Self::WorkflowParallel,
        Self::WorkflowLoop,
        Self::WorkflowSleep,
        Self::WorkflowWaitEvent,
        Self::RagIngestion,
        Self::RagEmbedding,
        Self::RagVectorOperation,
        Self::ScorerRun,
        Self::Generic,
    ];

    /// Position in [`SpanType::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentRun => "agent_run",
            Self::ModelGeneration => "model_generation",
            Self::ModelStep => "model_step",
            Self::ModelInference => "model_inference",
            Self::ModelChunk => "model_chunk",
            Self::ToolCall => "tool_call",
            Self::McpToolCall => "mcp_tool_call",
            Self::ClientToolCall => "client_tool_call",
            Self::ProviderToolCall => "provider_tool_call",
            Self::ProcessorRun => "processor_run",
            Self::MemoryOperation => "memory_operation",
            Self::WorkflowRun => "workflow_run",
            Self::WorkflowStep => "workflow_step",
            Self::WorkflowConditional => "workflow_conditional",
            Self::WorkflowConditionalEval => "workflow_conditional_eval",
            Self::WorkflowParallel => "workflow_parallel",
            Self::WorkflowLoop => "workflow_loop",
            Self::WorkflowSleep => "workflow_sleep",
            Self::WorkflowWaitEvent => "workflow_wait_event",
            Self::RagIngestion => "rag_ingestion",
            Self::RagEmbedding => "rag_embedding",
            Self::RagVectorOperation => "rag_vector_operation",
            Self::ScorerRun => "scorer_run",
            Self::Generic => "generic",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether spans of this type call a model (and may carry [`Usage`]).
    pub fn is_model(self) -> bool {
        matches!(
            self,
            Self::ModelGeneration | Self::ModelStep | Self::ModelInference | Self::ModelChunk
        )
    }

    /// Whether spans of this type call a tool.
    pub fn is_tool(self) -> bool {
        matches!(
            self,
            Self::ToolCall | Self::McpToolCall | Self::ClientToolCall | Self::ProviderToolCall
        )
    }
}

/// Token usage of one model call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Prompt tokens, including cached ones.
    pub input_tokens: u64,
    /// Completion tokens, including reasoning ones.
    pub output_tokens: u64,
    /// How the input tokens break down.
    #[serde(default, skip_serializing_if = "InputTokenDetails::is_empty")]
    pub input_details: InputTokenDetails,
    /// How the output tokens break down.
    #[serde(default, skip_serializing_if = "OutputTokenDetails::is_empty")]
    pub output_details: OutputTokenDetails,
    /// Cost in USD, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
}

impl Usage {
    /// Usage with these input and output token counts.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            ..Self::default()
        }
    }
    /// Sets the input tokens read from the provider's prompt cache.
    pub fn with_cache_read(mut self, n: u64) -> Self {
        self.input_details.cache_read = Some(n);
        self
    }
    /// Sets the input tokens written to the provider's prompt cache.
    pub fn with_cache_write(mut self, n: u64) -> Self {
        self.input_details.cache_write = Some(n);
        self
    }
    /// Sets the reasoning tokens among the output tokens.
    pub fn with_reasoning(mut self, n: u64) -> Self {
        self.output_details.reasoning = Some(n);
        self
    }
    /// Sets the cost.
    pub fn with_cost(mut self, cost: Cost) -> Self {
        self.cost = Some(cost);
        self
    }
    /// Input plus output tokens (saturating).
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// The parts of the input tokens, where the provider reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InputTokenDetails {
    /// Plain text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<u64>,
    /// Tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<u64>,
    /// Tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<u64>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<u64>,
    /// Image tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<u64>,
}

impl InputTokenDetails {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The parts of the output tokens, where the provider reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutputTokenDetails {
    /// Plain text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<u64>,
    /// Reasoning ("thinking") tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<u64>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<u64>,
    /// Image tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<u64>,
}

impl OutputTokenDetails {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Cost of a model call in USD.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cost {
    /// Cost of the input tokens.
    pub input: Option<f64>,
    /// Cost of the output tokens.
    pub output: Option<f64>,
    /// Total cost.
    pub total: Option<f64>,
}

impl Cost {
    /// A cost from its parts; the total is their sum.
    pub fn new(input: f64, output: f64) -> Self {
        Self {
            input: Some(input),
            output: Some(output),
            total: Some(input + output),
        }
    }
}

/// Attributes of a model call (`ModelGeneration`, `ModelStep`, `ModelInference`, `ModelChunk`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelAttributes {
    /// Requested model name, e.g. `gpt-4o-mini`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Cow<'static, str>>,
    /// Provider, e.g. `openai`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Cow<'static, str>>,
    /// Model parameters (temperature, max_tokens, ...), a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Whether the response was streamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
    /// Why the model stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// When the first token arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_start_time: Option<DateTime<Utc>>,
    /// The model that actually answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_model: Option<String>,
    /// The provider's response id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// Token usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl ModelAttributes {
    /// Attributes for a call to `model` at `provider`.
    pub fn new(
        model: impl Into<Cow<'static, str>>,
        provider: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            model: Some(model.into()),
            provider: Some(provider.into()),
            ..Self::default()
        }
    }
    /// Sets the usage.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }
    /// Sets the model parameters.
    pub fn with_parameters(mut self, parameters: Value) -> Self {
        self.parameters = Some(parameters);
        self
    }
}

/// Attributes of a tool call (`ToolCall`, `McpToolCall`, `ClientToolCall`, `ProviderToolCall`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolAttributes {
    /// Tool id or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_id: Option<Cow<'static, str>>,
    /// Tool type (function, mcp, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_type: Option<Cow<'static, str>>,
    /// Tool description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the call succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    /// MCP server name, for MCP tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_server: Option<String>,
}

impl ToolAttributes {
    /// Attributes for the tool `tool_id`.
    pub fn new(tool_id: impl Into<Cow<'static, str>>) -> Self {
        Self {
            tool_id: Some(tool_id.into()),
            ..Self::default()
        }
    }
}

/// Attributes of an agent run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentAttributes {
    /// Agent id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// System instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Maximum steps allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Tools available to the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_tools: Vec<String>,
}

/// Attributes of workflow spans.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkflowAttributes {
    /// Workflow or step id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    /// Status (success, failed, suspended, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Loop iteration or parallel branch count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<u64>,
    /// Condition result, for conditionals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_result: Option<bool>,
}

/// Typed attributes, one variant per family of span types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
// Inline on purpose: boxing costs an allocation per typed span, measured slower
// on the span hot path than moving the larger enum.
#[allow(clippy::large_enum_variant)]
pub enum SpanAttributes {
    /// No typed attributes.
    #[default]
    None,
    /// Agent attributes.
    Agent(AgentAttributes),
    /// Model attributes (boxed: they are several times larger than the
    /// others, and every span would otherwise carry their size).
    Model(Box<ModelAttributes>),
    /// Tool attributes.
    Tool(ToolAttributes),
    /// Workflow attributes.
    Workflow(WorkflowAttributes),
}

impl SpanAttributes {
    /// The model attributes, if these are.
    pub fn model(&self) -> Option<&ModelAttributes> {
        match self {
            Self::Model(m) => Some(m),
            _ => None,
        }
    }
    /// The tool attributes, if these are.
    pub fn tool(&self) -> Option<&ToolAttributes> {
        match self {
            Self::Tool(t) => Some(t),
            _ => None,
        }
    }
    /// The usage, for model spans that carry it.
    pub fn usage(&self) -> Option<&Usage> {
        self.model().and_then(|m| m.usage.as_ref())
    }
}

impl From<ModelAttributes> for SpanAttributes {
    fn from(a: ModelAttributes) -> Self {
        Self::Model(Box::new(a))
    }
}
impl From<ToolAttributes> for SpanAttributes {
    fn from(a: ToolAttributes) -> Self {
        Self::Tool(a)
    }
}
impl From<AgentAttributes> for SpanAttributes {
    fn from(a: AgentAttributes) -> Self {
        Self::Agent(a)
    }
}
impl From<WorkflowAttributes> for SpanAttributes {
    fn from(a: WorkflowAttributes) -> Self {
        Self::Workflow(a)
    }
}

/// What the span is about: the agent, workflow or tool that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityInfo {
    /// Kind of entity (`agent`, `workflow`, `tool`, ...).
    #[serde(rename = "type")]
    pub entity_type: String,
    /// Entity id.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An error recorded on a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanError {
    /// Human-readable message.
    pub message: String,
    /// Error type or category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Stack trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// Further details, JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl SpanError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind: None,
            stack: None,
            details: None,
        }
    }
    /// Sets the error kind.
    pub fn with_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }
}

/// How a span finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SpanStatus {
    /// Still running (only seen in `Started`/`Updated` events).
    #[default]
    Running,
    /// Finished normally.
    Ok,
    /// Finished with an error (see [`ExportedSpan::error`]).
    Error,
    /// The handle was dropped without `end()`: ended by RAII, counted in stats.
    Dropped,
}

/// One ancestor in [`ExportedSpan::ancestry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ancestor {
    /// The ancestor's span id.
    pub span_id: SpanId,
    /// The ancestor's start time.
    pub start_time: DateTime<Utc>,
}

/// A span as exporters see it: complete in every `Ended` event, so an exporter
/// can produce correct output from that event alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExportedSpan {
    /// Trace id (32 hex).
    pub trace_id: TraceId,
    /// Span id (16 hex).
    pub span_id: SpanId,
    /// The nearest exported ancestor (after re-parenting around excluded spans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<SpanId>,
    /// A parent that lives outside this process (from `traceparent` or an explicit id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_parent_span_id: Option<SpanId>,
    /// Span name (static names cost no allocation).
    pub name: Cow<'static, str>,
    /// Span type.
    pub span_type: SpanType,
    /// Typed attributes.
    #[serde(default)]
    pub attributes: SpanAttributes,
    /// Free-form metadata, a JSON object. Keys under `<exporter-name>` configure that exporter.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Trace tags (on every span of the trace).
    #[serde(default, skip_serializing_if = "<[String]>::is_empty")]
    pub tags: Arc<[String]>,
    /// Trace user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Arc<str>>,
    /// Trace session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<Arc<str>>,
    /// What ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<Arc<EntityInfo>>,
    /// Input payload (bounded JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Output payload (bounded JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Error, when the span failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Box<SpanError>>,
    /// Start time.
    pub start_time: DateTime<Utc>,
    /// End time (`None` while running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    /// A point-in-time event rather than a span with a duration.
    #[serde(default)]
    pub is_event: bool,
    /// The root of its trace in this process (no exported parent).
    #[serde(default)]
    pub is_root: bool,
    /// How the span finished.
    #[serde(default)]
    pub status: SpanStatus,
    /// Root-to-parent chain of exported ancestors, shared between siblings.
    #[serde(default, skip_serializing_if = "<[Ancestor]>::is_empty")]
    pub ancestry: Arc<[Ancestor]>,
}

/// The shared empty tag list (no allocation per trace).
pub(crate) fn no_tags() -> Arc<[String]> {
    static EMPTY: std::sync::LazyLock<Arc<[String]>> =
        std::sync::LazyLock::new(|| Arc::from(Vec::new()));
    EMPTY.clone()
}

/// The shared empty ancestry of root spans.
pub(crate) fn no_ancestors() -> Arc<[Ancestor]> {
    static EMPTY: std::sync::LazyLock<Arc<[Ancestor]>> =
        std::sync::LazyLock::new(|| Arc::from(Vec::new()));
    EMPTY.clone()
}

impl ExportedSpan {
    /// A minimal running span; the rest is filled by the span API.
    pub fn new(
        trace_id: TraceId,
        span_id: SpanId,
        name: impl Into<Cow<'static, str>>,
        span_type: SpanType,
    ) -> Self {
        Self {
            start_time: Utc::now(),
            ..Self::placeholder(trace_id, span_id, name.into(), span_type)
        }
    }

    /// [`ExportedSpan::new`] without reading the clock (the start time is the
    /// epoch): for allocations the span API fills in at once.
    pub(crate) fn placeholder(
        trace_id: TraceId,
        span_id: SpanId,
        name: Cow<'static, str>,
        span_type: SpanType,
    ) -> Self {
        Self {
            trace_id,
            span_id,
            parent_span_id: None,
            external_parent_span_id: None,
            name,
            span_type,
            attributes: SpanAttributes::None,
            metadata: Map::new(),
            tags: no_tags(),
            user_id: None,
            session_id: None,
            entity: None,
            input: None,
            output: None,
            error: None,
            start_time: DateTime::UNIX_EPOCH,
            end_time: None,
            is_event: false,
            is_root: true,
            status: SpanStatus::Running,
            ancestry: no_ancestors(),
        }
    }

    /// Duration, once ended (zero if the clock went backwards).
    pub fn duration(&self) -> Option<std::time::Duration> {
        let end = self.end_time?;
        Some((end - self.start_time).to_std().unwrap_or_default())
    }

    /// The parent as the destination should see it: the in-process parent,
    /// else the external one.
    pub fn effective_parent(&self) -> Option<SpanId> {
        self.parent_span_id.or(self.external_parent_span_id)
    }

    /// Metadata an exporter reads under its own key (`metadata.<name>`).
    pub fn exporter_metadata(&self, exporter: &str) -> Option<&Map<String, Value>> {
        self.metadata.get(exporter).and_then(Value::as_object)
    }

    /// Whether the span ended (it is complete).
    pub fn is_ended(&self) -> bool {
        self.end_time.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::SpanType;

    #[test]
    fn span_type_index_matches_all() {
        for (i, t) in SpanType::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(SpanType::parse(t.as_str()), Some(*t));
        }
    }
}
