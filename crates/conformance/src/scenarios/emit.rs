//! Emitting spans the scenarios can check afterwards.

use aiobs_core::{Observability, Span, SpanId, SpanOptions, SpanType, TraceId};
use serde_json::{Value, json};

/// What the kit emitted and expects at the destination.
#[derive(Debug, Clone)]
pub(crate) struct ExpectedSpan {
    pub(crate) id: SpanId,
    pub(crate) trace: TraceId,
    pub(crate) parent: Option<SpanId>,
    pub(crate) name: String,
    /// Checked when the probe decodes it; `None`: not checked.
    pub(crate) input: Option<Value>,
    pub(crate) output: Option<Value>,
}

impl ExpectedSpan {
    /// Records a running span (before it is ended).
    pub(crate) fn of(span: &Span, parent: Option<&Span>, name: &str) -> Self {
        Self {
            id: span.span_id(),
            trace: span.trace_id(),
            parent: parent.map(Span::span_id),
            name: name.to_owned(),
            input: None,
            output: None,
        }
    }
    pub(crate) fn with_payload(mut self, input: Option<Value>, output: Option<Value>) -> Self {
        self.input = input;
        self.output = output;
        self
    }
    /// Identity as in `ObservabilityEvent::identity()`.
    pub(crate) fn ended_identity(&self) -> String {
        format!("span:{}:ended", self.id)
    }
    /// How failure messages name it.
    pub(crate) fn describe(&self) -> String {
        format!(
            "span {} (`{}`, trace {})",
            self.id,
            self.name,
            short(&self.trace.to_string())
        )
    }
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

/// `span:<id>:<kind>` → (id, whether the event is the span's end).
pub(crate) fn span_identity(identity: &str) -> Option<(String, bool)> {
    let rest = identity.strip_prefix("span:")?;
    let (id, kind) = rest.split_once(':')?;
    Some((id.to_owned(), kind == "ended"))
}

/// Emits one trace: a root (agent run) and `children` children (alternating
/// model generations and tool calls; the second child has a grandchild), each
/// with its own input and output. Children end before the root.
pub(crate) fn emit_trace(obs: &Observability, label: &str, children: usize) -> Vec<ExpectedSpan> {
    let root_name = label.to_owned();
    let root_input = json!({"scenario": label, "question": "What is the weather in Paris?"});
    let root = obs.start_span(
        SpanOptions::new(root_name.clone(), SpanType::AgentRun).input(root_input.clone()),
    );
    let mut expected = Vec::new();
    let mut root_expected = ExpectedSpan::of(&root, None, &root_name);
    for i in 0..children {
        let name = format!("{label}/child-{i}");
        let kind = if i % 2 == 0 {
            SpanType::ModelGeneration
        } else {
            SpanType::ToolCall
        };
        let input = json!({"step": i, "text": format!("input of {name}")});
        let output = json!({"step": i, "ok": true, "items": [1, 2, 3]});
        let mut child = root.child(SpanOptions::new(name.clone(), kind).input(input.clone()));
        let exp = ExpectedSpan::of(&child, Some(&root), &name)
            .with_payload(Some(input), Some(output.clone()));
        if i == 1 {
            let gname = format!("{name}/grandchild");
            let mut grandchild = child.child(SpanOptions::new(gname.clone(), SpanType::Generic));
            expected.push(ExpectedSpan::of(&grandchild, Some(&child), &gname));
            grandchild.end();
        }
        child.end_with_output(output);
        expected.push(exp);
    }
    let root_output = json!({"answer": format!("sunny ({label})")});
    let mut root = root;
    root.end_with_output(root_output.clone());
    root_expected = root_expected.with_payload(Some(root_input), Some(root_output));
    expected.insert(0, root_expected);
    expected
}

/// Emits `n` traces labelled `<prefix>-<i>`.
pub(crate) fn emit_traces(
    obs: &Observability,
    prefix: &str,
    n: usize,
    children: usize,
) -> Vec<ExpectedSpan> {
    (0..n)
        .flat_map(|i| emit_trace(obs, &format!("{prefix}-{i}"), children))
        .collect()
}
