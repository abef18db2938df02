//! A traced agent run printed as a tree, using only the in-memory exporter.
//!
//! `cargo run -p aiobs --example agent_run`

use std::time::Duration;

use aiobs::{
    ExportedSpan, InMemoryExporter, ModelAttributes, Observability, SpanError, SpanOptions,
    SpanType, ToolAttributes, TracingOptions, Usage,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let memory = InMemoryExporter::new();
    let obs = Observability::builder().exporter(memory.clone()).build()?;

    let mut run = obs.start_span(
        SpanOptions::new("weather-agent", SpanType::AgentRun)
            .input("What is the weather in Paris?")
            .tracing(
                TracingOptions::new()
                    .user_id("user-123")
                    .session_id("session-abc")
                    .tag("demo"),
            ),
    );
    let mut llm = run.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
    );
    llm.set_usage(Usage::new(120, 30).with_cache_read(100));
    llm.end_with_output("calling get_weather");
    let mut weather = run.child(
        SpanOptions::new("get_weather", SpanType::ToolCall)
            .attributes(ToolAttributes::new("get_weather"))
            .input(serde_json::json!({"city": "Paris"})),
    );
    weather.end_with_output(serde_json::json!({"tempC": 18}));
    let mut forecast = run.child(SpanOptions::new("get_forecast", SpanType::ToolCall));
    forecast.error(SpanError::new("forecast service unavailable").with_kind("RuntimeError"));
    run.end_with_output("18°C in Paris");

    let report = obs.shutdown_blocking(Duration::from_secs(5));
    let spans = memory.ended_spans();
    print_tree(&spans, None, 0);
    println!("\n{report}");
    Ok(())
}

fn print_tree(spans: &[std::sync::Arc<ExportedSpan>], parent: Option<aiobs::SpanId>, depth: usize) {
    for s in spans.iter().filter(|s| s.parent_span_id == parent) {
        let ms = s.duration().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        let usage = s
            .attributes
            .usage()
            .map(|u| format!(" tokens in={} out={}", u.input_tokens, u.output_tokens))
            .unwrap_or_default();
        let err = s
            .error
            .as_ref()
            .map(|e| format!(" ERROR: {}", e.message))
            .unwrap_or_default();
        println!(
            "{}{} [{}] {ms:.2} ms{usage}{err}",
            "  ".repeat(depth),
            s.name,
            s.span_type.as_str()
        );
        print_tree(spans, Some(s.span_id), depth + 1);
    }
}
