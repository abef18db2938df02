//! Refused credentials produce exactly one error log line, however many
//! events follow (its own test binary: it installs a global log subscriber).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
use aiobs_core::Observability;
use aiobs_exporter_langfuse::LangfuseTransport;
use common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn refused_credentials_log_one_clear_error() {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .init();

    let server = ScriptedHttpServer::start().unwrap();
    server.set_default(ScriptedResponse::unauthorized());
    let obs = Observability::builder()
        .exporter(
            builder(&server, LangfuseTransport::Ingestion)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    for _ in 0..3 {
        weather_trace(&obs, true);
        let _report = obs.flush_blocking(FLUSH);
    }

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line:\n{text}");
    assert!(
        errors[0].contains("Langfuse refused the credentials"),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("LANGFUSE_PUBLIC_KEY"), "{}", errors[0]);
}
