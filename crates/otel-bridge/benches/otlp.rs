//! `OtelExporter` against `opentelemetry-otlp` behind a `BatchSpanProcessor`,
//! on the same workload, in one process, each sending OTLP/HTTP protobuf
//! (no compression, both libraries' default) to its own loopback server
//! (the conformance kit's scripted server, answering `200`).
//!
//! `cargo bench -p aiobs-otel-bridge --bench otlp [-- --spans N --rounds R]`
//! (`--timeline` also prints when emission ended and the gaps between
//! requests; `--only aiobs` runs the aiobs side alone, e.g. under a profiler).
//!
//! Three sides:
//! - `aiobs OtelExporter`: the pipeline's worker calls the OTLP exporter
//!   directly; overflow policy `Block`, so nothing is dropped;
//! - `otlp + BSP (defaults)`: the SDK's `BatchSpanProcessor` with its default
//!   queue of 2048 spans — it drops what does not fit, silently, and
//!   `force_flush()` still answers `Ok`;
//! - `otlp + BSP (queue = N)`: a queue large enough for the whole round, the
//!   fair throughput baseline.
//!
//! Per round and side: spans emitted, then flushed; spans/s from the first
//! span to the flush's return; bytes per *delivered* span (request bodies as
//! sent); spans delivered, counted by decoding every body after the clock
//! stopped; silent drops = emitted − delivered while the flush said `Ok`.
//! Figures are medians of the rounds; ratios are aiobs / baseline.

use std::time::{Duration, Instant};

use aiobs_conformance::http::ScriptedHttpServer;
use aiobs_core::{
    AgentAttributes, BatchPolicy, ModelAttributes, Observability, OverflowPolicy, SpanOptions,
    SpanType, ToolAttributes, TracingOptions, Usage,
};
use aiobs_otel_bridge::OtelExporter;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use prost::Message;

const SPANS_PER_TRACE: usize = 5;
const BATCH: usize = 512;

fn payload(tag: &str) -> String {
    // ~200 bytes, like a short prompt or tool result.
    format!(
        "{tag}: {}",
        "What is the weather in Paris tomorrow, and should I bring an umbrella? ".repeat(3)
    )
}

/// One agent run: root, model generation, two tool calls, a second generation.
fn aiobs_trace(obs: &Observability, input: &str, output: &str) {
    let mut run = obs.start_span(
        SpanOptions::new("weather-agent", SpanType::AgentRun)
            .attributes(AgentAttributes::default())
            .input(input)
            .tracing(TracingOptions::new().session_id("session-abc")),
    );
    let model = |name: &'static str, usage: Usage| {
        let mut s = run.child(
            SpanOptions::new(name, SpanType::ModelGeneration)
                .attributes(ModelAttributes::new("gpt-4o-mini", "openai"))
                .input(input),
        );
        s.set_usage(usage);
        s.end_with_output(output);
    };
    model("chat gpt-4o-mini", Usage::new(120, 30).with_cache_read(100));
    for tool in ["get_weather", "get_forecast"] {
        let mut t = run.child(
            SpanOptions::new(tool, SpanType::ToolCall)
                .attributes(ToolAttributes::new(tool))
                .input(input),
        );
        t.end_with_output(output);
    }
    model("chat gpt-4o-mini", Usage::new(160, 12));
    run.end_with_output(output);
}

/// The same run with the OpenTelemetry API and the attributes `OtelExporter` writes.
fn otel_trace(tracer: &opentelemetry_sdk::trace::SdkTracer, input: &str, output: &str) {
    let mut run = tracer.start("invoke_agent weather-agent");
    run.set_attribute(KeyValue::new("gen_ai.operation.name", "invoke_agent"));
    run.set_attribute(KeyValue::new("gen_ai.agent.name", "weather-agent"));
    run.set_attribute(KeyValue::new("session.id", "session-abc"));
    run.set_attribute(KeyValue::new("gen_ai.input.messages", input.to_owned()));
    let cx = opentelemetry::Context::current_with_span(run);
    let model = |input_tokens: i64, output_tokens: i64| {
        let mut s = tracer.start_with_context("chat gpt-4o-mini", &cx);
        s.set_attribute(KeyValue::new("gen_ai.operation.name", "chat"));
        s.set_attribute(KeyValue::new("gen_ai.provider.name", "openai"));
        s.set_attribute(KeyValue::new("gen_ai.request.model", "gpt-4o-mini"));
        s.set_attribute(KeyValue::new("gen_ai.input.messages", input.to_owned()));
        s.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", input_tokens));
        s.set_attribute(KeyValue::new("gen_ai.usage.output_tokens", output_tokens));
        s.set_attribute(KeyValue::new("gen_ai.output.messages", output.to_owned()));
        s
    };
    let mut llm = model(120, 30);
    llm.set_attribute(KeyValue::new("gen_ai.usage.cache_read.input_tokens", 100));
    llm.end();
    for tool in ["get_weather", "get_forecast"] {
        let mut t = tracer.start_with_context(format!("execute_tool {tool}"), &cx);
        t.set_attribute(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        t.set_attribute(KeyValue::new("gen_ai.tool.name", tool));
        t.set_attribute(KeyValue::new(
            "gen_ai.tool.call.arguments",
            input.to_owned(),
        ));
        t.set_attribute(KeyValue::new("gen_ai.tool.call.result", output.to_owned()));
        t.end();
    }
    model(160, 12).end();
    let run = cx.span();
    run.set_attribute(KeyValue::new("gen_ai.output.messages", output.to_owned()));
    run.end();
}

trait Side {
    fn name(&self) -> String;
    fn emit(&self, n: usize);
    /// Flushes; `Ok` when the library says everything went out.
    fn flush(&self) -> Result<(), String>;
}

struct Aiobs {
    obs: Observability,
    input: String,
    output: String,
}

impl Side for Aiobs {
    fn name(&self) -> String {
        "aiobs OtelExporter".into()
    }
    fn emit(&self, n: usize) {
        for _ in 0..n / SPANS_PER_TRACE {
            aiobs_trace(&self.obs, &self.input, &self.output);
        }
    }
    fn flush(&self) -> Result<(), String> {
        let report = self.obs.flush_blocking(Duration::from_secs(300));
        if report.is_success() {
            Ok(())
        } else {
            Err(report.to_string())
        }
    }
}

struct Otlp {
    label: String,
    provider: SdkTracerProvider,
    tracer: opentelemetry_sdk::trace::SdkTracer,
    input: String,
    output: String,
}

impl Otlp {
    fn new(server: &ScriptedHttpServer, queue: Option<usize>) -> Self {
        // The SDK's thread-based processor needs a blocking client, built
        // outside any runtime.
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(server.url_for("/v1/traces"))
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()
            .unwrap();
        let mut config = BatchConfigBuilder::default().with_max_export_batch_size(BATCH);
        let label = match queue {
            Some(q) => {
                config = config.with_max_queue_size(q);
                format!("otlp + BSP (queue = {q})")
            }
            None => "otlp + BSP (defaults)".into(),
        };
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(config.build())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("bench");
        Self {
            label,
            provider,
            tracer,
            input: payload("input"),
            output: payload("output"),
        }
    }
}

impl Side for Otlp {
    fn name(&self) -> String {
        self.label.clone()
    }
    fn emit(&self, n: usize) {
        for _ in 0..n / SPANS_PER_TRACE {
            otel_trace(&self.tracer, &self.input, &self.output);
        }
    }
    fn flush(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())
    }
}

/// The spans the server received, and the bytes of the bodies.
fn received(server: &ScriptedHttpServer) -> (usize, usize) {
    let reqs = server.requests_to("/v1/traces");
    let spans = reqs
        .iter()
        .map(|r| {
            ExportTraceServiceRequest::decode(&r.body[..])
                .map(|req| {
                    req.resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .map(|s| s.spans.len())
                        .sum::<usize>()
                })
                .unwrap_or(0)
        })
        .sum();
    let bytes = reqs.iter().map(|r| r.raw_body.len()).sum();
    server.clear_requests();
    (spans, bytes)
}

#[derive(Default)]
struct Figures {
    spans_per_s: Vec<f64>,
    bytes_per_span: Vec<f64>,
    emitted: usize,
    delivered: usize,
    flush_said_ok: usize,
}

fn round(side: &dyn Side, server: &ScriptedHttpServer, spans: usize, f: &mut Figures) {
    let t = Instant::now();
    side.emit(spans);
    let emitted_at = t.elapsed();
    let flushed = side.flush();
    if std::env::args().any(|a| a == "--timeline") {
        let reqs = server.requests_to("/v1/traces");
        let gaps: Vec<u128> = reqs
            .windows(2)
            .map(|w| (w[1].received_at - w[0].received_at).as_micros())
            .collect();
        eprintln!(
            "{}: emitted in {emitted_at:?}, flushed at {:?}; {} requests, first gaps (µs) {:?}",
            side.name(),
            t.elapsed(),
            reqs.len(),
            &gaps[..gaps.len().min(12)]
        );
    }
    let secs = t.elapsed().as_secs_f64();
    // The BSP may still deliver after a flush that timed out; let the
    // server settle before counting.
    std::thread::sleep(Duration::from_millis(200));
    let (delivered, bytes) = received(server);
    f.spans_per_s.push(spans as f64 / secs);
    f.bytes_per_span
        .push(bytes as f64 / delivered.max(1) as f64);
    f.emitted += spans;
    f.delivered += delivered;
    f.flush_said_ok += usize::from(flushed.is_ok());
    if let Err(e) = flushed {
        eprintln!("{}: flush failed: {e}", side.name());
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let spans = arg("--spans", 100_000) / SPANS_PER_TRACE * SPANS_PER_TRACE;
    let rounds = arg("--rounds", 3).max(1);
    let servers: Vec<ScriptedHttpServer> = (0..3)
        .map(|_| ScriptedHttpServer::start().unwrap())
        .collect();

    let exporter = OtelExporter::builder()
        .endpoint(servers[0].url())
        .capture_content(true)
        .env_proxy(false)
        .batch_policy(
            BatchPolicy::default()
                .with_max_events(BATCH)
                .with_queue_capacity(spans.max(BATCH))
                .with_max_wait(Duration::from_secs(5)),
        )
        .build()
        .unwrap();
    let obs = Observability::builder()
        .exporter(exporter)
        .derive_metrics(false)
        .overflow(OverflowPolicy::Block {
            timeout: Duration::from_secs(60),
        })
        .build()
        .unwrap();
    let aiobs = Aiobs {
        obs,
        input: payload("input"),
        output: payload("output"),
    };
    let bsp_default = Otlp::new(&servers[1], None);
    let bsp_large = Otlp::new(&servers[2], Some(spans));
    let sides: [(&dyn Side, &ScriptedHttpServer); 3] = [
        (&aiobs, &servers[0]),
        (&bsp_default, &servers[1]),
        (&bsp_large, &servers[2]),
    ];
    // Warm up (connections, allocations) outside the figures.
    for (side, server) in sides {
        side.emit(1_000);
        let _warm = side.flush();
        std::thread::sleep(Duration::from_millis(100));
        received(server);
    }
    let mut figures: Vec<Figures> = (0..3).map(|_| Figures::default()).collect();
    // `--only aiobs`: one side alone, e.g. under a profiler.
    let args: Vec<String> = std::env::args().collect();
    let only_aiobs = args.windows(2).any(|w| w[0] == "--only" && w[1] == "aiobs");
    for _ in 0..rounds {
        for ((side, server), f) in sides.iter().zip(&mut figures) {
            if only_aiobs && !side.name().starts_with("aiobs") {
                continue;
            }
            round(*side, server, spans, f);
        }
    }
    if only_aiobs {
        println!(
            "aiobs alone: {:.0} spans/s",
            median(figures[0].spans_per_s.clone())
        );
        return;
    }
    println!(
        "{spans} spans per round ({SPANS_PER_TRACE}-span traces, ~200-byte contents), {rounds} rounds, medians; OTLP/HTTP protobuf, no compression; spans counted at the server"
    );
    println!(
        "{:<26} {:>12} {:>14} {:>12} {:>14} {:>16}",
        "", "spans/s", "bytes/span", "delivered", "silent drops", "flush said Ok"
    );
    for ((side, _), f) in sides.iter().zip(&figures) {
        let silent = if f.flush_said_ok == rounds {
            f.emitted - f.delivered
        } else {
            0
        };
        println!(
            "{:<26} {:>12.0} {:>14.1} {:>12} {:>14} {:>13}/{rounds}",
            side.name(),
            median(f.spans_per_s.clone()),
            median(f.bytes_per_span.clone()),
            format!("{}/{}", f.delivered, f.emitted),
            format!(
                "{silent} ({:.1} %)",
                100.0 * silent as f64 / f.emitted as f64
            ),
            f.flush_said_ok,
        );
    }
    let ratio = |a: &Figures, b: &Figures, pick: fn(&Figures) -> &Vec<f64>| {
        median(pick(a).clone()) / median(pick(b).clone())
    };
    println!(
        "ratio aiobs / BSP (queue = N): spans/s {:.2}, bytes/span {:.2}",
        ratio(&figures[0], &figures[2], |f| &f.spans_per_s),
        ratio(&figures[0], &figures[2], |f| &f.bytes_per_span),
    );
    println!(
        "{{\"bench\":\"otel_otlp\",\"spans\":{spans},\"rounds\":{rounds},\"aiobs_spans_per_s\":{:.0},\"bsp_spans_per_s\":{:.0},\"aiobs_bytes_per_span\":{:.1},\"bsp_bytes_per_span\":{:.1},\"bsp_default_delivered\":{},\"emitted\":{}}}",
        median(figures[0].spans_per_s.clone()),
        median(figures[2].spans_per_s.clone()),
        median(figures[0].bytes_per_span.clone()),
        median(figures[2].bytes_per_span.clone()),
        figures[1].delivered,
        figures[1].emitted,
    );
    assert_eq!(
        figures[0].delivered, figures[0].emitted,
        "aiobs delivered every span"
    );
    let _final = aiobs.obs.shutdown_blocking(Duration::from_secs(30));
    let _a = bsp_default.provider.shutdown();
    let _b = bsp_large.provider.shutdown();
}
