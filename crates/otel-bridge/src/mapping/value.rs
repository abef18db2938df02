//! Attribute values: the semantic-convention table's values and JSON
//! metadata as OpenTelemetry values.

use opentelemetry::{Array, KeyValue, StringValue, Value};
use serde_json::Value as Json;

use aiobs_core::semconv::AttrValue;

/// One of the table's values as an OpenTelemetry value.
pub(crate) fn from_attr(v: AttrValue<'_>) -> Value {
    match v {
        AttrValue::Str(s) => Value::String(s.into_owned().into()),
        AttrValue::Int(i) => Value::I64(i),
        AttrValue::Double(d) => Value::F64(d),
        AttrValue::Bool(b) => Value::Bool(b),
        AttrValue::StrArray(items) => Value::Array(Array::String(
            items
                .into_iter()
                .map(|s| StringValue::from(s.into_owned()))
                .collect(),
        )),
        // `AttrValue` is non-exhaustive: a future kind travels as its debug text.
        other => Value::String(format!("{other:?}").into()),
    }
}

/// A JSON value as an attribute value: strings, booleans, integers and
/// doubles as themselves, arrays of one primitive type as typed arrays, and
/// anything else (objects, mixed arrays, null) as its JSON text — so nothing
/// is lost and a reader can parse it back.
pub(crate) fn from_json(v: &Json) -> Value {
    match v {
        Json::String(s) => Value::String(s.clone().into()),
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.is_u64()) {
            (Some(i), _) => Value::I64(i),
            // Beyond i64: the exact digits rather than a rounded double.
            (None, true) => Value::String(n.to_string().into()),
            (None, false) => n
                .as_f64()
                .map_or_else(|| Value::String(n.to_string().into()), Value::F64),
        },
        Json::Array(items) if !items.is_empty() => {
            if items.iter().all(Json::is_string) {
                Value::Array(Array::String(
                    items
                        .iter()
                        .filter_map(Json::as_str)
                        .map(|s| StringValue::from(s.to_owned()))
                        .collect(),
                ))
            } else if items.iter().all(Json::is_boolean) {
                Value::Array(Array::Bool(
                    items.iter().filter_map(Json::as_bool).collect(),
                ))
            } else if items.iter().all(Json::is_i64) {
                Value::Array(Array::I64(items.iter().filter_map(Json::as_i64).collect()))
            } else {
                Value::String(v.to_string().into())
            }
        }
        other => Value::String(other.to_string().into()),
    }
}

/// `key` = the JSON text of `v` (strings as they are).
pub(crate) fn json_text(key: String, v: &Json) -> KeyValue {
    let text = match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    KeyValue::new(key, text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_values_keep_their_type_or_their_text() {
        assert_eq!(from_json(&json!("acme")), Value::from("acme"));
        assert_eq!(from_json(&json!(3)), Value::I64(3));
        assert_eq!(from_json(&json!(0.5)), Value::F64(0.5));
        assert_eq!(from_json(&json!(true)), Value::Bool(true));
        assert_eq!(
            from_json(&json!(["a", "b"])),
            Value::Array(Array::String(vec!["a".into(), "b".into()]))
        );
        assert_eq!(from_json(&json!([1, "b"])), Value::from(r#"[1,"b"]"#));
        assert_eq!(from_json(&json!({"k": 1})), Value::from(r#"{"k":1}"#));
        assert_eq!(from_json(&json!(null)), Value::from("null"));
        assert_eq!(
            from_json(&json!(u64::MAX)),
            Value::from("18446744073709551615")
        );
    }
}
