//! Inline mode specifics: nothing is sent until a flush, and the exporter
//! works from whichever runtime drives the flush.

use std::time::Duration;

use aiobs_conformance::http::ScriptedHttpServer;
use aiobs_core::{Observability, SpanOptions, SpanType};
use aiobs_exporter_cloud::CloudExporter;

fn inline_obs(server: &ScriptedHttpServer) -> Observability {
    let exporter = CloudExporter::builder()
        .endpoint(server.url())
        .token("t")
        .env_proxy(false)
        .build()
        .unwrap();
    Observability::builder()
        .inline()
        .derive_metrics(false)
        .exporter(exporter)
        .build()
        .unwrap()
}

#[test]
fn nothing_is_sent_before_the_flush_and_everything_after() {
    let server = ScriptedHttpServer::start().unwrap();
    let obs = inline_obs(&server);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for _ in 0..3 {
            obs.start_span(SpanOptions::new("a", SpanType::Generic))
                .end();
        }
        // No background thread, no timer: the ingest sees nothing yet.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(server.request_count(), 0);
        let report = obs.flush(Duration::from_secs(5)).await;
        assert!(report.is_success(), "{report}");
        assert_eq!(report.exporter("cloud").unwrap().delivered, 3);
        assert_eq!(server.request_count(), 1);
    });
}

#[test]
fn a_later_runtime_can_drive_the_flush_after_the_first_is_gone() {
    let server = ScriptedHttpServer::start().unwrap();
    let obs = inline_obs(&server);
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    first.block_on(async {
        obs.start_span(SpanOptions::new("first", SpanType::Generic))
            .end();
        assert!(obs.flush(Duration::from_secs(5)).await.is_success());
    });
    // The runtime that opened the pooled connection is gone (a serverless
    // isolate recycled, a test runtime dropped).
    drop(first);
    obs.start_span(SpanOptions::new("second", SpanType::Generic))
        .end();
    let report = obs.shutdown_blocking(Duration::from_secs(10));
    assert!(report.is_success(), "{report}");
    let cloud = obs.stats().exporter("cloud").cloned().unwrap();
    assert_eq!(cloud.delivered, 2);
    assert_eq!(
        cloud.retries, 0,
        "the stale pooled connection must not cost a failed attempt: {cloud:?}"
    );
}
