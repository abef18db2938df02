//! Langfuse's per-event size limit: an observation (or a span's trace-level
//! fields) over it keeps its smaller fields whole and has its largest
//! payload fields — input, output, metadata — cut to a common size, each
//! keeping its head followed by the truncation marker. Nothing is dropped.

use aiobs_core::payload::truncate_marked;
use aiobs_http::{FitField, fit_fields};

use crate::mapping::{Observation, TraceFields};

/// Bytes counted for the fields that are not cut (ids, times, level, keys, ...).
const FIXED_OVERHEAD: usize = 1024;

/// Why a field was cut, as the marker says.
fn why(limit: usize) -> String {
    format!("over Langfuse's {limit}-byte event limit")
}

/// Bounds a string that is not a payload (a name, an error message).
fn cut_string(s: &mut String, max: usize, limit: usize) -> u32 {
    match truncate_marked(s, max, Some(&why(limit))) {
        std::borrow::Cow::Borrowed(_) => 0,
        std::borrow::Cow::Owned(cut) => {
            *s = cut;
            1
        }
    }
}

/// Fits one observation into `limit` bytes. Returns how many fields were cut.
pub(crate) fn fit_observation(o: &mut Observation, limit: usize) -> u32 {
    let mut truncations = 0;
    // Strings that are not payloads are bounded first, so that what remains
    // over the limit can only be input, output or metadata.
    let budget = limit / 8;
    truncations += cut_string(&mut o.name, budget.min(4096), limit);
    if let Some(m) = &mut o.status_message {
        truncations += cut_string(m, budget, limit);
    }
    if let Some(e) = &mut o.error {
        truncations += cut_string(&mut e.message, budget, limit);
        if let Some(st) = &mut e.stack {
            truncations += cut_string(st, budget, limit);
        }
    }
    let mut overhead = FIXED_OVERHEAD
        + o.name.len()
        + o.status_message.as_ref().map_or(0, String::len)
        + o.error.as_ref().map_or(0, |e| {
            e.message.len() + e.stack.as_ref().map_or(0, String::len)
        });
    if let Some(g) = &mut o.generation {
        let fitted = fit_fields(
            vec![FitField::Object(&mut g.model_parameters)],
            0,
            budget,
            &why(limit),
        );
        truncations += fitted.cut.len() as u32;
        overhead += serde_json::to_string(&g.model_parameters).map_or(0, |j| j.len()) + 256;
    }
    let fitted = fit_fields(
        vec![
            FitField::Value(&mut o.input),
            FitField::Value(&mut o.output),
            FitField::Object(&mut o.metadata),
        ],
        overhead,
        limit,
        &why(limit),
    );
    truncations + fitted.cut.len() as u32
}

/// Fits the trace-level fields of one span into `limit` bytes.
pub(crate) fn fit_trace(t: &mut TraceFields, limit: usize) -> u32 {
    let overhead = FIXED_OVERHEAD
        + t.name.as_ref().map_or(0, String::len)
        + t.tags.iter().map(|x| x.len() + 3).sum::<usize>();
    let fitted = fit_fields(
        vec![
            FitField::Value(&mut t.input),
            FitField::Value(&mut t.output),
            FitField::Object(&mut t.metadata),
        ],
        overhead,
        limit,
        &why(limit),
    );
    fitted.cut.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Mapper;
    use aiobs_core::{ExportedSpan, SpanId, SpanType, TraceId};
    use serde_json::{Value, json};

    fn big_span() -> ExportedSpan {
        let mut s = ExportedSpan::new(
            TraceId::from_u128(1).unwrap(),
            SpanId::from_u64(1).unwrap(),
            "root",
            SpanType::AgentRun,
        );
        s.input = Some(json!({"doc": "é".repeat(300_000)})); // 600 kB
        s.output = Some(json!("small"));
        s.metadata = json!({"notes": "n".repeat(200_000)})
            .as_object()
            .cloned()
            .unwrap();
        s
    }

    fn size(o: &Observation) -> usize {
        let j = |v: &Option<Value>| v.as_ref().map_or(0, |v| v.to_string().len());
        j(&o.input) + j(&o.output) + Value::Object(o.metadata.clone()).to_string().len()
    }

    #[test]
    fn largest_field_is_cut_first_with_a_marker() {
        let mut m = Mapper::default().map_span(&big_span());
        let n = fit_observation(&mut m.observation, 500_000);
        assert_eq!(n, 1, "cutting the input alone is enough");
        let input = m
            .observation
            .input
            .as_ref()
            .and_then(Value::as_str)
            .unwrap();
        assert!(input.contains("[aiobs: truncated"), "marker present");
        assert!(input.starts_with("{\"doc\":\"é"), "keeps a prefix");
        assert_eq!(
            m.observation.output,
            Some(json!("small")),
            "small fields untouched"
        );
        assert!(size(&m.observation) + FIXED_OVERHEAD <= 500_000 + 16);
    }

    #[test]
    fn keeps_cutting_until_it_fits_and_never_drops() {
        let mut m = Mapper::default().map_span(&big_span());
        let n = fit_observation(&mut m.observation, 100_000);
        assert_eq!(n, 2, "input then metadata");
        assert!(
            m.observation
                .metadata
                .contains_key(aiobs_http::TRUNCATED_OBJECT_KEY)
        );
        assert!(size(&m.observation) <= 100_000);
        // The trace's own fields: the input (its metadata is the trace's, empty here).
        let n = fit_trace(&mut m.trace, 100_000);
        assert_eq!(n, 1);
    }

    #[test]
    fn small_spans_are_untouched() {
        let mut s = big_span();
        s.input = None;
        s.metadata.clear();
        let mut m = Mapper::default().map_span(&s);
        let before = m.clone();
        assert_eq!(fit_observation(&mut m.observation, 1_000_000), 0);
        assert_eq!(m, before);
    }
}
