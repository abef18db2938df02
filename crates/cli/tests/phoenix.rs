//! Interop with a real OTLP backend no one here wrote: `aiobs demo` sends its
//! trace to Arize Phoenix (PyPI `arize-phoenix`), and the test reads it back
//! through Phoenix's REST API — span kinds, parents, token counts, status
//! and the session — comparing with the trace the demo itself printed.
//!
//! Phoenix is found through `AIOBS_PHOENIX_BIN` (the `phoenix` executable;
//! `.ci/run` installs it in a virtualenv and sets it) or `phoenix` on `PATH`.
//! Under CI (`CI` set) a missing Phoenix fails the test; elsewhere the test
//! says it skipped. Locally: `python3 -m venv /tmp/px && /tmp/px/bin/pip
//! install arize-phoenix && AIOBS_PHOENIX_BIN=/tmp/px/bin/phoenix cargo test
//! -p aiobs-cli --test phoenix`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `phoenix serve` of this test's own, on free loopback ports, with its
/// data in a temporary directory; stopped when dropped.
struct Phoenix {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        let _already_exited = self.child.kill();
        let _reaped = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn find_phoenix() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("AIOBS_PHOENIX_BIN") {
        return Some(PathBuf::from(bin));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("phoenix"))
        .find(|p| p.is_file())
}

fn get(client: &reqwest::blocking::Client, url: &str) -> Option<Value> {
    let r = client.get(url).send().ok()?;
    r.status().is_success().then(|| r.json().ok()).flatten()
}

impl Phoenix {
    fn start() -> Option<Phoenix> {
        let Some(bin) = find_phoenix() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "Phoenix is required under CI: .ci/run installs arize-phoenix and sets AIOBS_PHOENIX_BIN"
            );
            eprintln!(
                "SKIPPED: Phoenix not installed (set AIOBS_PHOENIX_BIN or put `phoenix` on PATH)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("phoenix.log")).unwrap();
        let child = Command::new(&bin)
            .arg("serve")
            .env("PHOENIX_WORKING_DIR", dir.path())
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", port.to_string())
            .env("PHOENIX_GRPC_PORT", free_port().to_string())
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut phoenix = Phoenix {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(300);
        while get(&client, &format!("{}/v1/projects", phoenix.url)).is_none() {
            if let Ok(Some(status)) = phoenix.child.try_wait() {
                panic!("phoenix serve exited ({status}):\n{}", phoenix.log());
            }
            assert!(
                Instant::now() < deadline,
                "Phoenix did not start:\n{}",
                phoenix.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        Some(phoenix)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("phoenix.log")).unwrap_or_default()
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

const MODEL_TYPES: [&str; 4] = [
    "model_generation",
    "model_step",
    "model_inference",
    "model_chunk",
];

/// The billable-usage rule: a model span's tokens count unless a model span
/// encloses it (a step inside its generation reports the same tokens again).
fn has_model_ancestor(span: &Value, spans: &[Value]) -> bool {
    let mut parent = span["parent_span_id"].as_str();
    while let Some(id) = parent {
        let Some(p) = spans.iter().find(|s| s["span_id"] == id) else {
            return false;
        };
        if MODEL_TYPES.contains(&p["span_type"].as_str().unwrap_or_default()) {
            return true;
        }
        parent = p["parent_span_id"].as_str();
    }
    false
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

#[test]
fn phoenix_reads_the_demo_trace() {
    let Some(phoenix) = Phoenix::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let demo = Command::new(env!("CARGO_BIN_EXE_aiobs"))
        .args([
            "--db",
            dir.path().join("aiobs.db").to_str().unwrap(),
            "demo",
            "--json",
        ])
        .env_remove("LANGFUSE_PUBLIC_KEY")
        .env_remove("AIOBS_CLOUD_ENDPOINT")
        .env_remove("SENTRY_DSN")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &phoenix.url)
        .env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&demo.stderr).to_string();
    assert!(demo.status.success(), "{printed}");
    assert!(printed.contains("otel: delivered 10"), "{printed}");
    let trace: Value = serde_json::from_slice(&demo.stdout).expect("the demo's trace as JSON");
    let ours = trace["spans"].as_array().unwrap();
    assert_eq!(ours.len(), 10);

    // Phoenix ingests in the background: wait until every span is queryable.
    let client = client();
    let spans_url = format!("{}/v1/projects/default/spans?limit=1000", phoenix.url);
    let deadline = Instant::now() + Duration::from_secs(60);
    let theirs = loop {
        let got = get(&client, &spans_url)
            .and_then(|v| v["data"].as_array().cloned())
            .unwrap_or_default();
        if got.len() >= ours.len() {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "Phoenix holds {} of {} spans:\n{}",
            got.len(),
            ours.len(),
            phoenix.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(theirs.len(), ours.len());

    let (mut billable_in, mut billable_out) = (0, 0);
    for s in ours {
        let id = s["span_id"].as_str().unwrap();
        let p = theirs
            .iter()
            .find(|p| p["context"]["span_id"] == id)
            .unwrap_or_else(|| panic!("Phoenix lacks span {id} ({})", s["name"]));
        let what = format!("{} ({})", s["name"], s["span_type"]);
        assert_eq!(p["context"]["trace_id"], trace["trace_id"], "{what}");
        assert_eq!(p["parent_id"], s["parent_span_id"], "{what}: parent");

        let kind = p["span_kind"].as_str().unwrap_or_default();
        let want = match s["span_type"].as_str().unwrap() {
            "agent_run" => "AGENT",
            "model_generation" | "model_step" => "LLM",
            "tool_call" => "TOOL",
            _ => "UNKNOWN",
        };
        assert_eq!(kind, want, "{what}: span kind");

        let a = &p["attributes"];
        let usage = &s["attributes"]["usage"];
        if usage.is_object() && !has_model_ancestor(s, ours) {
            assert_eq!(
                int(&a["llm.token_count.prompt"]),
                int(&usage["input_tokens"]),
                "{what}: prompt tokens"
            );
            assert_eq!(
                int(&a["llm.token_count.completion"]),
                int(&usage["output_tokens"]),
                "{what}: completion tokens"
            );
            assert_eq!(
                int(&a["llm.token_count.prompt_details.cache_read"]),
                int(&usage["input_details"]["cache_read"]),
                "{what}: cached input tokens"
            );
            billable_in += int(&usage["input_tokens"]).unwrap();
            billable_out += int(&usage["output_tokens"]).unwrap();
        } else {
            assert!(
                a.get("llm.token_count.prompt").is_none(),
                "{what}: tokens counted twice"
            );
        }
        assert_eq!(a["session.id"], "session-abc", "{what}: session");
        assert_eq!(a["user.id"], "user-123", "{what}: user");

        let status = p["status_code"].as_str().unwrap_or_default();
        if s["status"] == "error" {
            assert_eq!(status, "ERROR", "{what}");
            let msg = p["status_message"].as_str().unwrap_or_default();
            assert!(
                msg.contains(s["error"]["message"].as_str().unwrap()),
                "{what}: {msg}"
            );
        } else {
            assert_eq!(status, "UNSET", "{what}");
        }
    }

    // The session groups the trace, with the trace's billable tokens.
    let sessions = get(
        &client,
        &format!("{}/v1/projects/default/sessions", phoenix.url),
    )
    .unwrap();
    let session = sessions["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == "session-abc")
        .expect("Phoenix shows the demo's session");
    assert_eq!(session["traces"][0]["trace_id"], trace["trace_id"]);
    assert_eq!(
        int(&session["token_count_prompt"]),
        Some(billable_in),
        "tokens counted once"
    );
    assert_eq!(int(&session["token_count_completion"]), Some(billable_out));
}
