//! What the viewer's tests share: stores filled by the demo and by a trace
//! of hostile values, and `aiobs serve` running on a free port.

#![allow(dead_code)] // each test binary uses part of it

pub(crate) mod browser;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aiobs_core::{
    Cost, FeedbackRecord, ModelAttributes, Observability, ScoreRecord, SpanError, SpanId,
    SpanOptions, SpanType, ToolAttributes, TraceId, TracingOptions, Usage,
};
use aiobs_exporter_default::{
    DefaultExporter, PostgresConfig, PostgresStorage, SqliteStorage, Storage,
};

/// What an LLM might answer to an attacker's prompt: markup that must show
/// as characters in the viewer and never run.
pub(crate) const XSS_OUTPUT: &str = "Here you go: <script>window.__xss = 'script'</script>\
     <img src=x onerror=\"window.__xss = 'img'\"> done.";
/// A span name with markup in it.
pub(crate) const XSS_NAME: &str = "lookup <img src=x onerror=\"window.__xss = 'name'\">";

/// The aiobs binary, with no exporter configured by the environment.
pub(crate) fn aiobs(db: &str, args: &[&str]) -> Output {
    command(db, args).output().expect("the aiobs binary runs")
}

fn command(db: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aiobs"));
    c.arg("--db")
        .arg(db)
        .args(args)
        .env_remove("LANGFUSE_PUBLIC_KEY")
        .env_remove("AIOBS_CLOUD_ENDPOINT")
        .env_remove("AIOBS_DATABASE_URL");
    c
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `aiobs demo` into `db`; returns the demo's trace id.
pub(crate) fn demo(db: &str) -> String {
    let o = aiobs(db, &["demo", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let trace: serde_json::Value = serde_json::from_slice(&o.stdout).expect("demo --json");
    trace["trace_id"].as_str().expect("a trace id").to_owned()
}

/// `aiobs serve` on a free loopback port, stopped on drop.
pub(crate) struct Viewer {
    child: Child,
    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub(crate) url: String,
}

impl Viewer {
    pub(crate) fn start(db: &str) -> Self {
        Self::start_with(db, &["--addr", "127.0.0.1:0"])
    }

    pub(crate) fn start_with(db: &str, args: &[&str]) -> Self {
        let mut child = command(db, &[&["serve"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("aiobs serve starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                child.kill().ok();
                panic!("aiobs serve printed no URL within 30 s")
            });
        let url = first
            .strip_prefix("aiobs viewer: ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim_end_matches('/')
            .to_owned();
        Self { child, url }
    }

    /// GET `path`: status, headers and body.
    pub(crate) async fn get(&self, path: &str) -> Response {
        self.request(reqwest::Method::GET, path).await
    }

    pub(crate) async fn request(&self, method: reqwest::Method, path: &str) -> Response {
        let r = client()
            .request(method, format!("{}{path}", self.url))
            .send()
            .await
            .expect("the viewer answers");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("a body").to_vec();
        Response {
            status,
            headers,
            body,
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        // Already gone is fine: the test may have stopped it.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// A client that never goes through a proxy (the viewer is on loopback).
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The ids of the hostile trace.
#[derive(Debug, Clone)]
pub(crate) struct Fixture {
    pub(crate) trace_id: TraceId,
    pub(crate) root: SpanId,
    pub(crate) generation: SpanId,
    pub(crate) tool: SpanId,
    /// A span continued in "another process" under `tool`.
    pub(crate) continued: SpanId,
    pub(crate) continued_child: SpanId,
    pub(crate) session: String,
}

/// Writes one trace full of markup, a failing tool with a stack, chat
/// messages, cached and reasoning tokens with a cost, a span continued
/// from another process, a score and feedback; then a second trace of the
/// same session, a second later.
pub(crate) async fn write_fixture(store: Arc<dyn Storage>) -> Fixture {
    let session = "sess-<b>42</b>".to_owned();
    let obs = Observability::builder()
        .exporter(
            DefaultExporter::builder_shared(store.clone())
                .build()
                .expect("an exporter"),
        )
        .build()
        .expect("an Observability");
    let mut root = obs.start_span(
        SpanOptions::new("hostile-agent", SpanType::AgentRun)
            .input(serde_json::json!({"question": "<b>bold?</b>"}))
            .tracing(
                TracingOptions::new()
                    .user_id("user-<i>1</i>")
                    .session_id(session.clone())
                    .tag("<script>tag</script>")
                    .metadata("<i>key</i>", "<svg onload=\"window.__xss = 'meta'\">"),
            ),
    );
    let trace_id = root.trace_id();
    let mut generation = root.child(
        SpanOptions::new("chat gpt-4o", SpanType::ModelGeneration)
            .attributes(
                ModelAttributes::new("gpt-4o", "openai")
                    .with_parameters(serde_json::json!({"temperature": 0.1})),
            )
            .input(serde_json::json!([
                {"role": "system", "content": "You are a careful assistant."},
                {"role": "user", "content": "Repeat: <script>window.__xss = 'input'</script>"}
            ])),
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    generation.set_usage(
        Usage::new(1500, 200)
            .with_cache_read(1200)
            .with_reasoning(64)
            .with_cost(Cost::new(0.003, 0.002)),
    );
    generation.end_with_output(XSS_OUTPUT);
    let mut tool = root.child(
        SpanOptions::new(XSS_NAME, SpanType::ToolCall)
            .attributes(ToolAttributes::new("lookup"))
            .input(serde_json::json!({"q": "</pre><h1>big</h1>"})),
    );
    let tool_id = tool.span_id();
    tool.error(SpanError {
        stack: Some("at lookup (tools.rs:10)\nat <anonymous>".into()),
        ..SpanError::new("upstream said <b>no</b>").with_kind("Upstream")
    });
    // Another process continues the trace under the tool span.
    let mut continued = obs.start_span(
        SpanOptions::new("durable step", SpanType::WorkflowStep).tracing(
            TracingOptions::new()
                .trace_id(trace_id)
                .parent_span_id(tool_id),
        ),
    );
    let mut inner = continued.child(SpanOptions::new("inner work", SpanType::Generic));
    inner.end();
    let (continued_id, inner_id) = (continued.span_id(), inner.span_id());
    continued.end();
    let (root_id, generation_id) = (root.span_id(), generation.span_id());
    root.end_with_output("finished");
    obs.score(ScoreRecord::new(trace_id, "<b>accuracy</b>", 0.75).with_comment("<i>fine</i>"));
    obs.feedback(FeedbackRecord::new(trace_id, "thumbs", 1));

    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut second = obs.start_span(
        SpanOptions::new("follow-up", SpanType::AgentRun)
            .tracing(TracingOptions::new().session_id(session.clone())),
    );
    second.end_with_output("ok");
    let report = obs.shutdown(Duration::from_secs(30)).await;
    assert!(report.is_success(), "{report}");
    Fixture {
        trace_id,
        root: root_id,
        generation: generation_id,
        tool: tool_id,
        continued: continued_id,
        continued_child: inner_id,
        session,
    }
}

/// A SQLite store in `dir` holding the demo's trace and the fixture.
pub(crate) async fn sqlite_store(dir: &std::path::Path) -> (String, String, Fixture) {
    let path = dir.join("aiobs.db");
    let db = path.to_str().expect("a UTF-8 path").to_owned();
    let demo_trace = demo(&db);
    let store: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&path).expect("the store"));
    let fixture = write_fixture(store).await;
    (db, demo_trace, fixture)
}

/// A PostgreSQL store in a schema of its own (`--db` URL that selects it,
/// the schema), holding the demo's trace and the fixture; `None` when no
/// server is configured outside CI.
pub(crate) async fn postgres_store() -> Option<(String, String, Fixture, String)> {
    let url = match std::env::var("AIOBS_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ if std::env::var_os("CI").is_some() => {
            panic!("AIOBS_TEST_POSTGRES_URL must be set in CI (cargo xtask test sets it)")
        }
        _ => {
            eprintln!(
                "SKIPPED: AIOBS_TEST_POSTGRES_URL is not set (cargo xtask test starts a server)"
            );
            return None;
        }
    };
    let schema = format!("aiobs_viewer_{:016x}", fastrand::u64(..));
    let store = PostgresStorage::new(PostgresConfig::new(url.clone()).schema(schema.clone()))
        .expect("a PostgreSQL config");
    store.init().await.expect("the schema");
    let store: Arc<dyn Storage> = Arc::new(store);
    let sep = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let demo_trace = demo(&db);
    let fixture = write_fixture(store).await;
    Some((db, demo_trace, fixture, schema))
}

/// Drops a schema made by [`postgres_store`].
pub(crate) async fn drop_schema(schema: &str) {
    let Ok(url) = std::env::var("AIOBS_TEST_POSTGRES_URL") else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("a connection");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("the schema dropped");
}
