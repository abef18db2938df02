//! The core benchmark: the same agent workload through aiobs and through
//! `opentelemetry_sdk` (BatchSpanProcessor, large queue, counting exporter), in
//! one process with the same allocator, alternating rounds. The ratio is the
//! median of the rounds' ratios (a round's two runs share the machine's
//! momentary load); the ns/span figures are medians of each side.
//!
//! `cargo xtask bench [--spans N] [--rounds R]`. The last line printed is JSON.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aiobs_core::{
    AgentAttributes, BatchPolicy, ExportBatch, ExportError, ExportOutcome, Exporter,
    ExporterContext, ModelAttributes, Observability, OverflowPolicy, RetryPolicy, Sampler,
    SensitiveDataFilter, Signals, SpanOptions, SpanType, ToolAttributes, Usage, async_trait,
};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};

const SPANS_PER_TRACE: u64 = 5;

// Both sides share whatever allocator the binary uses: glibc by default,
// mimalloc with `--features mimalloc`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Counts what it is given: the floor of an exporter.
#[derive(Debug, Default, Clone)]
struct Counting(Arc<AtomicU64>);

#[async_trait]
impl Exporter for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn signals(&self) -> Signals {
        Signals::ENDED_SPANS
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default()
            .with_max_events(2048)
            .with_queue_capacity(65_536)
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    async fn init(&self, _c: &ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(ExportOutcome::all_delivered())
    }
    async fn flush(&self, _d: Instant) -> Result<(), ExportError> {
        Ok(())
    }
    async fn shutdown(&self, _d: Instant) -> Result<(), ExportError> {
        Ok(())
    }
}

#[derive(Debug, Default, Clone)]
struct OtelCounting(Arc<AtomicU64>);

impl SpanExporter for OtelCounting {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn payload(tag: &str) -> String {
    // ~200 bytes, like a short prompt or tool result.
    format!(
        "{tag}: {}",
        "What is the weather in Paris tomorrow, and should I bring an umbrella? ".repeat(3)
    )
}

fn aiobs_trace(obs: &Observability, input: &str, output: &str) {
    let mut run = obs.start_span(
        SpanOptions::new("agent run: weather-agent", SpanType::AgentRun)
            .attributes(AgentAttributes::default())
            .input(input),
    );
    let mut llm = run.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai"))
            .input(input),
    );
    let mut step = llm.child(
        SpanOptions::new("step 0", SpanType::ModelStep)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
    );
    for tool in ["get_weather", "get_forecast"] {
        let mut t = step.child(
            SpanOptions::new(tool, SpanType::ToolCall)
                .attributes(ToolAttributes::new(tool))
                .input(input),
        );
        t.end_with_output(output);
    }
    step.set_usage(Usage::new(120, 30));
    step.end();
    llm.set_usage(Usage::new(120, 30).with_cache_read(100).with_reasoning(0));
    llm.end_with_output(output);
    run.end_with_output(output);
}

fn otel_trace(tracer: &opentelemetry_sdk::trace::SdkTracer, input: &str, output: &str) {
    use opentelemetry::Context;
    let mut run = tracer.start("agent run: weather-agent");
    run.set_attribute(KeyValue::new("gen_ai.operation.name", "invoke_agent"));
    run.set_attribute(KeyValue::new("input", input.to_owned()));
    let run_cx = Context::current_with_span(run);
    let mut llm = tracer.start_with_context("chat gpt-4o-mini", &run_cx);
    llm.set_attribute(KeyValue::new("gen_ai.request.model", "gpt-4o-mini"));
    llm.set_attribute(KeyValue::new("gen_ai.system", "openai"));
    llm.set_attribute(KeyValue::new("input", input.to_owned()));
    let llm_cx = run_cx.with_span(llm);
    let mut step = tracer.start_with_context("step 0", &llm_cx);
    step.set_attribute(KeyValue::new("gen_ai.request.model", "gpt-4o-mini"));
    step.set_attribute(KeyValue::new("gen_ai.system", "openai"));
    let step_cx = llm_cx.with_span(step);
    for tool in ["get_weather", "get_forecast"] {
        let mut t = tracer.start_with_context(tool, &step_cx);
        t.set_attribute(KeyValue::new("gen_ai.tool.name", tool));
        t.set_attribute(KeyValue::new("input", input.to_owned()));
        t.set_attribute(KeyValue::new("output", output.to_owned()));
        t.end();
    }
    let step = step_cx.span();
    step.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", 120));
    step.set_attribute(KeyValue::new("gen_ai.usage.output_tokens", 30));
    step.end();
    let llm = llm_cx.span();
    llm.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", 120));
    llm.set_attribute(KeyValue::new("gen_ai.usage.output_tokens", 30));
    llm.set_attribute(KeyValue::new("gen_ai.usage.cache_read.input_tokens", 100));
    llm.set_attribute(KeyValue::new("output", output.to_owned()));
    llm.end();
    let run = run_cx.span();
    run.set_attribute(KeyValue::new("output", output.to_owned()));
    run.end();
}

/// Resets the kernel's peak-RSS mark for this process.
fn reset_peak_rss() {
    let _ignored_if_unsupported = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Run {
    ns_per_span: f64,
    delivered: u64,
    dropped: u64,
    peak_rss_mb: f64,
}

enum Variant {
    Plain,
    Filtered,
    Unsampled,
}

fn run_aiobs(spans: u64, variant: Variant) -> Run {
    let counter = Counting::default();
    let mut builder =
        Observability::builder()
            .exporter(counter.clone())
            .overflow(OverflowPolicy::Block {
                timeout: Duration::from_secs(30),
            });
    match variant {
        Variant::Plain => {}
        Variant::Filtered => builder = builder.processor(SensitiveDataFilter::new()),
        Variant::Unsampled => builder = builder.sampler(Sampler::Never),
    }
    let obs = match builder.build() {
        Ok(o) => o,
        Err(e) => panic!("cannot build the pipeline: {e}"),
    };
    let (input, output) = (payload("input"), payload("output"));
    reset_peak_rss();
    let start = Instant::now();
    for _ in 0..spans / SPANS_PER_TRACE {
        aiobs_trace(&obs, &input, &output);
    }
    let emitted = start.elapsed();
    let report = obs.flush_blocking(Duration::from_secs(120));
    if std::env::var("AIOBS_BENCH_DEBUG").is_ok() {
        eprintln!(
            "  emit {:?}, flush {:?}",
            emitted,
            start.elapsed() - emitted
        );
    }
    let elapsed = start.elapsed();
    let stats = obs.stats();
    let dropped = report.lost() + stats.exporters.iter().map(|e| e.pending).sum::<u64>();
    let _final = obs.shutdown_blocking(Duration::from_secs(10));
    Run {
        ns_per_span: elapsed.as_nanos() as f64 / spans as f64,
        delivered: counter.0.load(Ordering::Relaxed),
        dropped,
        peak_rss_mb: peak_rss_mb(),
    }
}

fn run_otel(spans: u64) -> Run {
    let counter = OtelCounting::default();
    let processor = BatchSpanProcessor::builder(counter.clone())
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(spans as usize)
                .with_max_export_batch_size(2048)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("bench");
    let (input, output) = (payload("input"), payload("output"));
    reset_peak_rss();
    let start = Instant::now();
    for _ in 0..spans / SPANS_PER_TRACE {
        otel_trace(&tracer, &input, &output);
    }
    let flushed = provider.force_flush();
    let elapsed = start.elapsed();
    let delivered = counter.0.load(Ordering::Relaxed);
    if let Err(e) = flushed {
        eprintln!("otel force_flush: {e}");
    }
    let _shutdown = provider.shutdown();
    Run {
        ns_per_span: elapsed.as_nanos() as f64 / spans as f64,
        delivered,
        dropped: spans - delivered.min(spans),
        peak_rss_mb: peak_rss_mb(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let spans = arg("--spans", 1_000_000) / SPANS_PER_TRACE * SPANS_PER_TRACE;
    let rounds = arg("--rounds", 5).max(1);
    println!(
        "workload: {spans} spans as {} traces of 5 (agent > generation > step > 2 tools), ~200 B input/output",
        spans / SPANS_PER_TRACE
    );
    println!(
        "rounds: {rounds}, alternating aiobs and opentelemetry_sdk 0.33 (BatchSpanProcessor, queue {spans}); medians\n"
    );

    if std::env::args().any(|a| a == "--aiobs-only") {
        // For profiling: the aiobs side alone.
        let a = run_aiobs(spans, Variant::Plain);
        println!(
            "aiobs {:.1} ns/span delivered {}",
            a.ns_per_span, a.delivered
        );
        return;
    }
    let mut aiobs = Vec::new();
    let mut otel = Vec::new();
    for round in 1..=rounds {
        let a = run_aiobs(spans, Variant::Plain);
        println!(
            "round {round}: aiobs {:>7.1} ns/span  delivered {} dropped {} peak RSS {:.0} MB",
            a.ns_per_span, a.delivered, a.dropped, a.peak_rss_mb
        );
        let o = run_otel(spans);
        println!(
            "round {round}: otel  {:>7.1} ns/span  delivered {} dropped {} peak RSS {:.0} MB",
            o.ns_per_span, o.delivered, o.dropped, o.peak_rss_mb
        );
        aiobs.push(a);
        otel.push(o);
    }
    let filtered = run_aiobs(spans / 4, Variant::Filtered);
    let plain_small = run_aiobs(spans / 4, Variant::Plain);
    let unsampled = run_aiobs(spans, Variant::Unsampled);

    let a_ns = median(aiobs.iter().map(|r| r.ns_per_span).collect());
    let o_ns = median(otel.iter().map(|r| r.ns_per_span).collect());
    let mut ratios: Vec<f64> = aiobs
        .iter()
        .zip(&otel)
        .map(|(a, o)| o.ns_per_span / a.ns_per_span)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let ratio = median(ratios.clone());
    let delivered = aiobs.iter().map(|r| r.delivered).min().unwrap_or(0);
    let dropped = aiobs.iter().map(|r| r.dropped).max().unwrap_or(0);
    // The first round runs before any OpenTelemetry run: later rounds start
    // with whatever heap those left behind (glibc keeps freed memory).
    let rss = aiobs.first().map_or(0.0, |r| r.peak_rss_mb);
    let otel_rss = otel.iter().map(|r| r.peak_rss_mb).fold(0.0, f64::max);
    println!();
    println!(
        "aiobs:  {a_ns:.1} ns/span (median), every round delivered >= {delivered}, dropped <= {dropped}, peak RSS {rss:.0} MB (round 1)"
    );
    println!("otel:   {o_ns:.1} ns/span (median), peak RSS {otel_rss:.0} MB");
    println!(
        "ratio otel/aiobs: {ratio:.2} (median of the rounds' ratios: {}; target >= 1.5)",
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "unsampled trace: {:.1} ns/span ({:.1}% of a sampled span)",
        unsampled.ns_per_span,
        100.0 * unsampled.ns_per_span / a_ns
    );
    println!(
        "SensitiveDataFilter: {:.1} ns/span vs {:.1} without ({:.2}x) on {} spans",
        filtered.ns_per_span,
        plain_small.ns_per_span,
        filtered.ns_per_span / plain_small.ns_per_span,
        spans / 4
    );
    println!(
        "{}",
        serde_json::json!({
            "spans": spans,
            "aiobs_ns_per_span": (a_ns * 10.0).round() / 10.0,
            "otel_ns_per_span": (o_ns * 10.0).round() / 10.0,
            "ratio_otel_over_aiobs": (ratio * 100.0).round() / 100.0,
            "round_ratios": ratios.iter().map(|r| (r * 100.0).round() / 100.0).collect::<Vec<_>>(),
            "delivered": delivered,
            "dropped": dropped,
            "peak_rss_mb": rss.round(),
            "unsampled_ns_per_span": (unsampled.ns_per_span * 10.0).round() / 10.0,
            "filter_ns_per_span": (filtered.ns_per_span * 10.0).round() / 10.0,
        })
    );
}
