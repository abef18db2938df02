//! The request handler of the serverless example, shared with
//! `tests/serverless.rs`: each request records one trace of five spans and
//! flushes that trace before the response is sent.

use std::time::Duration;

use aiobs_core::{
    ModelAttributes, Observability, SpanOptions, SpanType, ToolAttributes, TraceId, Usage,
};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// What every request handler shares.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The telemetry pipeline (background or inline mode).
    pub(crate) obs: Observability,
    /// Longest the handler waits for its trace to be delivered.
    pub(crate) flush_timeout: Duration,
}

/// `GET /weather/{city}`.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/weather/{city}", get(weather))
        .with_state(state)
}

async fn weather(State(state): State<AppState>, Path(city): Path<String>) -> Json<Value> {
    let (trace_id, answer) = run_agent(&state.obs, &city);
    // Deliver this request's spans before answering: in a serverless isolate
    // nothing runs after the response, so anything still queued would be lost.
    let report = state.obs.flush_trace(trace_id, state.flush_timeout).await;
    if !report.completed {
        // Telemetry never fails the request; the report says what is pending.
        eprintln!("telemetry for trace {trace_id} not delivered in time: {report}");
    }
    Json(json!({
        "trace_id": trace_id.to_string(),
        "answer": answer,
        "telemetry_flushed": report.completed,
    }))
}

/// A pretend agent: a model call decides on two tools, a second model call answers.
fn run_agent(obs: &Observability, city: &str) -> (TraceId, String) {
    let mut run = obs.start_span(
        SpanOptions::new("weather-agent", SpanType::AgentRun).input(json!({ "city": city })),
    );
    let mut plan = run.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
    );
    plan.set_usage(Usage::new(120, 18).with_cache_read(100));
    plan.end_with_output("call get_weather and get_forecast");
    let mut now = run.child(
        SpanOptions::new("get_weather", SpanType::ToolCall)
            .attributes(ToolAttributes::new("get_weather"))
            .input(json!({ "city": city })),
    );
    now.end_with_output(json!({ "temp_c": 18 }));
    let mut forecast = run.child(
        SpanOptions::new("get_forecast", SpanType::ToolCall)
            .attributes(ToolAttributes::new("get_forecast"))
            .input(json!({ "city": city })),
    );
    forecast.end_with_output(json!({ "tomorrow": "rain" }));
    let answer = format!("{city}: 18°C now, rain tomorrow");
    let mut reply = run.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
    );
    reply.set_usage(Usage::new(160, 12));
    reply.end_with_output(&answer);
    run.end_with_output(&answer);
    (run.trace_id(), answer)
}
