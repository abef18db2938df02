//! CloudExporter against `opentelemetry-otlp` (HTTP, protobuf, gzip) on the same
//! workload, in one process, each sending to its own loopback sink that only
//! counts. Figures are medians of several rounds; ratios are aiobs / OTLP.
//!
//! `cargo bench -p aiobs-exporter-cloud --bench ingest [-- --spans N --rounds R --gzip-level L]`
//!
//! Measured:
//! - throughput: N spans emitted then flushed, from the first span to the
//!   flush's return (the destination acknowledged everything), in spans/s;
//! - wire bytes per span: request bodies as sent (gzip), divided by N;
//! - flush latency with 1 pending span, and with 10,000 just-emitted spans.
//!
//! After the rounds, every body is decoded and the spans counted on both
//! sides, so that a figure is never about spans that were not delivered.

use std::convert::Infallible;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiobs_core::{
    AgentAttributes, BatchPolicy, ModelAttributes, Observability, OverflowPolicy, SpanOptions,
    SpanType, ToolAttributes, Usage,
};
use aiobs_exporter_cloud::{CloudExporter, Compression};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use prost::Message;

const SPANS_PER_TRACE: usize = 5;
const BATCH: usize = 1000;

/// A loopback HTTP server that answers `200 {}` and keeps the raw bodies
/// (to be counted after the clock stops).
struct Sink {
    url: String,
    bodies: Arc<Mutex<Vec<Bytes>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Sink {
    fn start() -> Sink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies: Arc<Mutex<Vec<Bytes>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let kept = bodies.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let accept = async {
                    loop {
                        let (stream, _) = listener.accept().await.unwrap();
                        let kept = kept.clone();
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(
                                move |req: hyper::Request<hyper::body::Incoming>| {
                                    let kept = kept.clone();
                                    async move {
                                        let body = req
                                            .into_body()
                                            .collect()
                                            .await
                                            .map(|c| c.to_bytes())
                                            .unwrap_or_default();
                                        kept.lock().unwrap().push(body);
                                        Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                            Bytes::from_static(b"{}"),
                                        )))
                                    }
                                },
                            );
                            let _closed = hyper::server::conn::http1::Builder::new()
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    _stop = stopped => {}
                    () = accept => {}
                }
            });
        });
        Sink {
            url,
            bodies,
            _stop: stop,
        }
    }

    fn take(&self) -> Vec<Bytes> {
        std::mem::take(&mut *self.bodies.lock().unwrap())
    }
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn wire_bytes(bodies: &[Bytes]) -> usize {
    bodies.iter().map(Bytes::len).sum()
}

fn count_cloud_spans(bodies: &[Bytes]) -> usize {
    bodies
        .iter()
        .map(|b| {
            let v: serde_json::Value = serde_json::from_slice(&gunzip(b)).unwrap();
            v["items"].as_array().map_or(0, Vec::len)
        })
        .sum()
}

fn count_otlp_spans(bodies: &[Bytes]) -> usize {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    bodies
        .iter()
        .map(|b| {
            let req = ExportTraceServiceRequest::decode(&gunzip(b)[..]).unwrap();
            req.resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum::<usize>()
        })
        .sum()
}

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
        SpanOptions::new("agent run: weather-agent", SpanType::AgentRun)
            .attributes(AgentAttributes::default())
            .input(input),
    );
    let mut llm = run.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai"))
            .input(input),
    );
    llm.set_usage(Usage::new(120, 30).with_cache_read(100));
    llm.end_with_output(output);
    for tool in ["get_weather", "get_forecast"] {
        let mut t = run.child(
            SpanOptions::new(tool, SpanType::ToolCall)
                .attributes(ToolAttributes::new(tool))
                .input(input),
        );
        t.end_with_output(output);
    }
    let mut answer = run.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai"))
            .input(input),
    );
    answer.set_usage(Usage::new(160, 12));
    answer.end_with_output(output);
    run.end_with_output(output);
}

/// The same run as OpenTelemetry spans with `gen_ai.*` attributes.
fn otel_trace(tracer: &opentelemetry_sdk::trace::SdkTracer, input: &str, output: &str) {
    let mut run = tracer.start("agent run: weather-agent");
    run.set_attribute(KeyValue::new("gen_ai.operation.name", "invoke_agent"));
    run.set_attribute(KeyValue::new("input", input.to_owned()));
    let cx = opentelemetry::Context::current_with_span(run);
    let model = |name: &'static str, input_tokens: i64, output_tokens: i64| {
        let mut s = tracer.start_with_context(name, &cx);
        s.set_attribute(KeyValue::new("gen_ai.operation.name", "chat"));
        s.set_attribute(KeyValue::new("gen_ai.request.model", "gpt-4o-mini"));
        s.set_attribute(KeyValue::new("gen_ai.system", "openai"));
        s.set_attribute(KeyValue::new("input", input.to_owned()));
        s.set_attribute(KeyValue::new("gen_ai.usage.input_tokens", input_tokens));
        s.set_attribute(KeyValue::new("gen_ai.usage.output_tokens", output_tokens));
        s.set_attribute(KeyValue::new("output", output.to_owned()));
        s
    };
    let mut llm = model("chat gpt-4o-mini", 120, 30);
    llm.set_attribute(KeyValue::new("gen_ai.usage.cache_read.input_tokens", 100));
    llm.end();
    for tool in ["get_weather", "get_forecast"] {
        let mut t = tracer.start_with_context(tool, &cx);
        t.set_attribute(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        t.set_attribute(KeyValue::new("gen_ai.tool.name", tool));
        t.set_attribute(KeyValue::new("input", input.to_owned()));
        t.set_attribute(KeyValue::new("output", output.to_owned()));
        t.end();
    }
    model("chat gpt-4o-mini", 160, 12).end();
    let run = cx.span();
    run.set_attribute(KeyValue::new("output", output.to_owned()));
    run.end();
}

trait Side {
    fn name(&self) -> &'static str;
    /// Emits `n` spans (whole traces of five, or single spans when `n` < 5).
    fn emit(&self, n: usize);
    /// Flushes and returns once the destination acknowledged everything.
    fn flush(&self);
}

struct Aiobs {
    obs: Observability,
    input: String,
    output: String,
}

impl Aiobs {
    fn new(sink: &Sink, compression: Compression) -> Self {
        let exporter = CloudExporter::builder()
            .endpoint(&sink.url)
            .token("bench")
            .env_proxy(false)
            .compression(compression)
            .batch_policy(
                BatchPolicy::default()
                    .with_max_events(BATCH)
                    .with_queue_capacity(200_000)
                    .with_max_wait(Duration::from_secs(5)),
            )
            .build()
            .unwrap();
        let obs = Observability::builder()
            .exporter(exporter)
            .derive_metrics(false)
            .overflow(OverflowPolicy::Block {
                timeout: Duration::from_secs(30),
            })
            .build()
            .unwrap();
        Self {
            obs,
            input: payload("input"),
            output: payload("output"),
        }
    }
}

impl Side for Aiobs {
    fn name(&self) -> &'static str {
        "aiobs cloud"
    }
    fn emit(&self, n: usize) {
        for _ in 0..n / SPANS_PER_TRACE {
            aiobs_trace(&self.obs, &self.input, &self.output);
        }
        for _ in 0..n % SPANS_PER_TRACE {
            self.obs
                .start_span(SpanOptions::new("single", SpanType::Generic).input(&self.input))
                .end();
        }
    }
    fn flush(&self) {
        let report = self.obs.flush_blocking(Duration::from_secs(120));
        assert!(report.is_success(), "{report}");
    }
}

struct Otlp {
    provider: SdkTracerProvider,
    tracer: opentelemetry_sdk::trace::SdkTracer,
    input: String,
    output: String,
}

impl Otlp {
    fn new(sink: &Sink) -> Self {
        // A blocking client, as the SDK's thread-based batch processor needs,
        // built outside any runtime.
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(format!("{}/v1/traces", sink.url))
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .build()
            .unwrap();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(200_000) // no silent drops
                    .with_max_export_batch_size(BATCH)
                    .with_scheduled_delay(Duration::from_secs(5))
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("bench");
        Self {
            provider,
            tracer,
            input: payload("input"),
            output: payload("output"),
        }
    }
}

impl Side for Otlp {
    fn name(&self) -> &'static str {
        "opentelemetry-otlp"
    }
    fn emit(&self, n: usize) {
        for _ in 0..n / SPANS_PER_TRACE {
            otel_trace(&self.tracer, &self.input, &self.output);
        }
        for _ in 0..n % SPANS_PER_TRACE {
            let mut s = self.tracer.start("single");
            s.set_attribute(KeyValue::new("input", self.input.clone()));
            s.end();
        }
    }
    fn flush(&self) {
        self.provider.force_flush().unwrap();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Default)]
struct Figures {
    spans_per_s: Vec<f64>,
    bytes_per_span: Vec<f64>,
    flush_1_us: Vec<f64>,
    flush_10k_ms: Vec<f64>,
    delivered: usize,
    emitted: usize,
}

fn round(
    side: &dyn Side,
    sink: &Sink,
    spans: usize,
    f: &mut Figures,
    count: fn(&[Bytes]) -> usize,
) {
    // Throughput and wire size.
    sink.take();
    let t = Instant::now();
    side.emit(spans);
    side.flush();
    let secs = t.elapsed().as_secs_f64();
    let bodies = sink.take();
    f.spans_per_s.push(spans as f64 / secs);
    f.bytes_per_span
        .push(wire_bytes(&bodies) as f64 / spans as f64);
    f.delivered += count(&bodies);
    f.emitted += spans;
    // Flush latency, one pending span.
    for _ in 0..20 {
        side.emit(1);
        let t = Instant::now();
        side.flush();
        f.flush_1_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    f.emitted += 20;
    // Flush latency, 10,000 spans just emitted.
    side.emit(10_000);
    let t = Instant::now();
    side.flush();
    f.flush_10k_ms.push(t.elapsed().as_secs_f64() * 1e3);
    f.emitted += 10_000;
    f.delivered += count(&sink.take());
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
    let spans = arg("--spans", 100_000);
    let rounds = arg("--rounds", 3);
    // The exporter's default is gzip level 1; the OTLP exporter uses flate2's default, 6.
    let level = arg("--gzip-level", 1) as u32;
    let (cloud_sink, otlp_sink) = (Sink::start(), Sink::start());
    let aiobs = Aiobs::new(&cloud_sink, Compression::GzipLevel(level));
    let otlp = Otlp::new(&otlp_sink);
    // Warm both (connections, allocations) outside the figures.
    for (side, sink) in [(&aiobs as &dyn Side, &cloud_sink), (&otlp, &otlp_sink)] {
        side.emit(1_000);
        side.flush();
        sink.take();
    }
    let (mut a, mut o) = (Figures::default(), Figures::default());
    for _ in 0..rounds {
        round(&aiobs, &cloud_sink, spans, &mut a, count_cloud_spans);
        round(&otlp, &otlp_sink, spans, &mut o, count_otlp_spans);
    }
    assert_eq!(a.delivered, a.emitted, "aiobs: every span delivered");
    assert_eq!(o.delivered, o.emitted, "otlp: every span delivered");
    println!(
        "{spans} spans per round ({SPANS_PER_TRACE}-span traces, ~200-byte inputs/outputs), {rounds} rounds, medians; every span verified at the sink; aiobs gzip level {level}, otlp gzip level 6"
    );
    println!(
        "{:<22} {:>12} {:>16} {:>16} {:>20}",
        "", "spans/s", "wire B/span", "flush 1 (µs)", "flush 10,000 (ms)"
    );
    for (side, f) in [(aiobs.name(), &a), (otlp.name(), &o)] {
        println!(
            "{:<22} {:>12.0} {:>16.1} {:>16.0} {:>20.1}",
            side,
            median(f.spans_per_s.clone()),
            median(f.bytes_per_span.clone()),
            median(f.flush_1_us.clone()),
            median(f.flush_10k_ms.clone()),
        );
    }
    let r = |x: &Vec<f64>, y: &Vec<f64>| median(x.clone()) / median(y.clone());
    println!(
        "{:<22} {:>12.2} {:>16.2} {:>16.2} {:>20.2}",
        "ratio aiobs/otlp",
        r(&a.spans_per_s, &o.spans_per_s),
        r(&a.bytes_per_span, &o.bytes_per_span),
        r(&a.flush_1_us, &o.flush_1_us),
        r(&a.flush_10k_ms, &o.flush_10k_ms),
    );
    let _final_report = aiobs.obs.shutdown_blocking(Duration::from_secs(10));
    let _otlp_shutdown = otlp.provider.shutdown();
}
