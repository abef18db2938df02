//! Fitting an item's payload fields into a destination's per-item size
//! limit, keeping what can be kept.

use aiobs_core::payload::truncation_marker;
use serde_json::{Map, Value};

/// The key a cut JSON object keeps its head under.
pub const TRUNCATED_OBJECT_KEY: &str = "aiobs_truncated";

/// A payload field [`fit_fields`] may cut.
#[derive(Debug)]
#[non_exhaustive]
pub enum FitField<'a> {
    /// An optional JSON value (input, output): cut, it becomes a string.
    Value(&'a mut Option<Value>),
    /// A JSON object (metadata): cut, it becomes `{"aiobs_truncated": "<head>…"}`.
    Object(&'a mut Map<String, Value>),
}

/// What [`fit_fields`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fitted {
    /// Positions (in the list given) of the fields that were cut.
    pub cut: Vec<usize>,
    /// The fields' encoded size before (bytes of JSON).
    pub original_bytes: usize,
}

/// Cuts the largest fields so that `overhead` (the rest of the item, in
/// bytes) plus the fields' JSON encoding is at most `limit` bytes, and
/// keeps what it can: every field larger than a common cap is cut to that
/// cap — the head of its JSON text followed by core's truncation marker
/// (`…[aiobs: truncated N bytes: <why>]`) — and the smaller fields stay
/// whole. Two large fields both keep their heads; neither is replaced
/// whole by a marker while room is left. The item itself is never dropped
/// here: whether the destination takes what remains is its answer.
///
/// ```
/// use aiobs_http::{FitField, fit_fields};
/// use serde_json::{Map, Value, json};
///
/// let mut input = Some(json!("a".repeat(600)));
/// let mut output = Some(json!("b".repeat(600)));
/// let mut metadata = Map::new();
/// metadata.insert("k".into(), json!("small"));
/// let fitted = fit_fields(
///     vec![FitField::Value(&mut input), FitField::Value(&mut output), FitField::Object(&mut metadata)],
///     100,
///     1000,
///     "over the vendor's limit",
/// );
/// assert_eq!(fitted.cut, [0, 1]);
/// let (i, o) = (input.unwrap(), output.unwrap());
/// assert!(i.as_str().unwrap().starts_with("\"aaa") && o.as_str().unwrap().starts_with("\"bbb"));
/// let metadata_bytes = serde_json::to_string(&metadata).unwrap().len();
/// assert!(100 + i.to_string().len() + o.to_string().len() + metadata_bytes <= 1000);
/// assert_eq!(metadata["k"], "small");
/// ```
pub fn fit_fields(fields: Vec<FitField<'_>>, overhead: usize, limit: usize, why: &str) -> Fitted {
    let mut fields = fields;
    let texts: Vec<Option<String>> = fields.iter().map(FitField::json).collect();
    let sizes: Vec<usize> = texts
        .iter()
        .map(|t| t.as_ref().map_or(0, String::len))
        .collect();
    let original_bytes = sizes.iter().sum();
    let available = limit.saturating_sub(overhead);
    if original_bytes <= available {
        return Fitted {
            cut: Vec::new(),
            original_bytes,
        };
    }
    // What a cut field costs besides its head: the marker (its byte count
    // has at most 20 digits), quotes, and an object's key.
    let marker_cost = truncation_marker(usize::MAX, Some(why)).len() + 2;
    let object_cost = TRUNCATED_OBJECT_KEY.len() + 5;
    let cost = |f: &FitField<'_>| match f {
        FitField::Value(_) => marker_cost,
        FitField::Object(_) => marker_cost + object_cost,
    };
    let cap = water_level(
        &sizes,
        &fields.iter().map(cost).collect::<Vec<_>>(),
        available,
    );
    let mut cut = Vec::new();
    for (i, (field, text)) in fields.iter_mut().zip(&texts).enumerate() {
        let Some(text) = text else { continue };
        if text.len() <= cap {
            continue;
        }
        // The head's encoded size (JSON string escaping included) fits the
        // cap once the field's fixed cost is paid.
        let room = cap.saturating_sub(cost(field));
        let keep = escaped_prefix(text, room);
        let mut cut_text = String::with_capacity(keep + marker_cost);
        cut_text.push_str(&text[..keep]);
        cut_text.push_str(&truncation_marker(text.len() - keep, Some(why)));
        field.replace(cut_text);
        cut.push(i);
    }
    Fitted {
        cut,
        original_bytes,
    }
}

impl FitField<'_> {
    fn json(&self) -> Option<String> {
        match self {
            Self::Value(v) => v.as_ref().and_then(|v| serde_json::to_string(v).ok()),
            Self::Object(m) if m.is_empty() => None,
            Self::Object(m) => serde_json::to_string(m).ok(),
        }
    }

    fn replace(&mut self, text: String) {
        match self {
            Self::Value(v) => **v = Some(Value::String(text)),
            Self::Object(m) => {
                m.clear();
                m.insert(TRUNCATED_OBJECT_KEY.into(), Value::String(text));
            }
        }
    }
}

/// The largest cap such that every field keeps `min(size, cap)` bytes (a
/// cut one paying its `cost` within the cap) and the total fits `available`.
fn water_level(sizes: &[usize], costs: &[usize], available: usize) -> usize {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    // Cut the k largest to a common cap; the rest stay whole.
    for k in 1..=order.len() {
        let whole: usize = order[k..].iter().map(|&i| sizes[i]).sum();
        let cap = available.saturating_sub(whole) / k;
        let next = order.get(k).map_or(0, |&i| sizes[i]);
        let cheapest = order[..k].iter().map(|&i| costs[i]).max().unwrap_or(0);
        if cap >= next.max(cheapest) || k == order.len() {
            return cap;
        }
    }
    0
}

/// The longest prefix of `text` (on a character boundary) whose JSON string
/// encoding takes at most `room` bytes.
fn escaped_prefix(text: &str, room: usize) -> usize {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        let cost = match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        };
        if used + cost > room {
            return i;
        }
        used += cost;
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encoded(fields: &[&Option<Value>]) -> usize {
        fields
            .iter()
            .map(|f| f.as_ref().map_or(0, |v| v.to_string().len()))
            .sum()
    }

    #[test]
    fn fits_whatever_the_content_and_keeps_heads() {
        for (a, b) in [
            (600_000, 600_000),
            (900_000, 100),
            (50, 2_000_000),
            (300, 300),
        ] {
            // Quote-heavy JSON grows when escaped into a string.
            let mut input = Some(json!(["\"q\"".repeat(a / 3)]));
            let mut output = Some(json!("é".repeat(b / 2)));
            let limit = 1_000_000;
            let fitted = fit_fields(
                vec![FitField::Value(&mut input), FitField::Value(&mut output)],
                500,
                limit,
                "test",
            );
            assert!(
                encoded(&[&input, &output]) + 500 <= limit,
                "{a}/{b}: {}",
                encoded(&[&input, &output])
            );
            for (i, v) in [&input, &output].into_iter().enumerate() {
                let text = v.as_ref().unwrap().to_string();
                if fitted.cut.contains(&i) {
                    assert!(text.contains("[aiobs: truncated"), "{a}/{b}");
                    assert!(
                        text.len() > 100_000,
                        "{a}/{b}: field {i} kept {}",
                        text.len()
                    );
                }
            }
        }
    }

    #[test]
    fn two_large_fields_share_the_room() {
        let mut input = Some(json!("i".repeat(900_000)));
        let mut output = Some(json!("o".repeat(900_000)));
        let fitted = fit_fields(
            vec![FitField::Value(&mut input), FitField::Value(&mut output)],
            0,
            1_000_000,
            "x",
        );
        assert_eq!(fitted.cut, [0, 1]);
        let (i, o) = (
            input.unwrap().to_string().len(),
            output.unwrap().to_string().len(),
        );
        assert!(i.abs_diff(o) < 100 && i > 450_000, "{i} {o}");
    }

    #[test]
    fn an_object_keeps_its_head_under_one_key() {
        let mut m = Map::new();
        m.insert("notes".into(), json!("n".repeat(10_000)));
        let fitted = fit_fields(vec![FitField::Object(&mut m)], 0, 2_000, "x");
        assert_eq!(fitted.cut, [0]);
        let head = m[TRUNCATED_OBJECT_KEY].as_str().unwrap();
        assert!(head.starts_with("{\"notes\":\"nnn"), "{head}");
        assert!(serde_json::to_string(&m).unwrap().len() <= 2_000);
    }

    #[test]
    fn small_items_are_untouched() {
        let mut input = Some(json!({"q": 1}));
        let before = input.clone();
        assert_eq!(
            fit_fields(vec![FitField::Value(&mut input)], 10, 1000, "x").cut,
            Vec::<usize>::new()
        );
        assert_eq!(input, before);
    }
}
