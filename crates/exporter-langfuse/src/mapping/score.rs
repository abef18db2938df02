//! Scores and feedback as Langfuse scores.

use aiobs_core::{FeedbackRecord, ScoreRecord};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// A score value as Langfuse takes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ScoreValue {
    Number(f64),
    Text(String),
}

/// One Langfuse score.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ScoreBody {
    pub(crate) id: String,
    pub(crate) trace_id: String,
    pub(crate) observation_id: Option<String>,
    pub(crate) name: String,
    pub(crate) value: ScoreValue,
    /// `None` lets Langfuse infer NUMERIC from a number (as the official SDK
    /// sends it); `BOOLEAN` and `CATEGORICAL` are explicit.
    pub(crate) data_type: Option<&'static str>,
    pub(crate) comment: Option<String>,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) timestamp: DateTime<Utc>,
}

/// Why a score cannot be sent (counted as a permanent failure).
pub(crate) type ScoreError = String;

impl ScoreBody {
    /// The score as both `POST /api/public/scores` and the ingestion API's
    /// `score-create` take it.
    pub(crate) fn to_json(&self, environment: Option<&str>) -> Map<String, Value> {
        let mut b = Map::new();
        let mut put = |k: &str, v: Value| {
            b.insert(k.to_owned(), v);
        };
        put("id", Value::from(self.id.as_str()));
        put("traceId", Value::from(self.trace_id.as_str()));
        if let Some(o) = &self.observation_id {
            put("observationId", Value::from(o.as_str()));
        }
        put("name", Value::from(self.name.as_str()));
        put(
            "value",
            match &self.value {
                ScoreValue::Number(n) => Value::from(*n),
                ScoreValue::Text(t) => Value::from(t.as_str()),
            },
        );
        if let Some(d) = self.data_type {
            put("dataType", Value::from(d));
        }
        if let Some(c) = &self.comment {
            put("comment", Value::from(c.as_str()));
        }
        if let Some(e) = environment {
            put("environment", Value::from(e));
        }
        put(
            "timestamp",
            Value::from(
                self.timestamp
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
        );
        if !self.metadata.is_empty() {
            put("metadata", Value::Object(self.metadata.clone()));
        }
        b
    }
}

impl ScoreBody {
    /// A score.
    pub(crate) fn from_score(s: &ScoreRecord) -> Result<Self, ScoreError> {
        let (value, data_type) = value_of(&s.value, &s.name)?;
        let mut metadata = s.metadata.clone();
        if let Some(src) = &s.source {
            metadata
                .entry("source")
                .or_insert_with(|| Value::from(src.as_str()));
        }
        Ok(Self {
            id: s.id.clone(),
            trace_id: s.trace_id.to_string(),
            observation_id: s.span_id.map(|i| i.to_string()),
            name: non_empty_name(&s.name)?,
            value,
            data_type,
            comment: s.comment.clone(),
            metadata,
            timestamp: s.timestamp,
        })
    }

    /// Feedback: a score named after the feedback key.
    pub(crate) fn from_feedback(f: &FeedbackRecord) -> Result<Self, ScoreError> {
        let (value, data_type) = value_of(&f.value, &f.key)?;
        let mut metadata = Map::new();
        metadata.insert("aiobs_kind".into(), Value::from("feedback"));
        if let Some(u) = &f.user_id {
            metadata.insert("user_id".into(), Value::from(u.as_str()));
        }
        Ok(Self {
            id: f.id.clone(),
            trace_id: f.trace_id.to_string(),
            observation_id: f.span_id.map(|i| i.to_string()),
            name: non_empty_name(&f.key)?,
            value,
            data_type,
            comment: f.comment.clone(),
            metadata,
            timestamp: f.timestamp,
        })
    }
}

fn non_empty_name(name: &str) -> Result<String, ScoreError> {
    if name.trim().is_empty() {
        Err("Langfuse scores need a non-empty name".into())
    } else {
        Ok(name.to_owned())
    }
}

fn value_of(v: &Value, name: &str) -> Result<(ScoreValue, Option<&'static str>), ScoreError> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(|x| (ScoreValue::Number(x), None))
            .ok_or_else(|| format!("score {name:?}: value {n} is not a finite number")),
        Value::Bool(b) => Ok((
            ScoreValue::Number(if *b { 1.0 } else { 0.0 }),
            Some("BOOLEAN"),
        )),
        Value::String(s) => Ok((ScoreValue::Text(s.clone()), Some("CATEGORICAL"))),
        other => Err(format!(
            "score {name:?}: Langfuse takes a number, a boolean or a string, not {}",
            match other {
                Value::Null => "null",
                Value::Array(_) => "an array",
                _ => "an object",
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiobs_core::{SpanId, TraceId};
    use serde_json::json;

    fn trace() -> TraceId {
        TraceId::from_u128(7).unwrap()
    }

    #[test]
    fn numbers_booleans_and_categories() {
        let s = ScoreBody::from_score(
            &ScoreRecord::new(trace(), "user_feedback", 1.0).with_comment("thumbs up"),
        )
        .unwrap();
        assert_eq!(s.value, ScoreValue::Number(1.0));
        assert_eq!(s.data_type, None);
        assert_eq!(s.comment.as_deref(), Some("thumbs up"));
        assert_eq!(s.trace_id, trace().to_string());

        let b = ScoreBody::from_score(
            &ScoreRecord::new(trace(), "ok", true).on_span(SpanId::from_u64(5).unwrap()),
        )
        .unwrap();
        assert_eq!(
            (b.value, b.data_type),
            (ScoreValue::Number(1.0), Some("BOOLEAN"))
        );
        assert_eq!(b.observation_id.as_deref(), Some("0000000000000005"));

        let c = ScoreBody::from_score(&ScoreRecord::new(trace(), "tone", "polite")).unwrap();
        assert_eq!(c.data_type, Some("CATEGORICAL"));
    }

    #[test]
    fn unusable_values_are_errors_not_panics() {
        assert!(ScoreBody::from_score(&ScoreRecord::new(trace(), "x", json!({"a": 1}))).is_err());
        assert!(ScoreBody::from_score(&ScoreRecord::new(trace(), "x", Value::Null)).is_err());
        assert!(ScoreBody::from_score(&ScoreRecord::new(trace(), " ", 1)).is_err());
    }

    #[test]
    fn feedback_becomes_a_score() {
        let mut f = FeedbackRecord::new(trace(), "thumbs", 0);
        f.user_id = Some("u1".into());
        let s = ScoreBody::from_feedback(&f).unwrap();
        assert_eq!(s.name, "thumbs");
        assert_eq!(s.value, ScoreValue::Number(0.0));
        assert_eq!(s.metadata.get("user_id"), Some(&json!("u1")));
    }
}
