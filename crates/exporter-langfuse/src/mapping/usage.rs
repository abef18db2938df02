//! Token usage and cost as Langfuse's free-form `usage_details` / `cost_details`.
//!
//! Langfuse treats usage keys as mutually exclusive buckets: a generation's
//! input is the sum of every key containing `input` (likewise `output`), and
//! each bucket is priced on its own. aiobs's [`Usage`] is inclusive (cached
//! tokens are part of `input_tokens`, reasoning part of `output_tokens`), so
//! the buckets come from [`Usage::exclusive`]: `input` is what remains after
//! cached, cache-write, audio and image tokens; `output` what remains after
//! reasoning, audio and image tokens — as Langfuse's own server splits an
//! OpenAI usage object. Key names follow what the official SDK sends
//! (`input`, `output`, `total`, `input_cached_tokens`,
//! `output_reasoning_tokens`) and the `input_*` / `output_*` pattern
//! Langfuse derives from OpenAI usage objects.

use aiobs_core::{Cost, Usage};

/// `(usage type, units)` in a stable order.
pub(crate) type UsageDetails = Vec<(&'static str, u64)>;
/// `(usage type, USD)` in a stable order.
pub(crate) type CostDetails = Vec<(&'static str, f64)>;

/// The usage details of one generation: exclusive buckets, and the total.
pub(crate) fn usage_details(u: &Usage) -> UsageDetails {
    let e = u.exclusive();
    let mut d = vec![("input", e.input), ("output", e.output), ("total", e.total)];
    let details = [
        ("input_cached_tokens", e.cache_read),
        ("input_cache_creation_tokens", e.cache_write),
        ("input_audio_tokens", e.input_audio),
        ("input_image_tokens", e.input_image),
        ("output_reasoning_tokens", e.reasoning),
        ("output_audio_tokens", e.output_audio),
        ("output_image_tokens", e.output_image),
    ];
    d.extend(details.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
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
    fn cached_and_reasoning_tokens_leave_input_and_output() {
        let u = Usage::new(120, 30).with_cache_read(100).with_reasoning(10);
        assert_eq!(
            usage_details(&u),
            vec![
                ("input", 20),
                ("output", 20),
                ("total", 150),
                ("input_cached_tokens", 100),
                ("output_reasoning_tokens", 10),
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
