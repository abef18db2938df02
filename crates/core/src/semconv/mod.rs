//! The OpenTelemetry GenAI semantic conventions: the **one** table that says
//! how an aiobs span reads in OpenTelemetry terms. The OpenTelemetry exporter
//! (`aiobs-otel-bridge`), the Sentry exporter (whose AI monitoring speaks the
//! same `gen_ai.*` names) and the `tracing` layer (which reads them back into
//! typed spans) all take their names and rules from here, so the three can
//! never disagree.
//!
//! Followed: the GenAI conventions of OpenTelemetry semantic conventions
//! **v1.42.0** ([`SCHEMA_URL`]; the registry that the Rust crate
//! `opentelemetry-semantic-conventions` 0.33 and the Python package
//! `opentelemetry-semantic-conventions` 0.66b2 generate), whose `gen_ai.*`
//! attributes are now maintained in the `semantic-conventions-genai`
//! repository. They are *Development* (experimental) conventions; see
//! [`Stability`] for the migration switch.
//!
//! What is here:
//! - attribute names as constants, spelled as the registry does (the
//!   `aiobs-otel-bridge` tests compare them with the generated crate);
//! - [`Operation`], the values of `gen_ai.operation.name`, mapped to and from
//!   [`SpanType`] ([`Operation::of`], [`Operation::span_type`]);
//! - the span-name rule `{operation} {model|agent|tool|workflow}` ([`span_name`]);
//! - whether a span is a client call (OpenTelemetry span kind `CLIENT`) or
//!   in-process work (`INTERNAL`) ([`is_client_call`]);
//! - the attribute table itself ([`attributes`]): which `gen_ai.*`,
//!   `user.id`, `session.id` and `error.type` attributes a span carries, with
//!   content (messages in the conventions' parts schema, tool arguments and
//!   results) only when capture is on ([`AttributeOptions`]);
//! - the same table read back ([`GenAiFields`]): `gen_ai.*` attributes, as a
//!   `tracing` layer receives them, turned into a span type, typed
//!   attributes, usage and content.
//!
//! ```
//! use aiobs_core::semconv::{self, Operation};
//! use aiobs_core::{ExportedSpan, ModelAttributes, SpanId, SpanType, TraceId};
//!
//! let mut span = ExportedSpan::new(TraceId::random(), SpanId::random(), "llm", SpanType::ModelGeneration);
//! span.attributes = ModelAttributes::new("gpt-4o-mini", "openai").into();
//! assert_eq!(Operation::of(&span), Some(Operation::Chat));
//! assert_eq!(semconv::span_name(&span), "chat gpt-4o-mini");
//! assert!(semconv::is_client_call(&span));
//! assert_eq!(Operation::parse("execute_tool").map(Operation::span_type), Some(SpanType::ToolCall));
//! ```

use std::borrow::Cow;

use crate::span::{ExportedSpan, SpanAttributes, SpanType};

mod attributes;
mod messages;
mod read;

pub use attributes::{
    AttrValue, Attribute, AttributeOptions, UsageNames, attributes, content_has_convention,
    unmapped_parameters, usage_attributes,
};
pub use read::GenAiFields;

/// The semantic conventions version followed (see the module docs).
pub const SEMCONV_VERSION: &str = "1.42.0";

/// The OpenTelemetry schema URL of [`SEMCONV_VERSION`], for an
/// instrumentation scope's or resource's `schema_url`.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.42.0";

// ---------------------------------------------------------------------------
// Attribute names. Types and units are the registry's: `int` attributes are
// signed 64-bit integers, token counts are counts of tokens.
// ---------------------------------------------------------------------------

/// `gen_ai.operation.name` (string): one of [`Operation`]'s values.
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
/// `gen_ai.provider.name` (string): the provider as the client identifies it
/// (`openai`, `anthropic`, `aws.bedrock`, ...). Replaces [`GEN_AI_SYSTEM`].
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
/// `gen_ai.system` (string): the provider, under its name before v1.37.
/// Deprecated; written only in [`Stability::Default`] mode, read always.
pub const GEN_AI_SYSTEM: &str = "gen_ai.system";
/// `gen_ai.conversation.id` (string): the conversation (session, thread).
pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// `gen_ai.data_source.id` (string): the data source of a retrieval.
pub const GEN_AI_DATA_SOURCE_ID: &str = "gen_ai.data_source.id";
/// `gen_ai.output.type` (string): `text`, `json`, `image`, `speech`.
pub const GEN_AI_OUTPUT_TYPE: &str = "gen_ai.output.type";

/// `gen_ai.request.model` (string): the model asked for.
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// `gen_ai.request.temperature` (double).
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
/// `gen_ai.request.max_tokens` (int): most tokens the model may generate.
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
/// `gen_ai.request.top_p` (double).
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
/// `gen_ai.request.top_k` (double).
pub const GEN_AI_REQUEST_TOP_K: &str = "gen_ai.request.top_k";
/// `gen_ai.request.frequency_penalty` (double).
pub const GEN_AI_REQUEST_FREQUENCY_PENALTY: &str = "gen_ai.request.frequency_penalty";
/// `gen_ai.request.presence_penalty` (double).
pub const GEN_AI_REQUEST_PRESENCE_PENALTY: &str = "gen_ai.request.presence_penalty";
/// `gen_ai.request.stop_sequences` (string[]).
pub const GEN_AI_REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";
/// `gen_ai.request.seed` (int).
pub const GEN_AI_REQUEST_SEED: &str = "gen_ai.request.seed";
/// `gen_ai.request.choice.count` (int): candidates asked for (`n`).
pub const GEN_AI_REQUEST_CHOICE_COUNT: &str = "gen_ai.request.choice.count";
/// `gen_ai.request.encoding_formats` (string[]): for embeddings.
pub const GEN_AI_REQUEST_ENCODING_FORMATS: &str = "gen_ai.request.encoding_formats";
/// `gen_ai.request.stream` (boolean): whether the response was streamed.
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";

/// `gen_ai.response.model` (string): the model that answered.
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
/// `gen_ai.response.id` (string): the provider's id of the completion.
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
/// `gen_ai.response.finish_reasons` (string[]): one per choice.
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// `gen_ai.response.time_to_first_chunk` (double, seconds from the request to
/// the first streamed chunk).
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";

/// `gen_ai.usage.input_tokens` (int): prompt tokens, **including** cached
/// reads and writes (as aiobs's [`Usage::input_tokens`](crate::Usage::input_tokens)).
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// `gen_ai.usage.output_tokens` (int): completion tokens, **including** reasoning ones.
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// `gen_ai.usage.cache_read.input_tokens` (int): input tokens served from the
/// provider's cache (a part of `input_tokens`).
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// `gen_ai.usage.cache_creation.input_tokens` (int): input tokens written to
/// the provider's cache (a part of `input_tokens`).
pub const GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: &str =
    "gen_ai.usage.cache_creation.input_tokens";
/// `gen_ai.usage.reasoning.output_tokens` (int): reasoning tokens (a part of
/// `output_tokens`).
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
/// `gen_ai.usage.prompt_tokens`: deprecated name of [`GEN_AI_USAGE_INPUT_TOKENS`]; read, never written.
pub const GEN_AI_USAGE_PROMPT_TOKENS: &str = "gen_ai.usage.prompt_tokens";
/// `gen_ai.usage.completion_tokens`: deprecated name of [`GEN_AI_USAGE_OUTPUT_TOKENS`]; read, never written.
pub const GEN_AI_USAGE_COMPLETION_TOKENS: &str = "gen_ai.usage.completion_tokens";

/// `gen_ai.agent.id` (string).
pub const GEN_AI_AGENT_ID: &str = "gen_ai.agent.id";
/// `gen_ai.agent.name` (string).
pub const GEN_AI_AGENT_NAME: &str = "gen_ai.agent.name";
/// `gen_ai.agent.description` (string).
pub const GEN_AI_AGENT_DESCRIPTION: &str = "gen_ai.agent.description";
/// `gen_ai.agent.version` (string).
pub const GEN_AI_AGENT_VERSION: &str = "gen_ai.agent.version";
/// `gen_ai.workflow.name` (string).
pub const GEN_AI_WORKFLOW_NAME: &str = "gen_ai.workflow.name";

/// `gen_ai.tool.name` (string).
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
/// `gen_ai.tool.type` (string): `function`, `extension`, `datastore`.
pub const GEN_AI_TOOL_TYPE: &str = "gen_ai.tool.type";
/// `gen_ai.tool.description` (string).
pub const GEN_AI_TOOL_DESCRIPTION: &str = "gen_ai.tool.description";
/// `gen_ai.tool.call.id` (string): the model's id of this call.
pub const GEN_AI_TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
/// `gen_ai.tool.call.arguments` (any, written as a JSON string). Content: opt-in.
pub const GEN_AI_TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
/// `gen_ai.tool.call.result` (any, written as a JSON string). Content: opt-in.
pub const GEN_AI_TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";
/// `gen_ai.tool.definitions` (any, written as a JSON string): tools offered
/// to the model.
pub const GEN_AI_TOOL_DEFINITIONS: &str = "gen_ai.tool.definitions";

/// `gen_ai.input.messages` (JSON string, "parts" message schema). Content: opt-in.
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// `gen_ai.output.messages` (JSON string, "parts" message schema). Content: opt-in.
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// `gen_ai.system_instructions` (JSON string, an array of parts). Content: opt-in.
pub const GEN_AI_SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";

/// `user.id` (string), from the general conventions.
pub const USER_ID: &str = "user.id";
/// `session.id` (string), from the general conventions.
pub const SESSION_ID: &str = "session.id";
/// `error.type` (string): the class of error a failed operation ended with.
pub const ERROR_TYPE: &str = "error.type";
/// `server.address` (string): the host the client called.
pub const SERVER_ADDRESS: &str = "server.address";

/// The name of the span event recording an exception.
pub const EXCEPTION_EVENT: &str = "exception";
/// `exception.type` (string), on the [`EXCEPTION_EVENT`].
pub const EXCEPTION_TYPE: &str = "exception.type";
/// `exception.message` (string), on the [`EXCEPTION_EVENT`].
pub const EXCEPTION_MESSAGE: &str = "exception.message";
/// `exception.stacktrace` (string), on the [`EXCEPTION_EVENT`].
pub const EXCEPTION_STACKTRACE: &str = "exception.stacktrace";

/// Metric `gen_ai.client.token.usage`: histogram of tokens per operation, unit
/// `{token}`, split by [`GEN_AI_TOKEN_TYPE`].
pub const GEN_AI_CLIENT_TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// Metric `gen_ai.client.operation.duration`: histogram of client operation
/// durations, unit `s`.
pub const GEN_AI_CLIENT_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// `gen_ai.token.type` (string): `input` or `output`, on the token-usage metric.
pub const GEN_AI_TOKEN_TYPE: &str = "gen_ai.token.type";

// ---------------------------------------------------------------------------
// Environment switches, as the conventions name them.
// ---------------------------------------------------------------------------

/// `OTEL_SEMCONV_STABILITY_OPT_IN`: a comma-separated list; the value
/// [`GEN_AI_LATEST_EXPERIMENTAL`] selects [`Stability::LatestExperimental`].
pub const ENV_STABILITY_OPT_IN: &str = "OTEL_SEMCONV_STABILITY_OPT_IN";
/// The `OTEL_SEMCONV_STABILITY_OPT_IN` value for the latest GenAI conventions.
pub const GEN_AI_LATEST_EXPERIMENTAL: &str = "gen_ai_latest_experimental";
/// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`: `true` records
/// prompts, completions, tool arguments and results (content is opt-in).
pub const ENV_CAPTURE_MESSAGE_CONTENT: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";

/// Which version of the GenAI conventions is written.
///
/// The conventions ask instrumentations to keep their output stable by
/// default and to switch to the latest experimental names only when
/// `OTEL_SEMCONV_STABILITY_OPT_IN` contains `gen_ai_latest_experimental`.
/// aiobs is a new instrumentation with no older output to preserve, so it
/// always writes the latest names; by default it *also* writes the one
/// attribute renamed since v1.36 (`gen_ai.system` beside
/// `gen_ai.provider.name`), so backends that read the older name still see
/// the provider. The opt-in drops the deprecated duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Stability {
    /// Latest names plus the deprecated `gen_ai.system` duplicate.
    #[default]
    Default,
    /// Latest experimental names only (`gen_ai_latest_experimental`).
    LatestExperimental,
}

impl Stability {
    /// Reads a value of `OTEL_SEMCONV_STABILITY_OPT_IN` (comma-separated,
    /// whitespace and case ignored); `None` (unset) is [`Stability::Default`].
    pub fn from_opt_in(value: Option<&str>) -> Self {
        let latest = value.is_some_and(|v| {
            v.split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(GEN_AI_LATEST_EXPERIMENTAL))
        });
        if latest {
            Self::LatestExperimental
        } else {
            Self::Default
        }
    }

    /// Reads `OTEL_SEMCONV_STABILITY_OPT_IN` from the process environment.
    pub fn from_env() -> Self {
        Self::from_opt_in(std::env::var(ENV_STABILITY_OPT_IN).ok().as_deref())
    }

    /// Whether deprecated duplicates (`gen_ai.system`) are written.
    pub fn writes_deprecated(self) -> bool {
        self == Self::Default
    }
}

/// Reads a value of `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`:
/// `true` (any case, surrounding whitespace ignored) turns capture on;
/// anything else, or unset, leaves it off.
pub fn capture_content_from(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Reads `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` from the process environment.
pub fn capture_content_from_env() -> bool {
    capture_content_from(std::env::var(ENV_CAPTURE_MESSAGE_CONTENT).ok().as_deref())
}

// ---------------------------------------------------------------------------
// Operations.
// ---------------------------------------------------------------------------

/// A value of `gen_ai.operation.name`.
///
/// | operation | from span types | read back as |
/// |---|---|---|
/// | `chat` | `ModelGeneration`, `ModelStep`, `ModelInference` | `ModelGeneration` |
/// | `generate_content`, `text_completion` | — (written only by other instrumentations) | `ModelGeneration` |
/// | `embeddings` | `RagEmbedding` | `RagEmbedding` |
/// | `retrieval` | `RagVectorOperation` | `RagVectorOperation` |
/// | `create_agent` | — | `Generic` (creating an agent is not a run of it) |
/// | `invoke_agent` | `AgentRun` | `AgentRun` |
/// | `execute_tool` | `ToolCall`, `McpToolCall`, `ClientToolCall`, `ProviderToolCall` | `ToolCall` |
/// | `invoke_workflow` | `WorkflowRun` | `WorkflowRun` |
///
/// Other span types (`ModelChunk`, workflow steps and control flow, processor
/// and memory operations, RAG ingestion, scorer runs, `Generic`) have no
/// GenAI operation: they keep their own name and carry no `gen_ai.operation.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `chat`: a chat completion.
    Chat,
    /// `generate_content`: a multimodal generation (Gemini's name).
    GenerateContent,
    /// `text_completion`: a legacy text completion.
    TextCompletion,
    /// `embeddings`.
    Embeddings,
    /// `retrieval`: a query to a vector store or search index.
    Retrieval,
    /// `create_agent`.
    CreateAgent,
    /// `invoke_agent`.
    InvokeAgent,
    /// `execute_tool`.
    ExecuteTool,
    /// `invoke_workflow`.
    InvokeWorkflow,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 9] = [
        Self::Chat,
        Self::GenerateContent,
        Self::TextCompletion,
        Self::Embeddings,
        Self::Retrieval,
        Self::CreateAgent,
        Self::InvokeAgent,
        Self::ExecuteTool,
        Self::InvokeWorkflow,
    ];

    /// The attribute value, e.g. `chat`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::GenerateContent => "generate_content",
            Self::TextCompletion => "text_completion",
            Self::Embeddings => "embeddings",
            Self::Retrieval => "retrieval",
            Self::CreateAgent => "create_agent",
            Self::InvokeAgent => "invoke_agent",
            Self::ExecuteTool => "execute_tool",
            Self::InvokeWorkflow => "invoke_workflow",
        }
    }

    /// Parses an attribute value (exact, as the conventions spell it).
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == value)
    }

    /// The operation a span of this type performs, if it is a GenAI operation.
    pub fn for_span_type(span_type: SpanType) -> Option<Self> {
        Some(match span_type {
            SpanType::AgentRun => Self::InvokeAgent,
            SpanType::ModelGeneration | SpanType::ModelStep | SpanType::ModelInference => {
                Self::Chat
            }
            t if t.is_tool() => Self::ExecuteTool,
            SpanType::WorkflowRun => Self::InvokeWorkflow,
            SpanType::RagEmbedding => Self::Embeddings,
            SpanType::RagVectorOperation => Self::Retrieval,
            _ => return None,
        })
    }

    /// The operation of `span` ([`Operation::for_span_type`] of its type).
    pub fn of(span: &ExportedSpan) -> Option<Self> {
        Self::for_span_type(span.span_type)
    }

    /// The span type a span carrying this operation becomes when read back
    /// (e.g. by the `tracing` layer).
    pub fn span_type(self) -> SpanType {
        match self {
            Self::Chat | Self::GenerateContent | Self::TextCompletion => SpanType::ModelGeneration,
            Self::Embeddings => SpanType::RagEmbedding,
            Self::Retrieval => SpanType::RagVectorOperation,
            Self::CreateAgent => SpanType::Generic,
            Self::InvokeAgent => SpanType::AgentRun,
            Self::ExecuteTool => SpanType::ToolCall,
            Self::InvokeWorkflow => SpanType::WorkflowRun,
        }
    }

    /// Whether the operation calls a remote service (span kind `CLIENT`):
    /// model calls, embeddings, retrievals and agent creation. Agents, tools
    /// and workflows run in process (span kind `INTERNAL`).
    pub fn is_client_call(self) -> bool {
        matches!(
            self,
            Self::Chat
                | Self::GenerateContent
                | Self::TextCompletion
                | Self::Embeddings
                | Self::Retrieval
                | Self::CreateAgent
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `span` is a call to a remote GenAI service (OpenTelemetry span
/// kind `CLIENT`); otherwise it is in-process work (`INTERNAL`).
pub fn is_client_call(span: &ExportedSpan) -> bool {
    Operation::of(span).is_some_and(Operation::is_client_call)
}

/// What the operation acts on, as the span name shows it: the requested
/// model for model calls and embeddings, the agent's name, the tool's name,
/// the workflow's name. `None` when the span does not say (a model span
/// without a model, a retrieval: aiobs records no data source id).
///
/// Sources, in order: model — `ModelAttributes::model`, then
/// `response_model`; agent — the entity's name, its id, then the span name;
/// tool — `ToolAttributes::tool_id`, then the span name; workflow — the span name.
pub fn target(span: &ExportedSpan) -> Option<&str> {
    match Operation::of(span)? {
        Operation::Chat
        | Operation::GenerateContent
        | Operation::TextCompletion
        | Operation::Embeddings => {
            let m = span.attributes.model()?;
            m.model.as_deref().or(m.response_model.as_deref())
        }
        Operation::InvokeAgent | Operation::CreateAgent => Some(agent_name(span)),
        Operation::ExecuteTool => Some(tool_name(span)),
        Operation::InvokeWorkflow => Some(&span.name),
        Operation::Retrieval => None,
    }
}

/// The agent's name (`gen_ai.agent.name`): the entity's name, its id, else the span name.
pub fn agent_name(span: &ExportedSpan) -> &str {
    span.entity
        .as_deref()
        .and_then(|e| e.name.as_deref().or(Some(e.id.as_str())))
        .filter(|n| !n.is_empty())
        .unwrap_or(&span.name)
}

/// The tool's name (`gen_ai.tool.name`): `ToolAttributes::tool_id`, else the span name.
pub fn tool_name(span: &ExportedSpan) -> &str {
    match &span.attributes {
        SpanAttributes::Tool(t) => t.tool_id.as_deref().filter(|n| !n.is_empty()),
        _ => None,
    }
    .unwrap_or(&span.name)
}

/// The span's name under the conventions: `{operation} {target}` (e.g.
/// `chat gpt-4o-mini`, `invoke_agent weather-agent`, `execute_tool
/// get_weather`), `{operation}` alone when there is no [`target`], and the
/// aiobs name unchanged for spans without a GenAI [`Operation`].
pub fn span_name(span: &ExportedSpan) -> Cow<'_, str> {
    let Some(op) = Operation::of(span) else {
        return Cow::Borrowed(&span.name);
    };
    match target(span) {
        Some(t) if !t.is_empty() => Cow::Owned(format!("{} {t}", op.as_str())),
        _ => Cow::Borrowed(op.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{EntityInfo, ModelAttributes, SpanId, ToolAttributes, TraceId};

    fn span(name: &'static str, t: SpanType) -> ExportedSpan {
        ExportedSpan::new(TraceId::random(), SpanId::random(), name, t)
    }

    #[test]
    fn every_span_type_maps_and_operations_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str()), Some(op));
            // Reading an operation back and writing it again gives a model
            // call for every model operation, and the same operation otherwise.
            let again = Operation::for_span_type(op.span_type());
            match op {
                Operation::GenerateContent | Operation::TextCompletion => {
                    assert_eq!(again, Some(Operation::Chat))
                }
                Operation::CreateAgent => assert_eq!(again, None),
                _ => assert_eq!(again, Some(op), "{op}"),
            }
        }
        for t in SpanType::ALL {
            if let Some(op) = Operation::for_span_type(t) {
                assert_eq!(
                    Operation::for_span_type(op.span_type()),
                    Some(op),
                    "{t:?} → {op} → {:?}",
                    op.span_type()
                );
            }
        }
        assert_eq!(Operation::parse("Chat"), None, "values are case-sensitive");
        assert_eq!(Operation::for_span_type(SpanType::ModelChunk), None);
        assert_eq!(Operation::for_span_type(SpanType::WorkflowStep), None);
        assert_eq!(Operation::for_span_type(SpanType::Generic), None);
    }

    #[test]
    fn span_names_follow_operation_and_target() {
        let mut llm = span("my llm call", SpanType::ModelGeneration);
        assert_eq!(span_name(&llm), "chat", "no model: the operation alone");
        llm.attributes = ModelAttributes::new("gpt-4o-mini", "openai").into();
        assert_eq!(span_name(&llm), "chat gpt-4o-mini");
        assert!(is_client_call(&llm));

        let mut tool = span("lookup", SpanType::McpToolCall);
        assert_eq!(span_name(&tool), "execute_tool lookup");
        tool.attributes = ToolAttributes::new("get_weather").into();
        assert_eq!(span_name(&tool), "execute_tool get_weather");
        assert!(!is_client_call(&tool));

        let mut agent = span("weather-agent", SpanType::AgentRun);
        assert_eq!(span_name(&agent), "invoke_agent weather-agent");
        agent.entity = Some(Arc::new(EntityInfo {
            entity_type: "agent".into(),
            id: "wa-1".into(),
            name: Some("Weather agent".into()),
        }));
        assert_eq!(span_name(&agent), "invoke_agent Weather agent");
        assert_eq!(agent_name(&agent), "Weather agent");

        assert_eq!(
            span_name(&span("plan", SpanType::WorkflowRun)),
            "invoke_workflow plan"
        );
        assert_eq!(
            span_name(&span("fetch docs", SpanType::RagVectorOperation)),
            "retrieval"
        );
        assert_eq!(
            span_name(&span("step 2", SpanType::WorkflowStep)),
            "step 2",
            "no GenAI operation: the name is kept"
        );
    }

    #[test]
    fn switches_read_their_environment_values() {
        assert_eq!(Stability::from_opt_in(None), Stability::Default);
        assert_eq!(
            Stability::from_opt_in(Some("http, GEN_AI_LATEST_EXPERIMENTAL ")),
            Stability::LatestExperimental
        );
        assert_eq!(Stability::from_opt_in(Some("http/dup")), Stability::Default);
        assert!(Stability::Default.writes_deprecated());
        assert!(!Stability::LatestExperimental.writes_deprecated());
        assert!(capture_content_from(Some(" True ")));
        assert!(!capture_content_from(Some("1")));
        assert!(!capture_content_from(None));
    }
}
