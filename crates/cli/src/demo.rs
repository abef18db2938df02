//! `aiobs demo`: a simulated support-agent run, traced for real.
//!
//! The run answers "where is my order?": an agent calls a model in two steps;
//! the first step calls two tools, one of which times out; a workflow checks
//! refund eligibility; a judge scores the answer and the user gives a thumbs up.
//! Sleeps stand in for the model and the tools, so durations look real.

use std::time::Duration;

use aiobs_core::{
    AgentAttributes, FeedbackRecord, LogLevel, LogRecord, ModelAttributes, Observability,
    ScoreRecord, Span, SpanError, SpanOptions, SpanType, ToolAttributes, TraceId, TracingOptions,
    Usage, WorkflowAttributes,
};
use serde_json::json;

async fn work(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn model(usage: Usage, finish: &str) -> ModelAttributes {
    let mut m = ModelAttributes::new("gpt-4o-mini", "openai")
        .with_parameters(json!({"temperature": 0.2, "max_tokens": 512}))
        .with_usage(usage);
    m.finish_reason = Some(finish.to_owned());
    m.response_model = Some("gpt-4o-mini-2024-07-18".into());
    m
}

fn tool(name: &'static str, success: bool) -> ToolAttributes {
    let mut t = ToolAttributes::new(name);
    t.tool_type = Some("function".into());
    t.success = Some(success);
    t
}

async fn tool_call(parent: &Span, name: &'static str, input: serde_json::Value) -> Span {
    parent.child(
        SpanOptions::new(name, SpanType::ToolCall)
            .attributes(tool(name, true))
            .input(input),
    )
}

async fn workflow_step(parent: &Span, name: &'static str, ms: u64, output: serde_json::Value) {
    let mut attrs = WorkflowAttributes::default();
    attrs.step_id = Some(name.to_owned());
    attrs.status = Some("success".into());
    let mut step = parent.child(SpanOptions::new(name, SpanType::WorkflowStep).attributes(attrs));
    work(ms).await;
    step.end_with_output(output);
}

/// Records the run and returns its trace id.
pub(crate) async fn simulate(obs: &Observability) -> TraceId {
    let question = "My order #1234 hasn't arrived yet. Where is it?";
    let mut agent = AgentAttributes::default();
    agent.agent_id = Some("support-agent".into());
    agent.instructions = Some("You help customers with orders. Be brief.".into());
    agent.max_steps = Some(5);
    agent.available_tools = vec![
        "lookup_order".into(),
        "get_tracking".into(),
        "issue_refund".into(),
    ];
    let mut run = obs.start_span(
        SpanOptions::new("support-agent", SpanType::AgentRun)
            .attributes(agent)
            .entity("agent", "support-agent", Some("Support Agent".into()))
            .input(json!({"message": question}))
            .tracing(
                TracingOptions::new()
                    .user_id("user-4821")
                    .session_id("session-7f3a")
                    .tag("demo")
                    .tag("customer-support")
                    .metadata("app_version", "1.4.2")
                    .metadata("environment", "demo"),
            ),
    );
    let trace_id = run.trace_id();

    let mut generation = run.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai"))
            .input(json!([{"role": "user", "content": question}])),
    );

    // Step 1: the model asks for two tools.
    let mut step1 = generation.child(SpanOptions::new("step 1", SpanType::ModelStep));
    work(40).await;
    let mut lookup = tool_call(&step1, "lookup_order", json!({"order_id": "1234"})).await;
    work(15).await;
    lookup.end_with_output(
        json!({"status": "shipped", "carrier": "PostNL", "shipped_at": "2026-11-20"}),
    );
    let mut tracking = tool_call(
        &step1,
        "get_tracking",
        json!({"order_id": "1234", "carrier": "PostNL"}),
    )
    .await;
    work(60).await;
    tracking.set_attributes(tool("get_tracking", false));
    obs.log(
        LogRecord::new(
            LogLevel::Warn,
            "carrier API timed out; answering from the order status",
        )
        .in_span(trace_id, tracking.span_id()),
    );
    tracking.error(SpanError::new("carrier API timed out after 2.0 s").with_kind("TimeoutError"));
    step1.set_attributes(model(
        Usage::new(1180, 64).with_cache_read(1024),
        "tool_calls",
    ));
    step1.end_with_output(json!({"tool_calls": ["lookup_order", "get_tracking"]}));

    // Step 2: the model answers.
    let mut step2 = generation.child(SpanOptions::new("step 2", SpanType::ModelStep));
    work(70).await;
    let answer = "Your order #1234 shipped on 20 November with PostNL. Live tracking is \
                  unavailable right now; it should arrive within two working days.";
    step2.set_attributes(model(Usage::new(1320, 96).with_cache_read(1152), "stop"));
    step2.end_with_output(answer);
    generation.set_attributes(model(
        Usage::new(2500, 160)
            .with_cache_read(2176)
            .with_reasoning(32),
        "stop",
    ));
    generation.end_with_output(answer);

    // A workflow decides whether a refund is due.
    let mut wf_attrs = WorkflowAttributes::default();
    wf_attrs.step_id = Some("refund-eligibility".into());
    wf_attrs.status = Some("success".into());
    let mut workflow = run.child(
        SpanOptions::new("refund-eligibility", SpanType::WorkflowRun)
            .attributes(wf_attrs)
            .entity("workflow", "refund-eligibility", None),
    );
    workflow_step(
        &workflow,
        "fetch-order-history",
        20,
        json!({"orders": 3, "late": 0}),
    )
    .await;
    workflow_step(
        &workflow,
        "check-policy",
        10,
        json!({"late_delivery_refund_after_days": 7}),
    )
    .await;
    workflow_step(
        &workflow,
        "decide",
        5,
        json!({"eligible": false, "reason": "not late yet"}),
    )
    .await;
    workflow.end_with_output(json!({"eligible": false}));

    run.end_with_output(json!({"answer": answer}));

    let mut score = ScoreRecord::new(trace_id, "helpfulness", 0.82)
        .with_comment("gave the shipping status; tracking was unavailable");
    score.source = Some("llm-judge".into());
    obs.score(score);
    let mut thumbs = FeedbackRecord::new(trace_id, "thumbs", 1);
    thumbs.user_id = Some("user-4821".into());
    obs.feedback(thumbs);
    trace_id
}
