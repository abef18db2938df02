//! Token usage and cost as Langfuse's free-form `usage_details` / `cost_details`.
//!
//! Key names follow what the official SDK sends (see the wire recordings):
//! `input`, `output`, `total`, `input_cached_tokens`, `output_reasoning_tokens`;
//! the other details use the same `input_*` / `output_*` pattern Langfuse
//! derives from OpenAI usage objects. `input` and `output` are the totals the
//! provider reported, cached and reasoning tokens included, as recorded.

use aiobs_core::{Cost, Usage};

/// `(usage type, units)` in a stable order.
pub(crate) type UsageDetails = Vec<(&'static str, u64)>;
/// `(usage type, USD)` in a stable order.
pub(crate) type CostDetails = Vec<(&'static str, f64)>;

/// The usage details of one generation.
pub(crate) fn usage_details(u: &Usage) -> UsageDetails {
    let mut d = vec![
        ("input", u.input_tokens),
        ("output", u.output_tokens),
        ("total", u.total_tokens()),
    ];
    let i = &u.input_details;
    let o = &u.output_details;
    let optional = [
        ("input_cached_tokens", i.cache_read),
        ("input_cache_creation_tokens", i.cache_write),
        ("input_audio_tokens", i.audio),
        ("input_image_tokens", i.image),
        ("output_reasoning_tokens", o.reasoning),
        ("output_audio_tokens", o.audio),
        ("output_image_tokens", o.image),
    ];
    d.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    d
}

/// The cost details of one generation; Langfuse rejects negative or
/// non-finite costs, so those parts are left out.
pub(crate) fn cost_details(c: &Cost) -> CostDetails {
    [("input", c.input), ("output", c.output), ("total", c.total)]
        .into_iter()
        .filter_map(|(k, v)| v.filter(|x| x.is_finite() && *x >= 0.0).map(|v| (k, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_scenario_usage() {
        let u = Usage::new(120, 30).with_cache_read(100).with_reasoning(0);
        assert_eq!(
            usage_details(&u),
            vec![
                ("input", 120),
                ("output", 30),
                ("total", 150),
                ("input_cached_tokens", 100),
                ("output_reasoning_tokens", 0),
            ]
        );
    }

    #[test]
    fn absent_details_are_omitted_and_bad_costs_dropped() {
        assert_eq!(usage_details(&Usage::new(1, 2)).len(), 3);
        let mut c = Cost::new(0.5, 0.25);
        c.output = Some(f64::NAN);
        c.total = Some(-1.0);
        assert_eq!(cost_details(&c), vec![("input", 0.5)]);
    }
}
