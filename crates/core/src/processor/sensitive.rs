//! `SensitiveDataFilter`: redacts credentials and secrets before any exporter sees them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use serde_json::{Map, Value};

use super::{SpanProcessor, Verdict};
use crate::event::LogRecord;
use crate::id::TraceId;
use crate::span::{ExportedSpan, SpanAttributes};

/// How a redacted value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RedactionStyle {
    /// `[REDACTED]`.
    #[default]
    Full,
    /// The first 3 and last 3 characters of strings of 12 or more characters
    /// (`sk-…xyz`); shorter strings and non-strings are redacted fully.
    Partial,
    /// `[REDACTED:n]`: the same secret gets the same number within a trace, so
    /// you can see that two places held the same value without seeing it.
    Indexed,
}

/// Keys (normalised: lowercase, letters and digits only) that are sensitive as they are.
const EXACT_KEYS: &[&str] = &[
    "token", "auth", "pwd", "pass", "jwt", "bearer", "ssn", "otp",
];

/// Suffixes that make a normalised key sensitive (`openai_api_key`, `x-api-key`, `client_secret`).
const SUFFIX_KEYS: &[&str] = &[
    "apikey",
    "secret",
    "secretkey",
    "password",
    "passwd",
    "passphrase",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "authtoken",
    "sessiontoken",
    "bearertoken",
    "csrftoken",
    "authorization",
    "privatekey",
    "credential",
    "credentials",
    "cookie",
    "setcookie",
    "signature",
    "accesskey",
    "connectionstring",
];

/// Keys whose sibling `value` field holds the secret (`{"name": "Authorization", "value": "…"}`).
const PAIR_NAME_KEYS: &[&str] = &["name", "key", "header"];

const MAX_TRACES_INDEXED: usize = 10_000;

/// Redacts values under sensitive keys in span input, output, metadata,
/// attributes and errors, and in log attributes: whole values, objects
/// included, inside nested message histories and inside strings that hold JSON.
///
/// Keys match case- and separator-insensitively: `x-api-key`, `X_API_KEY` and
/// `xApiKey` are the same key. The default list covers API keys, tokens,
/// passwords, secrets, `Authorization`, cookies and private keys; add your own
/// with [`SensitiveDataFilter::with_keys`].
#[derive(Debug)]
pub struct SensitiveDataFilter {
    style: RedactionStyle,
    extra_keys: Vec<String>,
    indexes: Mutex<HashMap<TraceId, HashMap<u64, u32>>>,
}

impl Default for SensitiveDataFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl SensitiveDataFilter {
    /// A filter with the default keys and `Full` redaction.
    pub fn new() -> Self {
        Self {
            style: RedactionStyle::Full,
            extra_keys: Vec::new(),
            indexes: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the redaction style.
    #[must_use]
    pub fn with_style(mut self, style: RedactionStyle) -> Self {
        self.style = style;
        self
    }

    /// Adds keys treated as sensitive (matched exactly after normalisation).
    #[must_use]
    pub fn with_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.extra_keys
            .extend(keys.into_iter().map(|k| normalise(k.as_ref())));
        self
    }

    /// Whether `key` names a secret.
    pub fn is_sensitive_key(&self, key: &str) -> bool {
        let k = normalise(key);
        if k.is_empty() {
            return false;
        }
        EXACT_KEYS.contains(&k.as_str())
            || SUFFIX_KEYS.iter().any(|s| k.ends_with(s))
            || self.extra_keys.contains(&k)
    }

    /// Redacts sensitive values in `value`, in place. Returns whether anything changed.
    ///
    /// Fails closed: a subtree nested deeper than can be inspected (counting
    /// the levels inside strings that hold JSON) is replaced whole, and a
    /// string that looks like JSON but cannot be parsed (cut by a size limit,
    /// nested beyond the parser's limit, or broken) is cut at the first
    /// sensitive key found in its text.
    pub fn redact_value(&self, trace: Option<TraceId>, value: &mut Value) -> bool {
        self.walk(trace, value, 0)
    }

    fn walk(&self, trace: Option<TraceId>, value: &mut Value, depth: usize) -> bool {
        if depth >= MAX_DEPTH {
            return too_deep(value);
        }
        match value {
            Value::Object(map) => self.walk_object(trace, map, depth),
            Value::Array(items) => {
                let mut changed = false;
                for v in items {
                    changed |= self.walk(trace, v, depth + 1);
                }
                changed
            }
            Value::String(s) => self.walk_json_string(trace, s, depth),
            _ => false,
        }
    }

    fn walk_object(
        &self,
        trace: Option<TraceId>,
        map: &mut Map<String, Value>,
        depth: usize,
    ) -> bool {
        let mut changed = false;
        // `{"name": "Authorization", "value": "Bearer …"}` header lists.
        let pair_is_sensitive = PAIR_NAME_KEYS.iter().any(|k| {
            map.get(*k)
                .and_then(Value::as_str)
                .is_some_and(|n| self.is_sensitive_key(n))
        });
        for (k, v) in map.iter_mut() {
            if self.is_sensitive_key(k) || (pair_is_sensitive && k == "value") {
                if !self.is_redaction(v) {
                    *v = self.redacted(trace, v);
                    changed = true;
                }
            } else {
                changed |= self.walk(trace, v, depth + 1);
            }
        }
        changed
    }

    /// Strings that hold JSON (tool arguments, serialised messages) are
    /// parsed, redacted and written back; JSON text that cannot be parsed,
    /// and JSON fragments inside other text, are scanned for sensitive keys.
    fn walk_json_string(&self, trace: Option<TraceId>, s: &mut String, depth: usize) -> bool {
        if looks_like_json(s) {
            let Ok(mut inner) = serde_json::from_str::<Value>(s) else {
                return self.redact_unparsed(s);
            };
            if !self.walk(trace, &mut inner, depth + 1) {
                return false;
            }
            *s = serde_json::to_string(&inner).unwrap_or_else(|_| REDACTED.to_owned());
            return true;
        }
        has_json_key(s) && self.redact_unparsed(s)
    }

    /// Cuts JSON-like text at the value of its first sensitive key: the text
    /// before it is kept, the rest replaced by a marker. Keys are found at
    /// any level of escaping (`"api_key":`, `\"api_key\":`, ...).
    fn redact_unparsed(&self, s: &mut String) -> bool {
        let Some(cut) = s.match_indices(':').map(|(i, _)| i).find(|&colon| {
            quoted_key_before(&s[..colon]).is_some_and(|k| self.is_sensitive_key(k))
        }) else {
            return false;
        };
        s.truncate(cut + 1);
        s.push_str(UNPARSED_REST);
        true
    }

    /// Whether `v` is exactly what this filter writes for a redacted value
    /// (so it is left as is). Anything else under a sensitive key is
    /// redacted, including text that merely starts like a marker.
    fn is_redaction(&self, v: &Value) -> bool {
        let Some(s) = v.as_str() else { return false };
        match self.style {
            RedactionStyle::Full | RedactionStyle::Partial => s == REDACTED,
            RedactionStyle::Indexed => s
                .strip_prefix("[REDACTED:")
                .and_then(|r| r.strip_suffix(']'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        }
    }

    fn redacted(&self, trace: Option<TraceId>, v: &Value) -> Value {
        match self.style {
            RedactionStyle::Full => Value::String(REDACTED.into()),
            RedactionStyle::Partial => match v.as_str() {
                Some(s) if s.chars().count() >= 12 => {
                    let head: String = s.chars().take(3).collect();
                    let tail: String = s
                        .chars()
                        .rev()
                        .take(3)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    Value::String(format!("{head}…{tail}"))
                }
                _ => Value::String(REDACTED.into()),
            },
            RedactionStyle::Indexed => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                v.to_string().hash(&mut h);
                let key = h.finish();
                let trace =
                    trace.unwrap_or_else(|| TraceId::from_u128(1).unwrap_or_else(TraceId::random));
                let n = match self.indexes.lock() {
                    Ok(mut all) => {
                        if all.len() >= MAX_TRACES_INDEXED && !all.contains_key(&trace) {
                            // Bounded state: start over rather than grow without limit.
                            all.clear();
                        }
                        let per_trace = all.entry(trace).or_default();
                        let next = per_trace.len() as u32 + 1;
                        *per_trace.entry(key).or_insert(next)
                    }
                    Err(_) => 0,
                };
                Value::String(format!("[REDACTED:{n}]"))
            }
        }
    }

    fn redact_opt(&self, trace: Option<TraceId>, v: &mut Option<Value>) {
        if let Some(v) = v {
            self.walk(trace, v, 0);
        }
    }

    fn redact_map(&self, trace: Option<TraceId>, m: &mut Map<String, Value>) {
        self.walk_object(trace, m, 0);
    }
}

/// What a redacted value becomes in the `Full` style.
const REDACTED: &str = "[REDACTED]";

/// Deepest nesting of arrays and objects inspected, counting the levels
/// inside strings that hold JSON; deeper subtrees are replaced whole.
const MAX_DEPTH: usize = 256;

/// What replaces a subtree nested too deep to inspect.
const TOO_DEEP: &str = "[REDACTED: nested too deep to inspect]";

/// What replaces the rest of JSON-like text after a sensitive key.
const UNPARSED_REST: &str = " \"[REDACTED]\"…[aiobs: the rest of this text was redacted: it holds a sensitive key and is not valid JSON]";

/// Longest key text considered when scanning unparsed JSON text.
const MAX_KEY_LEN: usize = 256;

/// Replaces a value at the depth limit unless it cannot hold a keyed secret:
/// numbers, booleans, null and plain strings (their key was checked) stay.
fn too_deep(value: &mut Value) -> bool {
    let opaque = match value {
        Value::Object(_) | Value::Array(_) => true,
        Value::String(s) => s != TOO_DEEP && (looks_like_json(s) || has_json_key(s)),
        _ => false,
    };
    if opaque {
        *value = Value::String(TOO_DEEP.to_owned());
    }
    opaque
}

fn looks_like_json(s: &str) -> bool {
    let t = s.trim_start();
    t.starts_with('{') || t.starts_with('[')
}

/// Whether the text holds something like a JSON key (`"key":`, escaped or
/// not: `\"key\":` ends the same way).
fn has_json_key(s: &str) -> bool {
    s.contains("\":")
}

/// The key of `"key"` (or `\"key\"`, at any escaping) ending `text`,
/// ignoring whitespace before the colon.
fn quoted_key_before(text: &str) -> Option<&str> {
    let before = text.trim_end().strip_suffix('"')?.trim_end_matches('\\');
    // Only the last `MAX_KEY_LEN` bytes can hold the key: a long text with
    // many colons is scanned in linear time.
    let window = before.floor_char_boundary(before.len().saturating_sub(MAX_KEY_LEN + 1));
    let start = window + before[window..].rfind('"')?;
    Some(&before[start + 1..])
}

fn normalise(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl SpanProcessor for SensitiveDataFilter {
    fn name(&self) -> &str {
        "sensitive-data-filter"
    }

    fn process_span(&self, span: &mut ExportedSpan) -> Verdict {
        let t = Some(span.trace_id);
        self.redact_opt(t, &mut span.input);
        self.redact_opt(t, &mut span.output);
        self.redact_map(t, &mut span.metadata);
        // The trace's own copy of its metadata reaches exporters too (trace
        // metadata, `export`). It is shared by the trace's spans: copied
        // only when something in it must change.
        if !span.trace_context.metadata.is_empty() {
            let mut metadata = span.trace_context.metadata.clone();
            if self.walk_object(t, &mut metadata, 0) {
                std::sync::Arc::make_mut(&mut span.trace_context).metadata = metadata;
            }
        }
        if let SpanAttributes::Model(m) = &mut span.attributes {
            self.redact_opt(t, &mut m.parameters);
        }
        if let Some(e) = &mut span.error {
            self.redact_opt(t, &mut e.details);
            self.walk_json_string(t, &mut e.message, 0);
        }
        Verdict::Keep
    }

    fn process_log(&self, log: &mut LogRecord) -> Verdict {
        self.redact_map(log.trace_id, &mut log.attributes);
        self.walk_json_string(log.trace_id, &mut log.message, 0);
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_keys_across_case_and_separators() {
        let f = SensitiveDataFilter::new();
        for k in [
            "x-api-key",
            "X_API_KEY",
            "apiKey",
            "api_key",
            "access_token",
            "accessToken",
            "Authorization",
            "client_secret",
            "password",
            "openai_api_key",
            "token",
            "Set-Cookie",
        ] {
            assert!(f.is_sensitive_key(k), "{k} should be sensitive");
        }
        for k in [
            "max_tokens",
            "input_tokens",
            "model",
            "content",
            "role",
            "author",
            "tokens",
            "",
        ] {
            assert!(!f.is_sensitive_key(k), "{k} should not be sensitive");
        }
        assert!(
            f.with_keys(["customer-ssn-number"])
                .is_sensitive_key("CustomerSsnNumber")
        );
    }

    #[test]
    fn redacts_nested_histories_objects_and_json_strings() {
        let f = SensitiveDataFilter::new();
        let mut v = json!({
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "tool", "content": "{\"apiKey\": \"sk-live-123456\", \"city\": \"Paris\"}"},
                {"role": "assistant", "tool_calls": [{"arguments": {"client_secret": "cs_1"}}]}
            ],
            "headers": [{"name": "Authorization", "value": "Bearer abc"}, {"name": "Accept", "value": "json"}],
            "credentials": {"user": "u", "pass": "p"},
            "x-api-key": "k",
            "max_tokens": 256
        });
        assert!(f.redact_value(None, &mut v));
        let text = v.to_string();
        for secret in ["sk-live-123456", "cs_1", "Bearer abc", "\"u\"", "\"p\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(v["credentials"], json!("[REDACTED]"));
        assert_eq!(v["headers"][1]["value"], json!("json"));
        assert_eq!(v["max_tokens"], json!(256));
        assert!(
            v["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("Paris")
        );
        assert_eq!(v["messages"][0]["content"], json!("hi"));
    }

    #[test]
    fn styles() {
        let partial = SensitiveDataFilter::new().with_style(RedactionStyle::Partial);
        let mut v = json!({"api_key": "sk-abcdefghijklmnop", "token": "short"});
        partial.redact_value(None, &mut v);
        assert_eq!(v, json!({"api_key": "sk-…nop", "token": "[REDACTED]"}));

        let indexed = SensitiveDataFilter::new().with_style(RedactionStyle::Indexed);
        let (t1, t2) = (TraceId::random(), TraceId::random());
        let mut a = json!({"api_key": "one", "password": "two", "secret": "one"});
        indexed.redact_value(Some(t1), &mut a);
        assert_eq!(
            a,
            json!({"api_key": "[REDACTED:1]", "password": "[REDACTED:2]", "secret": "[REDACTED:1]"})
        );
        let mut b = json!({"token": "two"});
        indexed.redact_value(Some(t1), &mut b);
        assert_eq!(b, json!({"token": "[REDACTED:2]"}), "stable within a trace");
        let mut c = json!({"token": "two"});
        indexed.redact_value(Some(t2), &mut c);
        assert_eq!(c, json!({"token": "[REDACTED:1]"}), "numbered per trace");
    }

    /// `{"a": {"a": ... {"api_key": "sk-live-…"}}}`, `levels` deep.
    fn nested_secret(levels: usize) -> String {
        let mut text = "{\"api_key\": \"sk-live-0123456789\"}".to_owned();
        for _ in 0..levels {
            text = format!("{{\"a\": {text}}}");
        }
        text
    }

    #[test]
    fn json_text_nested_at_any_depth_is_redacted() {
        let f = SensitiveDataFilter::new();
        for levels in [1, 62, 63, 64, 127, 128, 200, 10_000] {
            let mut v = json!({ "payload": nested_secret(levels) });
            assert!(
                f.redact_value(None, &mut v),
                "{levels} levels: nothing changed"
            );
            let text = v.to_string();
            assert!(!text.contains("sk-live"), "{levels} levels: secret leaked");
            // What can be kept is kept: the nesting before the secret.
            assert!(
                text.contains("\\\"a\\\""),
                "{levels} levels: {}",
                &text[..80.min(text.len())]
            );
        }
    }

    #[test]
    fn structures_deeper_than_inspected_are_replaced_whole() {
        let f = SensitiveDataFilter::new();
        let mut v = json!({"api_key": "sk-live-0123456789"});
        for _ in 0..(MAX_DEPTH + 10) {
            v = json!({ "a": v });
        }
        assert!(f.redact_value(None, &mut v));
        let text = serde_json::to_string(&v).unwrap();
        assert!(!text.contains("sk-live"));
        assert!(text.contains(TOO_DEEP));
        let replaced = v.clone();
        assert!(
            !f.redact_value(None, &mut v),
            "a second pass changes nothing"
        );
        assert_eq!(v, replaced);
        // Within the limit, nothing without a sensitive key changes.
        let mut plain = json!(42);
        for _ in 0..(MAX_DEPTH - 1) {
            plain = json!([plain]);
        }
        let before = plain.clone();
        assert!(!f.redact_value(None, &mut plain));
        assert_eq!(plain, before);
    }

    #[test]
    fn json_text_that_does_not_parse_is_cut_at_the_secret() {
        let f = SensitiveDataFilter::new();
        // Cut by a size limit: the closing brace and quote are gone.
        let mut v = json!({"tool_result": "{\"city\": \"Paris\", \"password\": \"hunter2-and-more…[aiobs: truncated 99 bytes]"});
        assert!(f.redact_value(None, &mut v));
        let out = v["tool_result"].as_str().unwrap();
        assert!(!out.contains("hunter2"), "{out}");
        assert!(
            out.starts_with("{\"city\": \"Paris\", \"password\":"),
            "{out}"
        );
        // A JSON fragment inside other text, escaped one level deeper.
        let mut v = json!({"log": "request failed: {\\\"x-api-key\\\": \\\"k-123\\\"}"});
        assert!(f.redact_value(None, &mut v));
        assert!(!v.to_string().contains("k-123"), "{v}");
        // Text without a sensitive key is left alone.
        let mut v = json!({"note": "{\"city\": \"Paris\"", "prose": "he said \"hi\": twice"});
        let before = v.clone();
        assert!(!f.redact_value(None, &mut v));
        assert_eq!(v, before);
    }

    #[test]
    fn a_value_that_only_looks_redacted_is_redacted() {
        for style in [
            RedactionStyle::Full,
            RedactionStyle::Indexed,
            RedactionStyle::Partial,
        ] {
            let f = SensitiveDataFilter::new().with_style(style);
            let mut v =
                json!({"api_key": "[REDACTED] sk-live-0123456789", "token": "[REDACTED:1x]sk-2"});
            f.redact_value(Some(TraceId::random()), &mut v);
            let text = v.to_string();
            assert!(
                !text.contains("sk-live-0123456789") && !text.contains("sk-2"),
                "{style:?}: {text}"
            );
        }
        let f = SensitiveDataFilter::new();
        let mut already = json!({"api_key": "[REDACTED]"});
        assert!(
            !f.redact_value(None, &mut already),
            "our own marker is left as is"
        );
    }

    #[test]
    fn trace_metadata_carried_by_the_span_is_redacted_too() {
        use crate::id::SpanId;
        use crate::span::{SpanType, TraceContext};
        let f = SensitiveDataFilter::new();
        let mut s = ExportedSpan::new(
            TraceId::random(),
            SpanId::random(),
            "root",
            SpanType::AgentRun,
        );
        let mut ctx = TraceContext::default();
        ctx.metadata
            .insert("openai_api_key".into(), json!("sk-trace"));
        ctx.metadata.insert("tenant".into(), json!("acme"));
        s.trace_context = std::sync::Arc::new(ctx);
        let shared = s.trace_context.clone();
        f.process_span(&mut s);
        assert_eq!(
            s.trace_context.metadata["openai_api_key"],
            json!("[REDACTED]")
        );
        assert_eq!(s.trace_context.metadata["tenant"], json!("acme"));
        assert_eq!(
            shared.metadata["openai_api_key"],
            json!("sk-trace"),
            "the shared original is not touched"
        );
    }

    #[test]
    fn span_fields_are_covered() {
        use crate::id::SpanId;
        use crate::span::{ModelAttributes, SpanError, SpanType};
        let f = SensitiveDataFilter::new();
        let mut s = ExportedSpan::new(
            TraceId::random(),
            SpanId::random(),
            "gen",
            SpanType::ModelGeneration,
        );
        s.input = Some(json!({"authorization": "Bearer x"}));
        s.output = Some(json!("{\"access_token\": \"t\"}"));
        s.metadata.insert("apiKey".into(), json!("k"));
        s.attributes = ModelAttributes::new("m", "p")
            .with_parameters(json!({"api_key": "k2"}))
            .into();
        let mut err = SpanError::new("{\"password\": \"hunter2\"}");
        err.details = Some(json!({"secret": {"nested": 1}}));
        s.error = Some(Box::new(err));
        assert_eq!(f.process_span(&mut s), Verdict::Keep);
        let text = serde_json::to_string(&s).unwrap();
        for secret in ["Bearer x", "\\\"t\\\"", "\"k\"", "k2", "hunter2", "nested"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}
