//! Span → Sentry `op` and description (Sentry "AI Agents" monitoring:
//! `gen_ai.invoke_agent`, `gen_ai.chat`, `gen_ai.execute_tool`,
//! `gen_ai.embeddings`; names `invoke_agent {agent}`, `chat {model}`,
//! `execute_tool {tool}`). The operation and the name come from the
//! workspace's GenAI conventions table ([`aiobs_core::semconv`]); Sentry's
//! `op` is the operation under `gen_ai.`.

use aiobs_core::ExportedSpan;
use aiobs_core::semconv::{self, Operation};

/// The span's `op`: `gen_ai.{operation}` for GenAI spans, else
/// `aiobs.{span type}` (e.g. `aiobs.workflow_step`).
pub(crate) fn op(span: &ExportedSpan) -> String {
    match Operation::of(span) {
        Some(o) => format!("gen_ai.{}", o.as_str()),
        None => format!("aiobs.{}", span.span_type.as_str()),
    }
}

/// The span's description: the conventions' name (`chat gpt-4o-mini`), or
/// the span's own name for spans without a GenAI operation.
pub(crate) fn description(span: &ExportedSpan) -> String {
    semconv::span_name(span).into_owned()
}

#[cfg(test)]
mod tests {
    use aiobs_core::{ModelAttributes, SpanId, SpanType, TraceId};

    use super::*;

    fn span(t: SpanType) -> ExportedSpan {
        ExportedSpan::new(TraceId::random(), SpanId::random(), "name", t)
    }

    #[test]
    fn ai_types_follow_sentry_and_others_are_namespaced() {
        assert_eq!(op(&span(SpanType::AgentRun)), "gen_ai.invoke_agent");
        assert_eq!(op(&span(SpanType::ModelGeneration)), "gen_ai.chat");
        assert_eq!(op(&span(SpanType::McpToolCall)), "gen_ai.execute_tool");
        assert_eq!(op(&span(SpanType::RagEmbedding)), "gen_ai.embeddings");
        assert_eq!(op(&span(SpanType::WorkflowStep)), "aiobs.workflow_step");
        let mut chat = span(SpanType::ModelGeneration);
        chat.attributes = ModelAttributes::new("gpt-4o-mini", "openai").into();
        assert_eq!(description(&chat), "chat gpt-4o-mini");
        assert_eq!(description(&span(SpanType::WorkflowStep)), "name");
    }
}
