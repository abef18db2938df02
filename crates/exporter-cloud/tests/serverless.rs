//! The serverless promise, end to end: the example service (each request
//! records five spans and flushes its trace before responding) runs against
//! the scripted ingest, and for every request all its spans must have been
//! acknowledged by the ingest before its response was sent — in background
//! and inline pipeline modes, with a healthy and with a flaky ingest.

#[path = "../examples/serverless/app.rs"]
mod app;

use std::collections::HashSet;
use std::time::Duration;

use aiobs_conformance::http::{CapturedRequest, ScriptedHttpServer, ScriptedResponse};
use aiobs_core::Observability;
use aiobs_exporter_cloud::CloudExporter;
use aiobs_http::{HttpClientConfig, reqwest};
use serde_json::Value;

/// Time between two requests: a low-traffic service.
const GAP: Duration = Duration::from_millis(2);
const SPANS_PER_REQUEST: usize = 5;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Background,
    Inline,
}

struct Service {
    url: String,
    obs: Observability,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn start_service(ingest: &ScriptedHttpServer, mode: Mode) -> Service {
    let exporter = CloudExporter::builder()
        .endpoint(ingest.url())
        .token("serverless-token")
        .env_proxy(false)
        .build()
        .unwrap();
    let mut builder = Observability::builder()
        .service_name("weather-service")
        .exporter(exporter);
    if let Mode::Inline = mode {
        builder = builder.inline();
    }
    let obs = builder.build().unwrap();
    let state = app::AppState {
        obs: obs.clone(),
        flush_timeout: Duration::from_secs(10),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app::router(state))
            .with_graceful_shutdown(async {
                let _either = stopped.await;
            })
            .await
            .unwrap();
    });
    Service { url, obs, stop }
}

/// The span ids and trace ids of the span items the ingest acknowledged so far.
fn acknowledged_spans(requests: &[CapturedRequest]) -> Vec<(String, String)> {
    requests
        .iter()
        .filter(|r| r.path == "/v1/spans" && r.was_acknowledged())
        .flat_map(|r| {
            let body: Value = r.json().unwrap();
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    (
                        i["span"]["trace_id"].as_str().unwrap().to_owned(),
                        i["span"]["span_id"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn drive(mode: Mode, requests: usize, flaky: bool) {
    let ingest = ScriptedHttpServer::start().unwrap();
    if flaky {
        ingest
            .route("/v1/spans")
            .push(ScriptedResponse::service_unavailable(Some(
                Duration::from_secs(1),
            )));
    }
    let service = start_service(&ingest, mode).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let what = format!("{mode:?}, {requests} requests, flaky={flaky}");
    let mut traces = HashSet::new();
    for n in 0..requests {
        let resp = client
            .get(format!("{}/weather/city-{n}", service.url))
            .send()
            .await
            .unwrap();
        // Read what the ingest holds the moment the response arrived: the
        // handler sent it after its flush returned, so anything missing here
        // was not delivered before the response.
        let ingested = acknowledged_spans(&ingest.requests());
        assert_eq!(resp.status(), 200, "{what}");
        let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        let trace = body["trace_id"].as_str().unwrap().to_owned();
        assert_eq!(body["telemetry_flushed"], true, "{what}: request {n}");
        let mine: HashSet<&String> = ingested
            .iter()
            .filter(|(t, _)| *t == trace)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            mine.len(),
            SPANS_PER_REQUEST,
            "{what}: request {n} (trace {trace}) was answered with only {} of its {SPANS_PER_REQUEST} spans at the ingest",
            mine.len()
        );
        traces.insert(trace);
        tokio::time::sleep(GAP).await;
    }
    assert_eq!(traces.len(), requests, "{what}: one trace per request");
    let spans = acknowledged_spans(&ingest.requests());
    let unique: HashSet<&(String, String)> = spans.iter().collect();
    assert_eq!(unique.len(), requests * SPANS_PER_REQUEST, "{what}");
    if flaky {
        let first = &ingest.requests_to("/v1/spans")[0];
        assert_eq!(
            first.answer.status(),
            Some(503),
            "{what}: the flaky answer was used"
        );
    }
    let report = service.obs.shutdown(Duration::from_secs(10)).await;
    assert!(report.is_success(), "{what}: {report}");
    let stats = service.obs.stats();
    assert!(stats.is_conserved(), "{what}: {stats:?}");
    let cloud = stats.exporter("cloud").unwrap();
    assert_eq!(
        cloud.failed_total() + cloud.dropped_total(),
        0,
        "{what}: {cloud:?}"
    );
    let _stopped = service.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_mode_delivers_each_request_before_its_response() {
    for n in [1, 7, 200] {
        drive(Mode::Background, n, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_mode_delivers_each_request_before_its_response() {
    for n in [1, 7, 200] {
        drive(Mode::Inline, n, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_mode_with_flaky_ingest() {
    for n in [1, 7, 200] {
        drive(Mode::Background, n, true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_mode_with_flaky_ingest() {
    for n in [1, 7, 200] {
        drive(Mode::Inline, n, true).await;
    }
}

/// Concurrent requests, each flushing only its own trace: every response
/// still finds its own five spans at the ingest.
async fn drive_concurrent(mode: Mode) {
    let ingest = ScriptedHttpServer::start().unwrap();
    let service = start_service(&ingest, mode).await;
    let client = HttpClientConfig::new("test")
        .env_proxy(false)
        .build()
        .unwrap();
    for wave in 0..5 {
        let calls = (0..20).map(|n| {
            let (client, url) = (
                client.clone(),
                format!("{}/weather/w{wave}-{n}", service.url),
            );
            let ingest = &ingest;
            async move {
                let resp = client.get(url).send().await.unwrap();
                let ingested = acknowledged_spans(&ingest.requests());
                let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
                let trace = body["trace_id"].as_str().unwrap().to_owned();
                let mine = ingested.iter().filter(|(t, _)| *t == trace).count();
                assert_eq!(
                    mine, SPANS_PER_REQUEST,
                    "{mode:?}: trace {trace} answered early"
                );
            }
        });
        futures_util::future::join_all(calls).await;
    }
    let report = service.obs.shutdown(Duration::from_secs(10)).await;
    assert!(report.is_success(), "{mode:?}: {report}");
    assert_eq!(
        acknowledged_spans(&ingest.requests()).len(),
        100 * SPANS_PER_REQUEST
    );
    let _stopped = service.stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_in_both_modes() {
    drive_concurrent(Mode::Background).await;
    drive_concurrent(Mode::Inline).await;
}
