//! The exported span: what every exporter receives.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::usage::Usage;
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

    /// [`SpanType::Generic`] (a serde default).
    pub(crate) fn generic() -> Self {
        Self::Generic
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

/// One ancestor in [`ExportedSpan::ancestry`]: what exporters need to know
/// about a span's ancestors without keeping state (LangSmith's
/// `dotted_order` needs the ids and start times; the billable-usage rule
/// needs the types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Ancestor {
    /// The ancestor's span id.
    pub span_id: SpanId,
    /// The ancestor's start time (UTC).
    pub start_time: DateTime<Utc>,
    /// The ancestor's type. Spans serialised before this field existed
    /// read back as [`SpanType::Generic`].
    #[serde(default = "SpanType::generic")]
    pub span_type: SpanType,
}

impl Ancestor {
    /// An ancestor entry.
    pub fn new(span_id: SpanId, start_time: DateTime<Utc>, span_type: SpanType) -> Self {
        Self {
            span_id,
            start_time,
            span_type,
        }
    }
}

/// What applies to a whole trace and travels with every span of it, so that
/// [`Span::export`](crate::Span::export) and
/// [`Observability::rebuild_span`](crate::Observability::rebuild_span) carry
/// it across processes and exporters can tell trace-level facts from
/// span-level ones.
///
/// The trace's tags, user and session are on each span itself
/// ([`ExportedSpan::tags`], [`ExportedSpan::user_id`], [`ExportedSpan::session_id`]).
/// Shared by every span of a trace in one process (one allocation per trace).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TraceContext {
    /// Trace-level metadata from [`TracingOptions::metadata`](crate::TracingOptions::metadata),
    /// including `metadata.<exporter>` directives. When a span ends, these
    /// keys are merged into its own [`ExportedSpan::metadata`] (the span's
    /// keys win); here they stay apart, so exporters know which keys are the
    /// trace's.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Inputs of this trace are never recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hide_input: bool,
    /// Outputs of this trace are never recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hide_output: bool,
    /// The trace began elsewhere: this process continues it (a supplied
    /// `trace_id`, `traceparent` or upstream parent). Its spans never claim
    /// trace-level fields (name, input, output) at a destination; see
    /// [`ExportedSpan::is_trace_root`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continued: bool,
    /// The trace's sampling decision, made once at its root. An unsampled
    /// span exports as a token whose rebuild records nothing either.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub sampled: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Default for TraceContext {
    fn default() -> Self {
        Self {
            metadata: Map::new(),
            hide_input: false,
            hide_output: false,
            continued: false,
            sampled: true,
        }
    }
}

impl TraceContext {
    /// Whether this is the default context (nothing set): not serialised.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
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
    /// What applies to the whole trace: trace metadata, privacy flags,
    /// continuation, sampling. Shared by the trace's spans.
    #[serde(
        default = "default_trace_context",
        skip_serializing_if = "trace_context_is_default"
    )]
    pub trace_context: Arc<TraceContext>,
}

fn trace_context_is_default(c: &Arc<TraceContext>) -> bool {
    c.is_default()
}

/// The shared default trace context (no allocation per span).
pub(crate) fn default_trace_context() -> Arc<TraceContext> {
    static DEFAULT: std::sync::LazyLock<Arc<TraceContext>> =
        std::sync::LazyLock::new(|| Arc::new(TraceContext::default()));
    DEFAULT.clone()
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
            trace_context: default_trace_context(),
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

    /// Whether this span's trace began elsewhere and this process continues
    /// it (see [`TraceContext::continued`]).
    pub fn is_continued(&self) -> bool {
        self.trace_context.continued
    }

    /// Whether this span is the root of its whole trace — the span that began
    /// it — and so owns the trace-level fields a destination shows: the
    /// trace's name, input and output (and a vendor's "this is the root"
    /// marker). A root in this process that continues an upstream trace is
    /// not ([`ExportedSpan::is_continued`]); a rebuilt root is, wherever it
    /// ends.
    pub fn is_trace_root(&self) -> bool {
        self.is_root && !self.trace_context.continued
    }

    /// Whether an exported ancestor of this span calls a model.
    pub fn has_model_ancestor(&self) -> bool {
        self.ancestry.iter().any(|a| a.span_type.is_model())
    }

    /// The usage that counts toward the trace's billable totals, by the one
    /// rule every exporter and the store apply: a model span's usage is
    /// billable when no exported ancestor is a model span. The outermost
    /// model span of a chain (a generation) carries the tokens; the steps,
    /// inferences and chunks inside it report the same tokens again in more
    /// detail and are not counted. When a model span type is excluded from
    /// export, its descendants move up and carry the usage instead.
    ///
    /// Record a generation's total on the generation itself; usage set only
    /// on nested steps is shown on them but not billed.
    ///
    /// ```
    /// use aiobs_core::{InMemoryExporter, ModelAttributes, Observability, SpanOptions, SpanType, Usage};
    ///
    /// let memory = InMemoryExporter::new();
    /// let obs = Observability::builder().exporter(memory.clone()).build()?;
    /// let run = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    /// let mut generation = run.child(SpanOptions::new("chat", SpanType::ModelGeneration));
    /// let mut step = generation.child(SpanOptions::new("step 1", SpanType::ModelStep));
    /// step.set_usage(Usage::new(60, 10));
    /// step.end();
    /// generation.set_usage(Usage::new(60, 10));
    /// generation.end();
    /// drop(run);
    /// obs.flush_blocking(std::time::Duration::from_secs(5));
    /// let spans = memory.ended_spans();
    /// let billable: u64 = spans.iter().filter_map(|s| s.billable_usage()).map(|u| u.total_tokens()).sum();
    /// assert_eq!(billable, 70); // the generation's, not twice
    /// # Ok::<(), aiobs_core::BuildError>(())
    /// ```
    pub fn billable_usage(&self) -> Option<&Usage> {
        if !self.span_type.is_model() || self.has_model_ancestor() {
            return None;
        }
        self.attributes.usage()
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
