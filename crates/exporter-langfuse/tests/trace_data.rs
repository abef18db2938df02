//! The data Langfuse ends up showing, read from the decoded requests of both
//! transports the way Langfuse merges them: usage buckets, usage counted
//! once across nested model spans, a continued trace that must not rename
//! the trace it joins, trace context surviving a durable rebuild (privacy
//! included), times that never run backwards, and payload limits that keep
//! what they can.

mod common;

use std::collections::BTreeMap;

use aiobs_conformance::http::ScriptedHttpServer;
use aiobs_core::{
    ExportedSpan, ModelAttributes, Observability, SensitiveDataFilter, SpanId, SpanOptions,
    SpanType, TraceId, TracingOptions, Usage,
};
use aiobs_exporter_langfuse::LangfuseTransport;
use common::*;
use serde_json::{Map, Value, json};

const BOTH: [LangfuseTransport; 2] = [LangfuseTransport::Otlp, LangfuseTransport::Ingestion];

/// One observation as Langfuse stores it.
#[derive(Debug, Clone, Default)]
struct Obs {
    id: String,
    name: String,
    kind: String,
    parent: Option<String>,
    start: String,
    end: Option<String>,
    input: Option<Value>,
    output: Option<Value>,
    metadata: Map<String, Value>,
    usage: Map<String, Value>,
}

/// One trace as Langfuse shows it.
#[derive(Debug, Clone, Default)]
struct Trace {
    name: Option<String>,
    input: Option<Value>,
    output: Option<Value>,
    release: Option<String>,
    metadata: Map<String, Value>,
}

/// What Langfuse holds after the server received every request.
#[derive(Debug, Default)]
struct View {
    traces: BTreeMap<String, Trace>,
    observations: Vec<Obs>,
    /// Every request body, decoded, for "never sent" checks.
    text: String,
}

impl View {
    fn obs(&self, name: &str) -> &Obs {
        self.observations
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("no observation {name:?} in {:#?}", self.observations))
    }
    fn trace(&self) -> &Trace {
        assert_eq!(self.traces.len(), 1, "{:#?}", self.traces);
        self.traces.values().next().unwrap()
    }
}

fn string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// Reads what `server` received, as Langfuse would merge it.
fn view(server: &ScriptedHttpServer, transport: LangfuseTransport) -> View {
    let mut v = View::default();
    match transport {
        LangfuseTransport::Otlp => {
            for req in server.requests_to(OTLP_PATH) {
                for s in our_spans(&decode_otlp(&req)) {
                    v.text.push_str(&format!("{s:?}\n"));
                    let a = &s.attributes;
                    // Langfuse's rule: a span without a parent, or marked
                    // `as_root`, sets the trace's name, input and output.
                    let root = s.parent.is_none()
                        || a.get("langfuse.internal.as_root") == Some(&json!(true));
                    let t = v.traces.entry(s.trace_id.clone()).or_default();
                    if let Some(n) = a.get("langfuse.trace.name").and_then(string) {
                        t.name = Some(n);
                    } else if root {
                        t.name = Some(s.name.clone());
                    }
                    if root {
                        t.input = a.get("langfuse.observation.input").cloned();
                        t.output = a.get("langfuse.observation.output").cloned();
                    }
                    if let Some(r) = a.get("langfuse.release").and_then(string) {
                        t.release = Some(r);
                    }
                    let mut metadata = Map::new();
                    for (k, val) in a {
                        if let Some(key) = k.strip_prefix("langfuse.trace.metadata.") {
                            t.metadata.insert(key.to_owned(), val.clone());
                        }
                        if let Some(key) = k.strip_prefix("langfuse.observation.metadata.") {
                            metadata.insert(key.to_owned(), val.clone());
                        }
                    }
                    v.observations.push(Obs {
                        id: s.id.clone(),
                        name: s.name.clone(),
                        kind: a["langfuse.observation.type"].as_str().unwrap().to_owned(),
                        parent: s.parent.clone(),
                        start: String::new(),
                        end: None,
                        input: a.get("langfuse.observation.input").cloned(),
                        output: a.get("langfuse.observation.output").cloned(),
                        metadata,
                        usage: a
                            .get("langfuse.observation.usage_details")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default(),
                    });
                }
            }
        }
        LangfuseTransport::Ingestion => {
            for req in server.requests_to(INGESTION_PATH) {
                let body: Value = req.json().unwrap();
                v.text.push_str(&body.to_string());
                for e in body["batch"].as_array().unwrap() {
                    let b = &e["body"];
                    match e["type"].as_str().unwrap() {
                        // An upsert: later fields override earlier ones.
                        "trace-create" => {
                            let t = v
                                .traces
                                .entry(b["id"].as_str().unwrap().to_owned())
                                .or_default();
                            if let Some(n) = b.get("name").and_then(string) {
                                t.name = Some(n);
                            }
                            if let Some(i) = b.get("input") {
                                t.input = Some(i.clone());
                            }
                            if let Some(o) = b.get("output") {
                                t.output = Some(o.clone());
                            }
                            if let Some(r) = b.get("release").and_then(string) {
                                t.release = Some(r);
                            }
                            if let Some(m) = b.get("metadata").and_then(Value::as_object) {
                                t.metadata.extend(m.clone());
                            }
                        }
                        "score-create" => {}
                        kind => v.observations.push(Obs {
                            id: string(&b["id"]).unwrap(),
                            name: string(&b["name"]).unwrap(),
                            kind: match kind {
                                "generation-create" => "generation".into(),
                                "event-create" => "event".into(),
                                _ => b["metadata"]["observation_type"]
                                    .as_str()
                                    .unwrap_or("span")
                                    .to_owned(),
                            },
                            parent: string(&b["parentObservationId"]),
                            start: string(&b["startTime"]).unwrap(),
                            end: string(&b["endTime"]),
                            input: b.get("input").cloned(),
                            output: b.get("output").cloned(),
                            metadata: b["metadata"].as_object().cloned().unwrap_or_default(),
                            usage: b["usageDetails"].as_object().cloned().unwrap_or_default(),
                        }),
                    }
                }
            }
        }
        _ => unreachable!(),
    }
    v
}

/// A pipeline sending to `server` over `transport`.
fn pipeline(server: &ScriptedHttpServer, transport: LangfuseTransport) -> Observability {
    Observability::builder()
        .exporter(builder(server, transport).build().unwrap())
        .build()
        .unwrap()
}

fn flushed(obs: &Observability) {
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");
}

fn usage(o: &Obs) -> BTreeMap<String, u64> {
    o.usage
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[test]
fn cached_and_reasoning_tokens_are_exclusive_buckets() {
    for transport in BOTH {
        let server = ScriptedHttpServer::start().unwrap();
        let obs = pipeline(&server, transport);
        let run = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
        let mut read = run.child(
            SpanOptions::new("read", SpanType::ModelGeneration)
                .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
        );
        read.set_usage(Usage::new(120, 30).with_cache_read(100).with_reasoning(10));
        read.end();
        let mut write = run.child(
            SpanOptions::new("write", SpanType::ModelGeneration)
                .attributes(ModelAttributes::new("claude", "anthropic")),
        );
        write.set_usage(
            Usage::new(500, 10)
                .with_cache_read(100)
                .with_cache_write(300),
        );
        write.end();
        drop(run);
        flushed(&obs);
        let v = view(&server, transport);
        assert_eq!(
            usage(v.obs("read")),
            map(&[
                ("input", 20),
                ("input_cached_tokens", 100),
                ("output", 20),
                ("output_reasoning_tokens", 10),
                ("total", 150)
            ]),
            "{transport:?}"
        );
        assert_eq!(
            usage(v.obs("write")),
            map(&[
                ("input", 100),
                ("input_cached_tokens", 100),
                ("input_cache_creation_tokens", 300),
                ("output", 10),
                ("total", 510)
            ]),
            "{transport:?}"
        );
        // Langfuse sums every key containing "input" (or "output"): the
        // sums must be the provider's totals.
        for o in [v.obs("read"), v.obs("write")] {
            let sum = |side: &str| -> u64 {
                usage(o)
                    .iter()
                    .filter(|(k, _)| k.contains(side))
                    .map(|(_, n)| n)
                    .sum()
            };
            let total = usage(o)["total"];
            assert_eq!(
                sum("input") + sum("output"),
                total,
                "{transport:?} {}",
                o.name
            );
        }
    }
}

#[test]
fn a_generation_and_its_steps_are_billed_once() {
    for transport in BOTH {
        let server = ScriptedHttpServer::start().unwrap();
        let obs = pipeline(&server, transport);
        let run = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
        let mut generation = run.child(
            SpanOptions::new("generation", SpanType::ModelGeneration)
                .attributes(ModelAttributes::new("gpt-4o", "openai")),
        );
        for (name, u) in [
            ("step 1", Usage::new(60, 10)),
            ("step 2", Usage::new(40, 10)),
        ] {
            let mut step = generation.child(
                SpanOptions::new(name, SpanType::ModelStep)
                    .attributes(ModelAttributes::new("gpt-4o", "openai")),
            );
            step.set_usage(u);
            step.end();
        }
        generation.set_usage(Usage::new(100, 20));
        generation.end();
        drop(run);
        flushed(&obs);
        let v = view(&server, transport);
        let billed: Vec<&Obs> = v
            .observations
            .iter()
            .filter(|o| !o.usage.is_empty())
            .collect();
        assert_eq!(
            billed.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
            ["generation"],
            "{transport:?}: only the generation carries usage Langfuse sums"
        );
        assert_eq!(usage(billed[0])["total"], 120, "{transport:?}");
        for step in ["step 1", "step 2"] {
            let s = v.obs(step);
            assert_ne!(
                s.kind, "generation",
                "{transport:?}: Langfuse would infer usage for a generation"
            );
            assert_eq!(s.parent.as_deref(), Some(v.obs("generation").id.as_str()));
            assert!(
                s.metadata.contains_key("usage"),
                "{transport:?}: the step's usage stays visible: {:?}",
                s.metadata
            );
        }
    }
}

/// Process A records the trace; process B continues it (by `traceparent`,
/// or by trace id alone) with its own root.
fn continued(transport: LangfuseTransport, by_header: bool) -> View {
    let server = ScriptedHttpServer::start().unwrap();
    let a = pipeline(&server, transport);
    let mut root = a.start_span(
        SpanOptions::new("trace1", SpanType::AgentRun)
            .input("input1")
            .tracing(TracingOptions::new().metadata("tenant", "acme")),
    );
    let header = root.traceparent().to_string();
    let trace_id = root.trace_id();
    root.end_with_output("output1");
    flushed(&a);

    let b = pipeline(&server, transport);
    let tracing = if by_header {
        TracingOptions::new().traceparent(&header)
    } else {
        TracingOptions::new().trace_id(trace_id)
    };
    let mut joined = b.start_span(
        SpanOptions::new("trace2", SpanType::AgentRun)
            .input("input2")
            .tracing(tracing.user_id("u-2")),
    );
    joined
        .child(SpanOptions::new("work in B", SpanType::ToolCall))
        .end();
    joined.end_with_output("output2");
    flushed(&b);
    view(&server, transport)
}

#[test]
fn a_continued_trace_does_not_claim_the_trace_it_joins() {
    for transport in BOTH {
        for by_header in [true, false] {
            let v = continued(transport, by_header);
            let t = v.trace();
            let how = if by_header { "traceparent" } else { "trace id" };
            assert_eq!(t.name.as_deref(), Some("trace1"), "{transport:?} by {how}");
            assert_eq!(t.input, Some(json!("input1")), "{transport:?} by {how}");
            assert_eq!(t.output, Some(json!("output1")), "{transport:?} by {how}");
            // B's spans are still there, under A's root when it is known.
            let b_root = v.obs("trace2");
            assert_eq!(b_root.input, Some(json!("input2")));
            if by_header {
                assert_eq!(b_root.parent.as_deref(), Some(v.obs("trace1").id.as_str()));
            }
        }
    }
}

#[test]
fn a_rebuilt_root_keeps_its_trace_context_and_hides_what_it_must() {
    for transport in BOTH {
        let first = Observability::builder().build().unwrap();
        let root = first.start_span(
            SpanOptions::new("durable run", SpanType::AgentRun)
                .input("visible input")
                .tracing(
                    TracingOptions::new()
                        .metadata("tenant", "acme")
                        .metadata(
                            "langfuse",
                            json!({"traceName": "booking", "release": "r-7"}),
                        )
                        .hide_output(),
                ),
        );
        let saved = serde_json::to_string(&root.export().unwrap()).unwrap();
        std::mem::forget(root);

        let server = ScriptedHttpServer::start().unwrap();
        let obs = pipeline(&server, transport);
        let mut root = obs.rebuild_span(serde_json::from_str(&saved).unwrap());
        root.child(SpanOptions::new("step", SpanType::ToolCall))
            .end_with_output("secret step output");
        root.end_with_output("secret final output");
        flushed(&obs);
        let v = view(&server, transport);
        let t = v.trace();
        assert_eq!(t.name.as_deref(), Some("booking"), "{transport:?}");
        assert_eq!(t.release.as_deref(), Some("r-7"), "{transport:?}");
        assert_eq!(
            t.metadata.get("tenant"),
            Some(&json!("acme")),
            "{transport:?}"
        );
        assert_eq!(t.input, Some(json!("visible input")), "{transport:?}");
        assert!(!v.text.contains("secret"), "{transport:?}: {}", v.text);
    }
}

#[test]
fn a_span_from_a_clock_ahead_never_ends_before_it_starts() {
    for transport in BOTH {
        let server = ScriptedHttpServer::start().unwrap();
        let obs = pipeline(&server, transport);
        let mut data = ExportedSpan::new(
            TraceId::random(),
            SpanId::random(),
            "from another host",
            SpanType::WorkflowStep,
        );
        data.start_time += chrono::TimeDelta::seconds(3);
        obs.rebuild_span(data).end();
        flushed(&obs);
        match transport {
            LangfuseTransport::Otlp => {
                let req = &server.requests_to(OTLP_PATH)[0];
                let span = &decode_otlp(req).resource_spans[0].scope_spans[0].spans[0];
                assert!(
                    span.end_time_unix_nano >= span.start_time_unix_nano,
                    "duration {} ns",
                    span.end_time_unix_nano as i128 - span.start_time_unix_nano as i128
                );
            }
            _ => {
                let v = view(&server, transport);
                let o = v.obs("from another host");
                assert!(o.end.as_deref().unwrap() >= o.start.as_str(), "{o:?}");
            }
        }
    }
}

#[test]
fn secrets_nested_deep_in_json_text_never_reach_langfuse() {
    let mut text = "{\"api_key\": \"sk-live-0123456789\"}".to_owned();
    for _ in 0..63 {
        text = format!("{{\"a\": {text}}}");
    }
    for transport in BOTH {
        let server = ScriptedHttpServer::start().unwrap();
        let obs = Observability::builder()
            .processor(SensitiveDataFilter::new())
            .exporter(builder(&server, transport).build().unwrap())
            .build()
            .unwrap();
        let mut s = obs.start_span(
            SpanOptions::new("run", SpanType::AgentRun)
                .metadata("payload", &text)
                .tracing(TracingOptions::new().metadata("trace_payload", &text)),
        );
        s.child(SpanOptions::new("child", SpanType::ToolCall)).end();
        s.end();
        flushed(&obs);
        let v = view(&server, transport);
        assert!(!v.text.contains("sk-live"), "{transport:?}: leaked");
        assert!(
            v.text.contains("payload"),
            "{transport:?}: the field itself stays"
        );
    }
}

#[test]
fn an_output_over_the_event_limit_keeps_its_head() {
    // 10 parts of 100 kB: under the capture limits (128 KiB per string,
    // 1 MiB per payload), over Langfuse's 1 MB per event.
    let parts: Vec<String> = (0..10)
        .map(|i| format!("part {i}: {}", "x".repeat(100_000)))
        .collect();
    for transport in BOTH {
        let server = ScriptedHttpServer::start().unwrap();
        let obs = pipeline(&server, transport);
        let mut s = obs.start_span(SpanOptions::new("big", SpanType::AgentRun));
        s.set_output(&parts);
        s.end();
        flushed(&obs);
        let v = view(&server, transport);
        let out = v.obs("big").output.clone().unwrap();
        let text = match &out {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert!(
            text.starts_with("[\"part 0: xxxx"),
            "{transport:?}: the head is kept: {}",
            &text[..text.len().min(120)]
        );
        assert!(
            text.len() > 500_000,
            "{transport:?}: kept {} bytes",
            text.len()
        );
        assert!(text.contains("[aiobs: truncated"), "{transport:?}: marked");
    }
}

#[test]
fn the_root_sends_its_trace_metadata_once() {
    let server = ScriptedHttpServer::start().unwrap();
    let obs = pipeline(&server, LangfuseTransport::Otlp);
    let mut root = obs.start_span(
        SpanOptions::new("root", SpanType::AgentRun)
            .metadata("agent", "weather")
            .tracing(TracingOptions::new().metadata("tenant", "acme")),
    );
    root.child(SpanOptions::new("child", SpanType::ToolCall))
        .end();
    root.end();
    flushed(&obs);
    let v = view(&server, LangfuseTransport::Otlp);
    for o in &v.observations {
        assert!(
            !o.metadata.contains_key("tenant"),
            "{}: trace metadata repeated as observation metadata: {:?}",
            o.name,
            o.metadata
        );
    }
    assert_eq!(v.obs("root").metadata.get("agent"), Some(&json!("weather")));
    assert_eq!(v.trace().metadata.get("tenant"), Some(&json!("acme")));
}

#[test]
fn one_string_over_the_event_limit_keeps_its_head() {
    for transport in BOTH {
        let server = ScriptedHttpServer::start().unwrap();
        let obs = Observability::builder()
            .serialization_limits(
                aiobs_core::SerializationLimits::default()
                    .with_max_string_len(2_000_000)
                    .with_max_total_bytes(4_000_000),
            )
            .exporter(builder(&server, transport).build().unwrap())
            .build()
            .unwrap();
        let mut s = obs.start_span(SpanOptions::new("big", SpanType::AgentRun));
        s.set_output(format!("head {}", "y".repeat(1_200_000)));
        s.end();
        flushed(&obs);
        let v = view(&server, transport);
        let out = v.obs("big").output.clone().unwrap();
        let text = out.as_str().unwrap().to_owned();
        assert!(
            text.starts_with("head yyyy") || text.starts_with("\"head yyyy"),
            "{transport:?}: {}",
            &text[..text.len().min(120)]
        );
        assert!(
            text.len() > 500_000,
            "{transport:?}: kept {} bytes",
            text.len()
        );
        assert!(text.contains("[aiobs: truncated"), "{transport:?}: marked");
        let t = v.trace().output.clone().unwrap();
        assert!(
            t.as_str().unwrap().len() > 500_000,
            "{transport:?}: the trace output keeps its head too"
        );
    }
}

#[test]
fn two_large_payloads_over_the_event_limit_both_keep_their_heads() {
    let half: Vec<String> = (0..9)
        .map(|i| format!("part {i}: {}", "x".repeat(100_000)))
        .collect();
    for transport in BOTH {
        let server = ScriptedHttpServer::start().unwrap();
        let obs = pipeline(&server, transport);
        let mut s = obs.start_span(SpanOptions::new("big", SpanType::AgentRun).input(&half));
        s.set_output(&half);
        s.end();
        flushed(&obs);
        let v = view(&server, transport);
        for (what, value) in [
            ("input", &v.obs("big").input),
            ("output", &v.obs("big").output),
        ] {
            let text = match value.clone().unwrap() {
                Value::String(s) => s,
                other => other.to_string(),
            };
            assert!(
                text.starts_with("[\"part 0: xxxx"),
                "{transport:?} {what}: {}",
                &text[..text.len().min(80)]
            );
            assert!(
                text.len() > 300_000,
                "{transport:?} {what}: kept only {} bytes",
                text.len()
            );
        }
    }
}
