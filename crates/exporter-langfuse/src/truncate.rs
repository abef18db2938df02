//! Langfuse's per-event size limit: an observation (or trace) over it has its
//! largest payload field — input, output or metadata — cut, with a visible
//! marker, until it fits. The observation itself is never dropped.

use serde_json::{Map, Value};

use crate::mapping::{Observation, TraceFields};

/// Room for the marker text and for the JSON quoting of the kept prefix.
const MARKER_RESERVE: usize = 160;
/// Bytes counted for the fields that are not cut (ids, times, level, ...).
const FIXED_OVERHEAD: usize = 512;
/// The key a truncated metadata object keeps its prefix under.
pub(crate) const TRUNCATED_METADATA_KEY: &str = "aiobs_truncated";

/// A payload field that may be cut.
enum Slot<'a> {
    Value(&'a mut Option<Value>),
    Map(&'a mut Map<String, Value>),
}

impl Slot<'_> {
    fn json(&self) -> Option<String> {
        match self {
            Slot::Value(v) => v.as_ref().and_then(|v| serde_json::to_string(v).ok()),
            Slot::Map(m) if m.is_empty() => None,
            Slot::Map(m) => serde_json::to_string(m).ok(),
        }
    }

    fn replace(&mut self, text: String) {
        match self {
            Slot::Value(v) => **v = Some(Value::String(text)),
            Slot::Map(m) => {
                m.clear();
                m.insert(TRUNCATED_METADATA_KEY.into(), Value::String(text));
            }
        }
    }
}

/// Cuts `slots` until `overhead` plus their encoded size is at most `limit`.
/// Returns how many fields were cut.
fn fit(mut slots: Vec<Slot<'_>>, overhead: usize, limit: usize) -> u32 {
    let mut sizes: Vec<usize> = slots
        .iter()
        .map(|s| s.json().map_or(0, |j| j.len()))
        .collect();
    let mut cut = vec![false; slots.len()];
    let mut truncations = 0;
    loop {
        let total = overhead + sizes.iter().sum::<usize>();
        if total <= limit {
            return truncations;
        }
        let Some(i) = (0..slots.len())
            .filter(|i| !cut[*i] && sizes[*i] > MARKER_RESERVE)
            .max_by_key(|i| sizes[*i])
        else {
            // Nothing left to cut: the caller bounded everything else.
            return truncations;
        };
        let Some(json) = slots[i].json() else {
            cut[i] = true;
            continue;
        };
        let excess = total - limit;
        let keep = floor_char_boundary(&json, json.len().saturating_sub(excess + MARKER_RESERVE));
        let text = format!(
            "{}…[aiobs: truncated {} bytes to fit Langfuse's {limit}-byte event limit]",
            &json[..keep],
            json.len() - keep
        );
        slots[i].replace(text);
        sizes[i] = slots[i].json().map_or(0, |j| j.len());
        cut[i] = true;
        truncations += 1;
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn cut_string(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let keep = floor_char_boundary(s, max);
    s.truncate(keep);
    s.push_str("…[aiobs: truncated]");
    true
}

/// Fits one observation into `limit` bytes. Returns how many fields were cut.
pub(crate) fn fit_observation(o: &mut Observation, limit: usize) -> u32 {
    let mut truncations = 0;
    // Strings that are not payloads are bounded first, so that what remains
    // over the limit can only be input, output or metadata.
    let budget = limit / 8;
    truncations += u32::from(cut_string(&mut o.name, budget.min(4096)));
    if let Some(m) = &mut o.status_message {
        truncations += u32::from(cut_string(m, budget));
    }
    if let Some(e) = &mut o.error {
        truncations += u32::from(cut_string(&mut e.message, budget));
        if let Some(st) = &mut e.stack {
            truncations += u32::from(cut_string(st, budget));
        }
    }
    let mut overhead = FIXED_OVERHEAD
        + o.name.len()
        + o.status_message.as_ref().map_or(0, String::len)
        + o.error.as_ref().map_or(0, |e| {
            e.message.len() + e.stack.as_ref().map_or(0, String::len)
        });
    if let Some(g) = &mut o.generation {
        let params = serde_json::to_string(&g.model_parameters).map_or(0, |j| j.len());
        if params > budget {
            let mut slot = Slot::Map(&mut g.model_parameters);
            let json = slot.json().unwrap_or_default();
            let keep = floor_char_boundary(&json, budget);
            slot.replace(format!("{}…[aiobs: truncated]", &json[..keep]));
            truncations += 1;
        }
        overhead += serde_json::to_string(&g.model_parameters).map_or(0, |j| j.len()) + 256;
    }
    truncations
        + fit(
            vec![
                Slot::Value(&mut o.input),
                Slot::Value(&mut o.output),
                Slot::Map(&mut o.metadata),
            ],
            overhead,
            limit,
        )
}

/// Fits the trace-level fields of one span into `limit` bytes.
pub(crate) fn fit_trace(t: &mut TraceFields, limit: usize) -> u32 {
    let overhead = FIXED_OVERHEAD
        + t.name.as_ref().map_or(0, String::len)
        + t.tags.iter().map(|x| x.len() + 3).sum::<usize>();
    fit(
        vec![
            Slot::Value(&mut t.input),
            Slot::Value(&mut t.output),
            Slot::Map(&mut t.metadata),
        ],
        overhead,
        limit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Mapper;
    use aiobs_core::{ExportedSpan, SpanId, SpanType, TraceId};
    use serde_json::json;

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
        assert!(m.observation.metadata.contains_key(TRUNCATED_METADATA_KEY));
        assert!(size(&m.observation) <= 100_000);
        let n = fit_trace(&mut m.trace, 100_000);
        assert_eq!(n, 2);
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
