//! What the Sentry tests share: an envelope reader for the scripted server's
//! captured requests, the kit harness, and Sentry's own normaliser (Relay).

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use aiobs_conformance::http::CapturedRequest;
use aiobs_conformance::{DeliveredItem, Harness, HarnessError};
use aiobs_exporter_sentry::SentryExporter;
use serde_json::{Value, json};

/// The envelope path for project 1.
pub const ENVELOPE_PATH: &str = "/api/1/envelope/";

/// A DSN pointing at a scripted server (`http://127.0.0.1:port`).
pub fn dsn_for(url: &str) -> String {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    format!("http://publickey@{host}/1")
}

pub fn exporter(url: &str) -> SentryExporter {
    SentryExporter::builder()
        .dsn(dsn_for(url))
        .environment("production")
        .release("weather-agent@1.2.3")
        .build()
        .expect("valid configuration")
}

/// One decoded envelope: its header and its items (item header, payload).
#[derive(Debug, Clone)]
pub struct Envelope {
    pub header: Value,
    pub items: Vec<(Value, Value)>,
}

impl Envelope {
    /// The payloads of items of this type.
    pub fn payloads(&self, ty: &str) -> Vec<&Value> {
        self.items
            .iter()
            .filter(|(h, _)| h["type"] == ty)
            .map(|(_, p)| p)
            .collect()
    }
}

/// Parses an envelope body (already decompressed by the scripted server).
pub fn parse_envelope(body: &[u8]) -> Result<Envelope, String> {
    let mut rest = body;
    let line = |rest: &mut &[u8]| -> Result<Value, String> {
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("missing newline")?;
        let v = serde_json::from_slice(&rest[..end]).map_err(|e| e.to_string())?;
        *rest = &rest[end + 1..];
        Ok(v)
    };
    let header = line(&mut rest)?;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let item_header = line(&mut rest)?;
        let len = item_header["length"]
            .as_u64()
            .ok_or("item header without length")? as usize;
        if rest.len() < len {
            return Err(format!(
                "item of length {len} but {} bytes left",
                rest.len()
            ));
        }
        let payload = serde_json::from_slice(&rest[..len]).map_err(|e| e.to_string())?;
        rest = &rest[len..];
        if rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
        items.push((item_header, payload));
    }
    Ok(Envelope { header, items })
}

pub fn envelope_of(req: &CapturedRequest) -> Envelope {
    parse_envelope(&req.body).unwrap_or_else(|e| panic!("request {} is no envelope: {e}", req.seq))
}

/// The spans a request delivered, for the conformance kit: the head of each
/// transaction (`contexts.trace`) and its children (`spans[]`).
pub fn decode_request(req: &CapturedRequest) -> Result<Vec<DeliveredItem>, HarnessError> {
    let env = parse_envelope(&req.body).map_err(HarnessError::new)?;
    let mut out = Vec::new();
    for t in env.payloads("transaction") {
        let head = &t["contexts"]["trace"];
        out.push(item(head, t["transaction"].as_str()));
        for s in t["spans"].as_array().into_iter().flatten() {
            out.push(item(s, None));
        }
    }
    Ok(out)
}

fn item(span: &Value, name: Option<&str>) -> DeliveredItem {
    let data = &span["data"];
    let text = |keys: &[&str]| keys.iter().find_map(|k| data.get(*k).cloned());
    DeliveredItem::span(span["span_id"].as_str().unwrap_or_default())
        .trace(span["trace_id"].as_str().unwrap_or_default())
        .parent(span["parent_span_id"].as_str())
        .name(
            name.or(data["aiobs.span.name"].as_str())
                .or(span["description"].as_str())
                .unwrap_or_default(),
        )
        .input(text(&["aiobs.input", "gen_ai.tool.call.arguments"]))
        .output(text(&["aiobs.output", "gen_ai.tool.call.result"]))
}

pub fn harness() -> Harness {
    Harness::http(exporter)
        .named("SentryExporter")
        .ingest_path(ENVELOPE_PATH)
        .decode_requests(decode_request)
}

/// Every transaction and error event payload in these requests, as Relay
/// reads them: a transaction item's payload gets `type: transaction` from
/// its item header (Relay sets the event type from the item type).
pub fn events_for_relay(requests: &[CapturedRequest]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in requests {
        let env = envelope_of(r);
        for (h, p) in env.items {
            let mut p = p;
            match h["type"].as_str() {
                Some("transaction") => {
                    p["type"] = json!("transaction");
                    out.push(p);
                }
                Some("event") => out.push(p),
                other => panic!("unexpected item type {other:?}"),
            }
        }
    }
    out
}

/// The Python that has `sentry_relay`: `AIOBS_SENTRY_RELAY_PYTHON`, else
/// `.venv/bin/python` at the workspace root, else `python3`.
fn relay_python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = std::env::var_os("AIOBS_SENTRY_RELAY_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join(".venv/bin/python"), PathBuf::from("python3")]);
    for p in candidates {
        let ok = Command::new(&p)
            .args(["-c", "import sentry_relay.processing"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(p);
        }
    }
    None
}

/// Runs `events` through Relay's `StoreNormalizer`; panics naming the first
/// refused event or normalisation error. Returns the normalised events.
/// Without `sentry_relay` the check is skipped with a message, except under
/// CI (`CI` set), where it fails.
pub fn assert_relay_accepts(events: &[Value]) -> Vec<Value> {
    assert!(!events.is_empty(), "no event to validate");
    let Some(python) = relay_python() else {
        let msg = "sentry-relay is not installed (pip install sentry-relay, or set AIOBS_SENTRY_RELAY_PYTHON)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}: CI must run Sentry's normaliser");
        }
        eprintln!("SKIPPED Relay validation: {msg}");
        return Vec::new();
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/common/relay_normalize.py");
    let mut file = tempfile_path();
    file.1
        .write_all(serde_json::to_string(events).unwrap().as_bytes())
        .unwrap();
    let out = Command::new(python)
        .arg(script)
        .arg(&file.0)
        .output()
        .expect("run the Relay normaliser");
    let _removed = std::fs::remove_file(&file.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut normalised = Vec::new();
    for (i, line) in stdout.lines().enumerate() {
        let r: Value = serde_json::from_str(line).expect("normaliser output");
        assert!(
            r["ok"] == true,
            "Relay refused event {i} ({}): {}\nevent: {}",
            events[i]["type"],
            r["error"],
            events[i]
        );
        let errors = &r["event"]["errors"];
        assert!(
            errors.is_null() || errors.as_array().is_some_and(Vec::is_empty),
            "Relay reported normalisation errors for event {i}: {errors}\nevent: {}",
            events[i]
        );
        normalised.push(r["event"].clone());
    }
    assert_eq!(
        normalised.len(),
        events.len(),
        "normaliser stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    normalised
}

fn tempfile_path() -> (PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!(
        "aiobs-sentry-relay-{}-{}.json",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let f = std::fs::File::create(&path).expect("temp file");
    (path, f)
}
