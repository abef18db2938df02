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
    pub fn redact_value(&self, trace: Option<TraceId>, value: &mut Value) -> bool {
        self.walk(trace, value, 0)
    }

    fn walk(&self, trace: Option<TraceId>, value: &mut Value, depth: usize) -> bool {
        if depth > 64 {
            return false;
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
                if !is_redacted(v) {
                    *v = self.redacted(trace, v);
                    changed = true;
                }
            } else {
                changed |= self.walk(trace, v, depth + 1);
            }
        }
        changed
    }

    /// Strings that hold JSON (tool arguments, serialised messages) are parsed,
    /// redacted and written back.
    fn walk_json_string(&self, trace: Option<TraceId>, s: &mut String, depth: usize) -> bool {
        let t = s.trim_start();
        if !(t.starts_with('{') || t.starts_with('[')) {
            return false;
        }
        let Ok(mut inner) = serde_json::from_str::<Value>(s) else {
            return false;
        };
        if self.walk(trace, &mut inner, depth + 1)
            && let Ok(out) = serde_json::to_string(&inner)
        {
            *s = out;
            return true;
        }
        false
    }

    fn redacted(&self, trace: Option<TraceId>, v: &Value) -> Value {
        match self.style {
            RedactionStyle::Full => Value::String("[REDACTED]".into()),
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
                _ => Value::String("[REDACTED]".into()),
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

fn is_redacted(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.starts_with("[REDACTED"))
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
