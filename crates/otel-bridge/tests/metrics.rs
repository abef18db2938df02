//! GenAI metrics over OTLP: the histograms reach `/v1/metrics` on flush,
//! with the right counts, and a failed metrics export is reported by that
//! flush and repaired by the next one.

mod common;

use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
use aiobs_core::Observability;
use aiobs_otel_bridge::OtlpProtocol;
use common::*;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, metric};
use prost::Message;

/// A histogram data point with its metric name and (string) attributes.
type Point = (String, Vec<(String, String)>, HistogramDataPoint);

/// Each histogram data point of a request.
fn points(body: &[u8]) -> Vec<Point> {
    let req = ExportMetricsServiceRequest::decode(body).expect("metrics request");
    let mut out = Vec::new();
    for rm in req.resource_metrics {
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                let Some(metric::Data::Histogram(h)) = m.data else {
                    panic!("{} is not a histogram", m.name);
                };
                for p in h.data_points {
                    let attrs = p
                        .attributes
                        .iter()
                        .map(|kv| {
                            let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                            let text = match v {
                                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => s.clone(),
                                other => format!("{other:?}"),
                            };
                            (kv.key.clone(), text)
                        })
                        .collect();
                    out.push((m.name.clone(), attrs, p));
                }
            }
        }
    }
    out
}

fn has(attrs: &[(String, String)], key: &str, value: &str) -> bool {
    attrs.iter().any(|(k, v)| k == key && v == value)
}

#[test]
fn token_usage_and_duration_reach_the_metrics_endpoint() {
    let server = ScriptedHttpServer::start().unwrap();
    let exporter = builder(&server, OtlpProtocol::HttpProtobuf)
        .genai_metrics(true)
        .build()
        .unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");

    let reqs = server.requests_to(METRICS_PATH);
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].header("content-type"),
        Some("application/x-protobuf")
    );
    let pts = points(&reqs[0].body);
    let tokens = |kind: &str| {
        pts.iter()
            .find(|(name, a, _)| {
                name == "gen_ai.client.token.usage" && has(a, "gen_ai.token.type", kind)
            })
            .unwrap_or_else(|| panic!("no {kind} token point in {pts:?}"))
    };
    let (_, input_attrs, input) = tokens("input");
    assert_eq!((input.count, input.sum), (1, Some(120.0)));
    assert!(has(input_attrs, "gen_ai.operation.name", "chat"));
    assert!(has(input_attrs, "gen_ai.provider.name", "openai"));
    assert!(has(input_attrs, "gen_ai.request.model", "gpt-4o-mini"));
    assert!(has(
        input_attrs,
        "gen_ai.response.model",
        "gpt-4o-mini-2024-07-18"
    ));
    assert_eq!(tokens("output").2.sum, Some(30.0));
    let durations: Vec<_> = pts
        .iter()
        .filter(|(name, _, _)| name == "gen_ai.client.operation.duration")
        .collect();
    assert_eq!(
        durations.len(),
        1,
        "only the model call is a client operation"
    );
    assert_eq!(durations[0].2.count, 1);
    // Buckets as the conventions advise.
    assert_eq!(input.explicit_bounds.first(), Some(&1.0));
    assert_eq!(input.explicit_bounds.len(), 14);

    // Nothing new: nothing sent.
    assert!(obs.flush_blocking(FLUSH).is_success());
    assert_eq!(server.requests_to(METRICS_PATH).len(), 1);
}

#[test]
fn a_failed_metrics_export_is_reported_and_resent_cumulatively() {
    let server = ScriptedHttpServer::start().unwrap();
    server
        .route(METRICS_PATH)
        .push(ScriptedResponse::server_error());
    let exporter = builder(&server, OtlpProtocol::HttpProtobuf)
        .genai_metrics(true)
        .build()
        .unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    let otel = report.exporter("otel").unwrap();
    assert_eq!(otel.delivered, 4, "the spans went through");
    let error = otel.flush_error.clone().unwrap_or_default();
    assert!(
        error.contains("GenAI metrics") && error.contains("500"),
        "{report}"
    );
    assert!(
        !report.is_success(),
        "a failed flush is not a success: {report}"
    );

    weather_trace(&obs);
    assert!(obs.flush_blocking(FLUSH).is_success());
    let reqs = server.requests_to(METRICS_PATH);
    assert_eq!(reqs.len(), 2);
    let pts = points(&reqs[1].body);
    let input = pts
        .iter()
        .find(|(n, a, _)| n == "gen_ai.client.token.usage" && has(a, "gen_ai.token.type", "input"))
        .unwrap();
    assert_eq!(
        (input.2.count, input.2.sum),
        (2, Some(240.0)),
        "both traces, none lost"
    );
}
