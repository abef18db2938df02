//! `POST /api/public/scores`: how the OTLP transport sends scores (a JSON
//! array, as SDK v5 does; see `wire/langfuse/v5-otel/02_POST_api_public_scores.json`).

use aiobs_core::{ErrorClass, ItemRejection};
use aiobs_http::{ItemError, rejections_by_id};
use serde_json::Value;

use crate::mapping::ScoreBody;

/// The request body: a top-level array of scores.
pub(crate) fn request_body<'a>(
    scores: impl Iterator<Item = &'a ScoreBody>,
    environment: Option<&str>,
) -> Vec<u8> {
    let body: Vec<Value> = scores
        .map(|s| Value::Object(s.to_json(environment)))
        .collect();
    // Serialising a `Value` cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The scores of `part` a 207 answer (`{accepted, rejected, errors}`)
/// refused. Errors that name a score id refuse that score; otherwise only a
/// count is known, and the last `rejected` scores of the request are counted
/// as refused. The official client never retries a 207, nor do we.
pub(crate) fn rejections<'a>(
    part: &[usize],
    id_of: impl Fn(usize) -> &'a str,
    body: &[u8],
) -> Vec<ItemRejection> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let errors: &[Value] = v
        .get("errors")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let message = |e: &Value| {
        e.get("message")
            .and_then(Value::as_str)
            .unwrap_or("refused")
            .to_owned()
    };
    let named: Vec<ItemError> = errors
        .iter()
        .filter_map(|e| {
            let id = e.get("id").and_then(Value::as_str)?;
            Some(ItemError::new(id, 400, message(e)))
        })
        .collect();
    if !named.is_empty() {
        return rejections_by_id(part.iter().map(|&k| (k, id_of(k))), named);
    }
    let n = v
        .get("rejected")
        .and_then(Value::as_u64)
        .map_or(errors.len(), |n| usize::try_from(n).unwrap_or(usize::MAX));
    let why = errors.first().map_or_else(|| "refused".to_owned(), message);
    part.iter()
        .rev()
        .take(n)
        .map(|&k| ItemRejection {
            index: k,
            class: ErrorClass::Permanent,
            message: format!(
                "Langfuse refused {n} of {} scores (without saying which): {why}",
                part.len()
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IDS: [&str; 3] = ["a", "b", "c"];

    #[test]
    fn named_errors_refuse_those_scores() {
        let body =
            json!({"accepted": 2, "rejected": 1, "errors": [{"id": "b", "message": "bad value"}]});
        let r = rejections(&[0, 1, 2], |k| IDS[k], body.to_string().as_bytes());
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].index, r[0].class), (1, ErrorClass::Permanent));
        assert!(r[0].message.contains("bad value"));
    }

    #[test]
    fn a_bare_count_refuses_that_many() {
        let body = json!({"accepted": 1, "rejected": 2, "errors": [{"message": "invalid"}]});
        let r = rejections(&[0, 1, 2], |k| IDS[k], body.to_string().as_bytes());
        assert_eq!(r.iter().map(|x| x.index).collect::<Vec<_>>(), vec![2, 1]);
        assert!(r[0].message.contains("invalid"));
        assert!(rejections(&[0], |k| IDS[k], b"{\"message\":\"Accepted\"}").is_empty());
    }
}
