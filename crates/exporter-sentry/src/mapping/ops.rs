//! Span type → Sentry `op`, `gen_ai.operation.name` and span description
//! (Sentry "AI Agents" monitoring: `gen_ai.invoke_agent`, `gen_ai.chat`,
//! `gen_ai.execute_tool`, `gen_ai.embeddings`; names `invoke_agent {agent}`,
//! `chat {model}`, `execute_tool {tool}`).

use aiobs_core::{ExportedSpan, SpanType};

/// What Sentry calls the work a span did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Operation {
    /// The span's `op`.
    pub(crate) op: String,
    /// `gen_ai.operation.name`, for AI spans.
    pub(crate) gen_ai: Option<&'static str>,
}

/// The operation of a span of this type.
pub(crate) fn operation(span_type: SpanType) -> Operation {
    let gen_ai = match span_type {
        SpanType::AgentRun => Some("invoke_agent"),
        SpanType::ModelGeneration
        | SpanType::ModelStep
        | SpanType::ModelInference
        | SpanType::ModelChunk => Some("chat"),
        SpanType::RagEmbedding => Some("embeddings"),
        t if t.is_tool() => Some("execute_tool"),
        _ => None,
    };
    Operation {
        op: match gen_ai {
            Some(name) => format!("gen_ai.{name}"),
            // Not an AI operation Sentry knows: our own type name, namespaced.
            None => format!("aiobs.{}", span_type.as_str()),
        },
        gen_ai,
    }
}

/// The agent a span belongs to: its entity's name or id, for agent runs the span name.
pub(crate) fn agent_name(span: &ExportedSpan) -> Option<String> {
    let entity = span
        .entity
        .as_ref()
        .filter(|e| e.entity_type == "agent")
        .map(|e| e.name.clone().unwrap_or_else(|| e.id.clone()));
    entity.or_else(|| (span.span_type == SpanType::AgentRun).then(|| span.name.to_string()))
}

/// The tool a span called: its tool id, else the span name.
pub(crate) fn tool_name(span: &ExportedSpan) -> String {
    span.attributes
        .tool()
        .and_then(|t| t.tool_id.as_deref())
        .unwrap_or(&span.name)
        .to_owned()
}

/// The span description Sentry's conventions give: `{operation} {subject}`
/// for AI spans whose subject is known, else the span's own name.
pub(crate) fn description(span: &ExportedSpan, op: &Operation) -> String {
    let subject = match op.gen_ai {
        Some("invoke_agent") => agent_name(span),
        Some("chat" | "embeddings") => span
            .attributes
            .model()
            .and_then(|m| m.model.as_deref())
            .map(str::to_owned),
        Some("execute_tool") => Some(tool_name(span)),
        _ => None,
    };
    match (op.gen_ai, subject) {
        (Some(name), Some(subject)) => format!("{name} {subject}"),
        _ => span.name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_an_op_and_ai_types_follow_sentry() {
        for t in SpanType::ALL {
            let op = operation(t);
            assert!(!op.op.is_empty());
            if let Some(name) = op.gen_ai {
                assert_eq!(op.op, format!("gen_ai.{name}"));
            } else {
                assert!(op.op.starts_with("aiobs."), "{}", op.op);
            }
        }
        assert_eq!(operation(SpanType::AgentRun).op, "gen_ai.invoke_agent");
        assert_eq!(operation(SpanType::ModelGeneration).op, "gen_ai.chat");
        assert_eq!(operation(SpanType::McpToolCall).op, "gen_ai.execute_tool");
        assert_eq!(operation(SpanType::RagEmbedding).op, "gen_ai.embeddings");
        assert_eq!(operation(SpanType::WorkflowStep).op, "aiobs.workflow_step");
    }
}
