//! `metadata.langfuse.*`: per-span settings for this exporter.
//!
//! `prompt = {name, version}` links a generation to a Langfuse prompt; the
//! other known keys set trace-level fields. Known keys are removed from the
//! metadata Langfuse shows; unknown ones stay under `langfuse` so nothing is lost.

use serde_json::{Map, Value};

/// The metadata key this exporter reads (`Exporter::name`).
pub(crate) const KEY: &str = "langfuse";

/// A link from a generation to a managed prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PromptLink {
    pub(crate) name: String,
    pub(crate) version: i64,
}

/// What `metadata.langfuse` asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Directives {
    pub(crate) prompt: Option<PromptLink>,
    pub(crate) trace_name: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) public: Option<bool>,
    pub(crate) user_id: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) tags: Vec<String>,
}

/// Splits `metadata` into the generic metadata (without the known
/// `langfuse.*` keys) and the directives.
pub(crate) fn split(metadata: &Map<String, Value>) -> (Map<String, Value>, Directives) {
    let mut generic = metadata.clone();
    let mut d = Directives::default();
    let Some(Value::Object(own)) = generic.remove(KEY) else {
        // A non-object `langfuse` value is not ours to interpret: keep it.
        if let Some(v) = metadata.get(KEY) {
            generic.insert(KEY.to_owned(), v.clone());
        }
        return (generic, d);
    };
    let mut rest = Map::new();
    for (k, v) in own {
        let used = match k.as_str() {
            "prompt" => parse_prompt(&v).map(|p| d.prompt = Some(p)).is_some(),
            "traceName" | "trace_name" => set_string(&mut d.trace_name, &v),
            "release" => set_string(&mut d.release, &v),
            "version" => set_string(&mut d.version, &v),
            "userId" | "user_id" => set_string(&mut d.user_id, &v),
            "sessionId" | "session_id" => set_string(&mut d.session_id, &v),
            "public" => v.as_bool().map(|b| d.public = Some(b)).is_some(),
            "tags" => match &v {
                Value::Array(items) if items.iter().all(Value::is_string) => {
                    d.tags = items
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect();
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !used {
            rest.insert(k, v);
        }
    }
    if !rest.is_empty() {
        generic.insert(KEY.to_owned(), Value::Object(rest));
    }
    (generic, d)
}

fn set_string(slot: &mut Option<String>, v: &Value) -> bool {
    match v {
        Value::String(s) if !s.is_empty() => *slot = Some(s.clone()),
        // Numbers are accepted for version-like fields (`version: 3`).
        Value::Number(n) => *slot = Some(n.to_string()),
        _ => return false,
    }
    true
}

/// `{name: "...", version: 3}` (the version may also be a numeric string).
fn parse_prompt(v: &Value) -> Option<PromptLink> {
    let obj = v.as_object()?;
    let name = obj.get("name")?.as_str().filter(|s| !s.is_empty())?;
    let version = match obj.get("version")? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    Some(PromptLink {
        name: name.to_owned(),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn known_keys_become_directives_and_leave_metadata() {
        let (generic, d) = split(&obj(json!({
            "tenant": "acme",
            "langfuse": {
                "prompt": {"name": "weather-prompt", "version": 3},
                "traceName": "weather",
                "release": "r1",
                "version": 7,
                "public": true,
                "tags": ["x"],
                "custom": 1
            }
        })));
        assert_eq!(
            d.prompt,
            Some(PromptLink {
                name: "weather-prompt".into(),
                version: 3
            })
        );
        assert_eq!(d.trace_name.as_deref(), Some("weather"));
        assert_eq!(d.release.as_deref(), Some("r1"));
        assert_eq!(d.version.as_deref(), Some("7"));
        assert_eq!(d.public, Some(true));
        assert_eq!(d.tags, vec!["x".to_owned()]);
        // Unknown keys stay visible under `langfuse`; known ones are gone.
        assert_eq!(
            Value::Object(generic),
            json!({"tenant": "acme", "langfuse": {"custom": 1}})
        );
    }

    #[test]
    fn malformed_directives_are_kept_as_metadata() {
        let (generic, d) = split(&obj(json!({
            "langfuse": {"prompt": {"name": "p"}, "public": "yes"}
        })));
        assert_eq!(d, Directives::default());
        assert_eq!(
            Value::Object(generic),
            json!({"langfuse": {"prompt": {"name": "p"}, "public": "yes"}})
        );
        let (generic, _) = split(&obj(json!({"langfuse": "not an object"})));
        assert_eq!(Value::Object(generic), json!({"langfuse": "not an object"}));
    }

    #[test]
    fn prompt_version_may_be_a_numeric_string() {
        let (_, d) = split(&obj(
            json!({"langfuse": {"prompt": {"name": "p", "version": " 12 "}}}),
        ));
        assert_eq!(d.prompt.map(|p| p.version), Some(12));
    }
}
