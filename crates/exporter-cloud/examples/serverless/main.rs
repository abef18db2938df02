//! A serverless-style HTTP service: every request records a trace of five
//! spans and flushes it to the cloud ingest before responding.
//!
//! ```sh
//! AIOBS_CLOUD_ENDPOINT=http://127.0.0.1:4318 AIOBS_CLOUD_TOKEN=dev \
//!     cargo run -p aiobs-exporter-cloud --example serverless -- --inline
//! curl http://127.0.0.1:3000/weather/Paris
//! ```
//!
//! `--inline` runs the pipeline in the request's own task (no background
//! thread, no timers), as a serverless isolate requires; without it the
//! pipeline runs on its background thread and the handler only waits.

mod app;

use std::time::Duration;

use aiobs_core::Observability;
use aiobs_exporter_cloud::CloudExporter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let inline = std::env::args().any(|a| a == "--inline");
    let exporter = CloudExporter::from_env()?;
    let mut builder = Observability::builder()
        .service_name("weather-service")
        .exporter(exporter);
    if inline {
        builder = builder.inline();
    }
    let obs = builder.build()?;
    let state = app::AppState {
        obs: obs.clone(),
        flush_timeout: Duration::from_secs(5),
    };
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "listening on http://{addr} ({} pipeline); try GET /weather/Paris",
        if inline { "inline" } else { "background" }
    );
    axum::serve(listener, app::router(state))
        .with_graceful_shutdown(async {
            let _interrupted = tokio::signal::ctrl_c().await;
        })
        .await?;
    let report = obs.shutdown(Duration::from_secs(5)).await;
    println!("{report}");
    Ok(())
}
