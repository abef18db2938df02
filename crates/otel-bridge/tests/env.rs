//! The standard `OTEL_*` variables configure the exporter, code beats them,
//! and a builder that was not asked to read them ignores them — even though
//! `opentelemetry-otlp` reads `OTEL_EXPORTER_OTLP_HEADERS` by itself.
//!
//! Setting variables needs a process of its own (the test re-runs this
//! binary with them set, and the child sends to the parent's scripted server).

mod common;

use std::process::Command;
use std::time::Duration;

use aiobs_conformance::http::ScriptedHttpServer;
use aiobs_core::{ModelAttributes, Observability, SpanOptions, SpanType};
use aiobs_otel_bridge::OtelExporter;
use common::*;

const CHILD: &str = "AIOBS_OTEL_ENV_TEST_CHILD";

#[test]
fn the_standard_variables_configure_the_exporter() {
    let server = ScriptedHttpServer::start().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_sends_with_the_environment",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD, server.url())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", server.url())
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-from-env=env,authorization=Bearer%20env-token",
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        .env("OTEL_SERVICE_NAME", "env-service")
        .env(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=staging",
        )
        .env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        .env(
            "OTEL_SEMCONV_STABILITY_OPT_IN",
            "gen_ai_latest_experimental",
        )
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let reqs = server.requests_to(TRACES_PATH);
    let by_span = |name: &str| {
        reqs.iter()
            .find(|r| spans(&decode(r)).iter().any(|s| s["name"] == name))
            .unwrap_or_else(|| panic!("no request carried {name}"))
    };

    // Configured by the environment alone.
    let env = by_span("chat from-env");
    assert_eq!(env.header("content-type"), Some("application/json"));
    assert!(env.is_gzip());
    assert_eq!(env.header("x-from-env"), Some("env"));
    assert_eq!(
        env.header("authorization"),
        Some("Bearer env-token"),
        "percent-decoded"
    );
    let body = decode(env);
    let resource = &body["resourceSpans"][0]["resource"];
    let res_attr = |k: &str| {
        resource["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv["key"] == k)
            .map(|kv| kv["value"]["stringValue"].clone())
    };
    assert_eq!(res_attr("service.name"), Some("env-service".into()));
    assert_eq!(
        res_attr("deployment.environment.name"),
        Some("staging".into())
    );
    let span = &spans(&body)[0];
    assert!(
        attr(span, "gen_ai.input.messages").is_some(),
        "capture on from the environment"
    );
    assert!(
        attr(span, "gen_ai.system").is_none(),
        "gen_ai_latest_experimental drops the old name"
    );
    assert!(attr(span, "gen_ai.provider.name").is_some());

    // A builder that did not read the environment: only what code said.
    let code = by_span("chat code-only");
    assert_eq!(code.header("content-type"), Some("application/x-protobuf"));
    assert!(!code.is_gzip());
    assert_eq!(code.header("x-from-env"), Some("code"));
    assert_eq!(
        code.header("authorization"),
        None,
        "the variables were not asked for"
    );
    let span = &spans(&decode(code))[0];
    assert!(attr(span, "gen_ai.input.messages").is_none());
    assert!(attr(span, "gen_ai.system").is_some());

    // Both: code wins per setting.
    let both = by_span("chat both");
    assert_eq!(both.header("authorization"), Some("Bearer code"));
    assert_eq!(both.header("x-from-env"), Some("env"));
    assert_eq!(both.header("content-type"), Some("application/x-protobuf"));
}

/// Runs only in the child process started above.
#[test]
#[ignore = "run by the_standard_variables_configure_the_exporter, in a child process with OTEL_* set"]
fn child_sends_with_the_environment() {
    let Ok(url) = std::env::var(CHILD) else {
        return;
    };
    let send = |exporter: OtelExporter, name: &'static str| {
        let obs = Observability::builder().exporter(exporter).build().unwrap();
        obs.start_span(
            SpanOptions::new(name, SpanType::ModelGeneration)
                .attributes(ModelAttributes::new(name, "openai"))
                .input("hello"),
        )
        .end();
        let report = obs.flush_blocking(Duration::from_secs(20));
        assert!(report.is_success(), "{name}: {report}");
    };
    send(OtelExporter::from_env().unwrap(), "from-env");
    send(
        OtelExporter::builder()
            .endpoint(&url)
            .header("x-from-env", "code")
            .build()
            .unwrap(),
        "code-only",
    );
    send(
        OtelExporter::builder()
            .from_env()
            .header("authorization", "Bearer code")
            .protocol(aiobs_otel_bridge::OtlpProtocol::HttpProtobuf)
            .build()
            .unwrap(),
        "both",
    );
}
