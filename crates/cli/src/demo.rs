//! `aiobs demo`: a realistic simulated agent run, traced into the store (and
//! into any exporter the environment configures), then read back and shown.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use aiobs_core::{
    AgentAttributes, Cost, FeedbackRecord, ModelAttributes, Observability, ScoreRecord,
    SensitiveDataFilter, Span, SpanError, SpanOptions, SpanType, ToolAttributes, TracingOptions,
    Usage, WorkflowAttributes,
};
use aiobs_exporter_cloud::CloudExporter;
use aiobs_exporter_default::{DatabaseUrl, DefaultExporter, Storage};
use aiobs_exporter_langfuse::LangfuseExporter;
use aiobs_exporter_sentry::SentryExporter;
use aiobs_otel_bridge::OtelExporter;

use crate::{Error, render};

/// Runs the demo; the exit code says whether everything was delivered.
pub(crate) async fn run(
    store: Arc<dyn Storage>,
    url: &DatabaseUrl,
    json: bool,
) -> Result<ExitCode, Error> {
    let mut builder = Observability::builder()
        .service_name("aiobs-demo")
        .processor(SensitiveDataFilter::new())
        .exporter(DefaultExporter::builder_shared(store.clone()).build()?);
    let mut destinations = vec![format!("{url}")];
    // Exporters configured by environment, as their vendors' SDKs read it.
    if std::env::var_os("LANGFUSE_PUBLIC_KEY").is_some() {
        builder = builder.exporter(LangfuseExporter::from_env()?);
        destinations.push("langfuse".into());
    }
    if std::env::var_os("AIOBS_CLOUD_ENDPOINT").is_some() {
        builder = builder.exporter(CloudExporter::from_env()?);
        destinations.push("cloud".into());
    }
    let otel_endpoint = [
        aiobs_otel_bridge::ENV_ENDPOINT,
        aiobs_otel_bridge::ENV_TRACES_ENDPOINT,
    ];
    if otel_endpoint.iter().any(|v| std::env::var_os(v).is_some()) {
        let otel = OtelExporter::from_env()?;
        destinations.push(format!("otel ({})", otel.traces_url()));
        builder = builder.exporter(otel);
    }
    if std::env::var_os("SENTRY_DSN").is_some() {
        builder = builder.exporter(SentryExporter::from_env()?);
        destinations.push("sentry".into());
    }
    let obs = builder.build()?;

    let trace_id = simulate_agent_run(&obs).await;
    let report = obs.shutdown(Duration::from_secs(30)).await;

    let summary = format!(
        "traced one agent run into {}\n{report}",
        destinations.join(", ")
    );
    match store.get_trace(trace_id).await? {
        // JSON mode keeps stdout for the trace alone.
        Some(trace) if json => {
            eprint!("{summary}");
            println!("{}", serde_json::to_string_pretty(&trace)?);
        }
        Some(trace) => {
            print!("{summary}\n{}", render::trace_tree(&trace));
            println!("\nnext: aiobs traces show {trace_id}   |   aiobs traces list");
        }
        None => eprintln!("{summary}the trace {trace_id} is not in the store"),
    }
    Ok(if report.is_success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("some events were not delivered (see the report above)");
        ExitCode::FAILURE
    })
}

async fn work(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn tool(
    parent: &Span,
    name: &'static str,
    input: serde_json::Value,
    result: Result<serde_json::Value, &str>,
) {
    let mut t = parent.child(
        SpanOptions::new(name, SpanType::ToolCall)
            .attributes(ToolAttributes::new(name))
            .input(input),
    );
    work(12).await;
    match result {
        Ok(out) => t.end_with_output(out),
        Err(e) => t.error(SpanError::new(e).with_kind("ServiceUnavailable")),
    }
}

/// One run of a weather agent: a workflow of three steps, two model calls
/// (one with cached prompt tokens), two tool calls (one failing), a score and
/// user feedback.
async fn simulate_agent_run(obs: &Observability) -> aiobs_core::TraceId {
    let question = "What is the weather in Paris tomorrow, and do I need an umbrella?";
    let mut run = obs.start_span(
        SpanOptions::new("weather-agent", SpanType::AgentRun)
            .attributes(AgentAttributes::default())
            .entity("agent", "weather-agent", Some("Weather agent".into()))
            .input(serde_json::json!({"question": question, "api_key": "sk-demo-not-a-real-key"}))
            .tracing(
                TracingOptions::new()
                    .user_id("user-123")
                    .session_id("session-abc")
                    .tag("demo")
                    .tag("prod")
                    .metadata("tenant", "acme")
                    .metadata("app_version", "1.4.2"),
            ),
    );
    let trace_id = run.trace_id();

    let mut workflow = run.child(SpanOptions::new("plan-and-answer", SpanType::WorkflowRun));

    let mut understand = workflow.child(
        SpanOptions::new("understand request", SpanType::WorkflowStep)
            .attributes(WorkflowAttributes::default())
            .input(question),
    );
    work(5).await;
    understand.end_with_output(serde_json::json!({"city": "Paris", "when": "tomorrow"}));

    let mut gather = workflow.child(SpanOptions::new("gather data", SpanType::WorkflowStep));
    let mut llm = gather.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(
                ModelAttributes::new("gpt-4o-mini", "openai")
                    .with_parameters(serde_json::json!({"temperature": 0.2, "max_tokens": 256})),
            )
            .input(serde_json::json!([{"role": "user", "content": question}])),
    );
    let mut step = llm.child(
        SpanOptions::new("step 0", SpanType::ModelStep)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
    );
    work(30).await;
    tool(
        &step,
        "get_weather",
        serde_json::json!({"city": "Paris"}),
        Ok(serde_json::json!({"tempC": 18, "rain_mm": 4})),
    )
    .await;
    tool(
        &step,
        "get_forecast",
        serde_json::json!({"city": "Paris", "days": 1}),
        Err("forecast service unavailable"),
    )
    .await;
    step.set_usage(Usage::new(120, 30).with_cache_read(100));
    step.end();
    llm.set_usage(
        Usage::new(120, 30)
            .with_cache_read(100)
            .with_reasoning(0)
            .with_cost(Cost::new(0.000018, 0.000018)),
    );
    llm.end_with_output(
        serde_json::json!({"role": "assistant", "tool_calls": ["get_weather", "get_forecast"]}),
    );
    gather.end();

    let mut answer = workflow.child(SpanOptions::new("answer", SpanType::WorkflowStep));
    let mut final_llm = answer.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai"))
            .input(
                serde_json::json!([{"role": "tool", "content": "{\"tempC\": 18, \"rain_mm\": 4}"}]),
            ),
    );
    work(25).await;
    final_llm.set_usage(Usage::new(300, 80).with_cache_read(256));
    let reply = "Tomorrow in Paris: 18°C with light rain (about 4 mm). Take an umbrella.";
    final_llm.end_with_output(reply);
    answer.end_with_output(reply);
    workflow.end();
    run.end_with_output(reply);

    obs.score(
        ScoreRecord::new(trace_id, "helpfulness", 0.9).with_comment("answered with a caveat"),
    );
    obs.feedback(FeedbackRecord::new(trace_id, "user_feedback", 1));
    trace_id
}
