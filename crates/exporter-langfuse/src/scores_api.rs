//! `POST /api/public/scores`: how the OTLP transport sends scores (a JSON
//! array, as SDK v5 does; see `wire/langfuse/v5-otel/02_POST_api_public_scores.json`).

use aiobs_http::{ItemAnswers, ItemError};
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

/// What a 207 answer (`{accepted, rejected, errors}`) says about the scores
/// of the request. Errors that name a score id refuse that score (the
/// official client never retries a 207; permanently refused, as 400);
/// otherwise only a count is known, and `ItemAnswers::resolve` narrows it
/// down by sending the scores again in halves (score ids are idempotent:
/// Langfuse upserts scores by id). A body that cannot be read is no answer:
/// the scores are sent again, never counted delivered.
pub(crate) fn multi_status(body: &[u8]) -> ItemAnswers {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return ItemAnswers::Unreadable(
            "Langfuse answered 207 with a body that is not JSON".into(),
        );
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
    if !named.is_empty() && named.len() == errors.len() {
        return ItemAnswers::Refused(named);
    }
    let refused = match v.get("rejected").and_then(Value::as_u64) {
        Some(n) => n,
        None if !errors.is_empty() => errors.len() as u64,
        None => {
            return ItemAnswers::Unreadable(format!(
                "Langfuse answered 207 without `rejected` or `errors`: {v}"
            ));
        }
    };
    ItemAnswers::RefusedCount {
        refused,
        message: errors.first().map_or_else(|| "refused".to_owned(), message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiobs_core::ErrorClass;
    use aiobs_http::SendError;
    use serde_json::json;

    const IDS: [(usize, &str); 3] = [(0, "a"), (1, "b"), (2, "c")];

    fn answer(body: Value) -> ItemAnswers {
        multi_status(body.to_string().as_bytes())
    }

    #[test]
    fn named_errors_refuse_those_scores() {
        let r = answer(
            json!({"accepted": 2, "rejected": 1, "errors": [{"id": "b", "message": "bad value"}]}),
        )
        .resolve(IDS)
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].index, r[0].class), (1, ErrorClass::Permanent));
        assert!(r[0].message.contains("bad value"));
    }

    #[test]
    fn a_bare_count_is_narrowed_down_not_guessed() {
        let some =
            answer(json!({"accepted": 1, "rejected": 2, "errors": [{"message": "invalid"}]}));
        assert!(matches!(some.resolve(IDS), Err(SendError::Ambiguous(_))));
        let all = answer(json!({"accepted": 0, "rejected": 3, "errors": [{"message": "invalid"}]}))
            .resolve(IDS)
            .unwrap();
        assert_eq!(all.len(), 3);
        let none = answer(json!({"accepted": 3, "rejected": 0, "errors": []}));
        assert_eq!(none.resolve(IDS).unwrap(), Vec::new());
    }

    #[test]
    fn an_unreadable_207_delivers_nothing() {
        // The regression: an unreadable 207 used to count every score delivered.
        for body in [&b"<html>busy</html>"[..], b"{\"message\":\"Accepted\"}"] {
            let r = multi_status(body).resolve(IDS);
            assert_eq!(
                r.unwrap_err().class(),
                ErrorClass::Transient,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
