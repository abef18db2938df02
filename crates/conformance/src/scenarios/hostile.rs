//! Payloads that break naive serialisers.

use std::collections::HashMap;
use std::time::Duration;

use aiobs_core::{
    Cost, LogLevel, LogRecord, MetricKind, MetricRecord, ModelAttributes, Signal, SpanError,
    SpanOptions, SpanType, Usage,
};
use serde::ser::{Error as _, Serialize, SerializeSeq, Serializer};
use serde_json::json;

use super::emit::ExpectedSpan;
use super::{Run, Step, check};
use crate::harness::ItemKind;
use crate::instrument::Tuning;

const DEADLINE: Duration = Duration::from_secs(15);

/// Nested `depth` arrays deep, produced by `Serialize` itself (no value in memory).
struct Deep(usize);

impl Serialize for Deep {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(1))?;
        if self.0 > 0 {
            seq.serialize_element(&Deep(self.0 - 1))?;
        } else {
            seq.serialize_element("bottom")?;
        }
        seq.end()
    }
}

/// A value whose serialisation always fails.
struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom("this value refuses to serialise"))
    }
}

const CONTROL: &str =
    "nul\u{0} bell\u{7} esc\u{1b}[31m cr\r lf\n tab\t del\u{7f} nel\u{85} ls\u{2028} bom\u{feff}";
/// JSON text with escaped lone surrogates: valid to carry as a string, invalid to parse.
const LONE_SURROGATES: &str =
    r#"{"text":"\ud800 high alone","low":"\udfff","pair":"\ud83d\ude00"}"#;

/// Deep nesting, a 5 MB string, NaN/±∞, lone surrogates, control characters
/// and values that fail to serialise: every span is delivered (bounded by
/// the pipeline's payload limits), nothing panics, nothing is lost.
pub(crate) async fn hostile_payloads(run: &Run<'_>) -> Step {
    let pipe = run.pipe(Tuning::default())?;
    run.require_spans(&pipe)?;
    let obs = &pipe.obs;
    let root = obs.start_span(SpanOptions::new("hostile", SpanType::AgentRun).input("hostile"));
    let mut expected = vec![ExpectedSpan::of(&root, None, "hostile")];
    let mut add = |opts: SpanOptions, name: &str, f: &dyn Fn(&mut aiobs_core::Span)| {
        let mut span = root.child(opts);
        expected.push(ExpectedSpan::of(&span, Some(&root), name));
        f(&mut span);
        span.end();
    };

    add(
        SpanOptions::new("deep-nesting", SpanType::Generic).input(Deep(10_000)),
        "deep-nesting",
        &|s| {
            s.set_output(Deep(5_000));
            s.set_metadata("deep", Deep(1_000));
        },
    );
    let huge = "x".repeat(5 * 1024 * 1024);
    add(
        SpanOptions::new("huge-string", SpanType::ModelGeneration).input(&huge),
        "huge-string",
        &|s| {
            s.set_output(json!({"text": "é".repeat(300_000), "list": vec![7; 100_000]}));
            s.set_metadata("huge", "y".repeat(2 * 1024 * 1024));
        },
    );
    add(
        SpanOptions::new("not-a-number", SpanType::ModelGeneration)
            .input(vec![
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                -0.0,
                f64::MIN_POSITIVE,
            ])
            .attributes(
                ModelAttributes::new("gpt-nan", "openai")
                    .with_usage(Usage::new(1, 1).with_cost(Cost::new(f64::NAN, f64::INFINITY))),
            ),
        "not-a-number",
        &|s| {
            s.set_output(HashMap::from([("nan", f64::NAN), ("inf", f64::INFINITY)]));
            s.set_metadata("neg_inf", f64::NEG_INFINITY);
        },
    );
    add(
        SpanOptions::new("lone-surrogates", SpanType::ToolCall).input(LONE_SURROGATES),
        "lone-surrogates",
        &|s| {
            s.set_output(String::from_utf16_lossy(&[0xD800, 0x61, 0xDFFF]));
            s.set_metadata("json_text", LONE_SURROGATES);
        },
    );
    let control_name = format!("control-chars {CONTROL}");
    add(
        SpanOptions::new(control_name.clone(), SpanType::ToolCall)
            .input(CONTROL)
            .metadata(CONTROL, CONTROL),
        &control_name,
        &|s| {
            s.set_output(json!({CONTROL: CONTROL}));
            s.record_error(
                SpanError::new(format!("failed: {CONTROL}")).with_kind("Control\u{0}Error"),
            );
        },
    );
    add(
        SpanOptions::new("unserializable", SpanType::Generic).input(Unserializable),
        "unserializable",
        &|s| {
            s.set_output(Unserializable);
            // Non-string map keys cannot be JSON object keys.
            s.set_metadata("tuple_keys", HashMap::from([((1, 2), "a"), ((3, 4), "b")]));
            s.set_metadata("bytes", serde_bytes_like(&[0xff, 0xfe, 0x00]));
        },
    );
    add(
        SpanOptions::new("y".repeat(10_000), SpanType::Generic),
        "long-name",
        &|_| {},
    );
    let root_id = root.span_id();
    let trace_id = root.trace_id();
    drop(root);

    let mut records = Vec::new();
    if pipe.signals.contains(Signal::Log) {
        let log = LogRecord::new(LogLevel::Error, format!("{CONTROL} {LONE_SURROGATES}"))
            .in_span(trace_id, root_id);
        records.push((ItemKind::Log, log.id.clone()));
        obs.log(log);
    }
    if pipe.signals.contains(Signal::Metric) {
        let metric = MetricRecord::new("hostile.nan", MetricKind::Gauge, f64::NAN);
        records.push((ItemKind::Metric, metric.id.clone()));
        obs.metric(metric);
    }

    let report = obs.flush(DEADLINE).await;
    check::flushed(run, &pipe, &report, "after flushing hostile payloads")?;
    check::no_losses(run, &pipe, "after flushing hostile payloads")?;
    check::spans_at_destination(run, &expected, &[], "after flushing hostile payloads").await?;
    check::records_at_destination(run, &records, "after flushing hostile payloads").await?;
    let report = obs.shutdown(DEADLINE).await;
    check::flushed(run, &pipe, &report, "after shutdown")
}

/// Bytes serialised as bytes (not a sequence of numbers): what a
/// `serde_bytes` field produces.
fn serde_bytes_like(bytes: &[u8]) -> impl Serialize + '_ {
    struct Bytes<'a>(&'a [u8]);
    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    Bytes(bytes)
}
