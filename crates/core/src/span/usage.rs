//! Token usage and cost of model calls: what the model holds, and the
//! conversions exporters need for their vendor's convention.
//!
//! # Inclusive counts
//! [`Usage`] follows OpenTelemetry's GenAI convention: `input_tokens` counts
//! *every* prompt token — cache reads and cache writes included — and
//! `output_tokens` every completion token, reasoning included. The details
//! ([`InputTokenDetails`], [`OutputTokenDetails`]) are sub-counts of those
//! totals, never additions to them. Vendors that want the inclusive form
//! (OpenTelemetry, LangSmith, Sentry) read the fields as they are; vendors
//! that sum mutually exclusive buckets (Langfuse) use [`Usage::exclusive`].
//! `docs/exporters.md` has the table per vendor.
//!
//! # Which spans carry billable usage
//! Model spans nest: a generation runs steps, a step runs an inference, and
//! each may report the same tokens. [`ExportedSpan::billable_usage`](crate::ExportedSpan::billable_usage)
//! is the one rule every exporter and the store apply, so a trace's totals
//! never count the same tokens twice.

use serde::{Deserialize, Serialize};

/// Token usage of one model call, inclusive: `input_tokens` includes cached
/// tokens (read and written), `output_tokens` includes reasoning tokens.
///
/// ```
/// use aiobs_core::Usage;
///
/// // 120 prompt tokens of which 100 came from the cache; 30 completion
/// // tokens of which 10 were reasoning.
/// let u = Usage::new(120, 30).with_cache_read(100).with_reasoning(10);
/// assert_eq!(u.total_tokens(), 150);
/// let buckets = u.exclusive();
/// assert_eq!((buckets.input, buckets.cache_read), (20, Some(100)));
/// assert_eq!((buckets.output, buckets.reasoning), (20, Some(10)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Prompt tokens, cached ones (read and written) included.
    pub input_tokens: u64,
    /// Completion tokens, reasoning ones included.
    pub output_tokens: u64,
    /// How the input tokens break down (sub-counts of `input_tokens`).
    #[serde(default, skip_serializing_if = "InputTokenDetails::is_empty")]
    pub input_details: InputTokenDetails,
    /// How the output tokens break down (sub-counts of `output_tokens`).
    #[serde(default, skip_serializing_if = "OutputTokenDetails::is_empty")]
    pub output_details: OutputTokenDetails,
    /// Cost in USD, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Cost>,
}

impl Usage {
    /// Usage with these input and output token counts (inclusive).
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            output_tokens,
            ..Self::default()
        }
    }
    /// Sets the input tokens read from the provider's prompt cache (part of `input_tokens`).
    pub fn with_cache_read(mut self, n: u64) -> Self {
        self.input_details.cache_read = Some(n);
        self
    }
    /// Sets the input tokens written to the provider's prompt cache (part of `input_tokens`).
    pub fn with_cache_write(mut self, n: u64) -> Self {
        self.input_details.cache_write = Some(n);
        self
    }
    /// Sets the reasoning tokens (part of `output_tokens`).
    pub fn with_reasoning(mut self, n: u64) -> Self {
        self.output_details.reasoning = Some(n);
        self
    }
    /// Sets the cost.
    pub fn with_cost(mut self, cost: Cost) -> Self {
        self.cost = Some(cost);
        self
    }
    /// Input plus output tokens (saturating).
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
    /// Input tokens read from the prompt cache; 0 when not reported.
    pub fn cache_read_tokens(&self) -> u64 {
        self.input_details.cache_read.unwrap_or(0)
    }
    /// Input tokens written to the prompt cache; 0 when not reported.
    pub fn cache_write_tokens(&self) -> u64 {
        self.input_details.cache_write.unwrap_or(0)
    }
    /// Reasoning tokens among the output tokens; 0 when not reported.
    pub fn reasoning_tokens(&self) -> u64 {
        self.output_details.reasoning.unwrap_or(0)
    }

    /// The usage as mutually exclusive buckets, for vendors that sum every
    /// bucket of a generation into its total (Langfuse).
    ///
    /// Every reported detail leaves the plain bucket of its side: `input` is
    /// `input_tokens` minus cache reads, cache writes, audio and image tokens;
    /// `output` is `output_tokens` minus reasoning, audio and image tokens;
    /// both floor at 0. This is how Langfuse's server itself splits an OpenAI
    /// usage object (each `*_tokens_details` entry is subtracted from `input`
    /// or `output`), so the buckets sum to [`Usage::total_tokens`] whenever
    /// the provider's details do not overlap. `text` details are the plain
    /// bucket and are not repeated.
    pub fn exclusive(&self) -> ExclusiveUsage {
        let i = &self.input_details;
        let o = &self.output_details;
        let minus = |total: u64, parts: &[Option<u64>]| {
            parts
                .iter()
                .flatten()
                .fold(total, |left, n| left.saturating_sub(*n))
        };
        ExclusiveUsage {
            input: minus(
                self.input_tokens,
                &[i.cache_read, i.cache_write, i.audio, i.image],
            ),
            cache_read: i.cache_read,
            cache_write: i.cache_write,
            input_audio: i.audio,
            input_image: i.image,
            output: minus(self.output_tokens, &[o.reasoning, o.audio, o.image]),
            reasoning: o.reasoning,
            output_audio: o.audio,
            output_image: o.image,
            total: self.total_tokens(),
        }
    }
}

/// [`Usage`] as mutually exclusive buckets (see [`Usage::exclusive`]).
/// Counts in tokens; `None` where the provider reported nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExclusiveUsage {
    /// Input tokens in no other input bucket (not cached, not audio, not image).
    pub input: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: Option<u64>,
    /// Input tokens written to the prompt cache.
    pub cache_write: Option<u64>,
    /// Audio input tokens.
    pub input_audio: Option<u64>,
    /// Image input tokens.
    pub input_image: Option<u64>,
    /// Output tokens in no other output bucket (not reasoning, audio or image).
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: Option<u64>,
    /// Audio output tokens.
    pub output_audio: Option<u64>,
    /// Image output tokens.
    pub output_image: Option<u64>,
    /// All tokens: `input_tokens + output_tokens` of the inclusive usage.
    pub total: u64,
}

/// The parts of the input tokens, where the provider reports them. Each is
/// a sub-count of [`Usage::input_tokens`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InputTokenDetails {
    /// Plain text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<u64>,
    /// Tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<u64>,
    /// Tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<u64>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<u64>,
    /// Image tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<u64>,
}

impl InputTokenDetails {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The parts of the output tokens, where the provider reports them. Each is
/// a sub-count of [`Usage::output_tokens`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutputTokenDetails {
    /// Plain text tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<u64>,
    /// Reasoning ("thinking") tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<u64>,
    /// Audio tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<u64>,
    /// Image tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<u64>,
}

impl OutputTokenDetails {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Cost of a model call in USD.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cost {
    /// Cost of the input tokens.
    pub input: Option<f64>,
    /// Cost of the output tokens.
    pub output: Option<f64>,
    /// Total cost.
    pub total: Option<f64>,
}

impl Cost {
    /// A cost from its parts; the total is their sum.
    pub fn new(input: f64, output: f64) -> Self {
        Self {
            input: Some(input),
            output: Some(output),
            total: Some(input + output),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_buckets_leave_the_details_out_of_input_and_output() {
        // The issue's case: 120 in (100 cached), 30 out (10 reasoning).
        let u = Usage::new(120, 30).with_cache_read(100).with_reasoning(10);
        let e = u.exclusive();
        assert_eq!(e.input, 20);
        assert_eq!(e.cache_read, Some(100));
        assert_eq!(e.output, 20);
        assert_eq!(e.reasoning, Some(10));
        assert_eq!(e.total, 150);
        // Cache writes leave `input` too.
        let w = Usage::new(500, 10)
            .with_cache_read(100)
            .with_cache_write(300);
        assert_eq!(w.exclusive().input, 100);
        assert_eq!(w.exclusive().cache_write, Some(300));
    }

    #[test]
    fn exclusive_buckets_floor_at_zero_and_sum_to_the_total() {
        // A provider reporting more cached tokens than prompt tokens.
        let odd = Usage::new(10, 5).with_cache_read(50).with_reasoning(9);
        let e = odd.exclusive();
        assert_eq!((e.input, e.output), (0, 0));
        let mut u = Usage::new(1000, 200)
            .with_cache_read(400)
            .with_reasoning(50);
        u.input_details.audio = Some(100);
        u.output_details.image = Some(20);
        let e = u.exclusive();
        let sum = e.input
            + e.cache_read.unwrap()
            + e.input_audio.unwrap()
            + e.output
            + e.reasoning.unwrap()
            + e.output_image.unwrap();
        assert_eq!(sum, e.total);
        assert_eq!(Usage::new(3, 4).exclusive().input, 3);
    }

    #[test]
    fn detail_accessors_default_to_zero() {
        let u = Usage::new(1, 1);
        assert_eq!(
            (
                u.cache_read_tokens(),
                u.cache_write_tokens(),
                u.reasoning_tokens()
            ),
            (0, 0, 0)
        );
        let u = u.with_cache_write(1).with_reasoning(1);
        assert_eq!((u.cache_write_tokens(), u.reasoning_tokens()), (1, 1));
    }
}
