//! Per-trace sampling, decided once at the root.

use std::fmt;
use std::sync::Arc;

use crate::id::TraceId;
use crate::span::SpanType;

/// What a custom sampler sees.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SamplingInput<'a> {
    /// The trace's id.
    pub trace_id: TraceId,
    /// The root span's name.
    pub name: &'a str,
    /// The root span's type.
    pub span_type: SpanType,
    /// The upstream decision, when the trace continues a `traceparent`.
    pub parent_sampled: Option<bool>,
}

impl<'a> SamplingInput<'a> {
    /// The input for a root span with no upstream decision.
    pub fn new(trace_id: TraceId, name: &'a str, span_type: SpanType) -> Self {
        Self {
            trace_id,
            name,
            span_type,
            parent_sampled: None,
        }
    }
}

/// Decides whether a trace is recorded. Decided once per trace, at its root;
/// every span of an unsampled trace costs one counter increment.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Sampler {
    /// Record every trace.
    #[default]
    Always,
    /// Record nothing.
    Never,
    /// Record this fraction (0.0..=1.0) of traces, deterministically by trace id,
    /// so every process that sees the same trace makes the same decision.
    Ratio(f64),
    /// Your own decision.
    Custom(Arc<dyn Fn(&SamplingInput<'_>) -> bool + Send + Sync>),
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Always => f.write_str("Always"),
            Self::Never => f.write_str("Never"),
            Self::Ratio(r) => write!(f, "Ratio({r})"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Sampler {
    /// A custom sampler.
    pub fn custom(f: impl Fn(&SamplingInput<'_>) -> bool + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(f))
    }

    /// Whether the trace is recorded. A custom sampler that panics samples the trace out.
    pub fn should_sample(&self, input: &SamplingInput<'_>) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Ratio(r) => ratio_decision(input.trace_id, *r),
            Self::Custom(f) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(input)))
                .unwrap_or_else(|_| {
                    tracing::warn!(target: "aiobs", "custom sampler panicked; trace not sampled");
                    false
                }),
        }
    }
}

/// The decision of `Ratio(ratio)`: the low 63 bits of the trace id against the ratio,
/// as OpenTelemetry's `TraceIdRatioBased` does, so both agree on a shared trace.
fn ratio_decision(trace_id: TraceId, ratio: f64) -> bool {
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    if ratio >= 1.0 {
        return true;
    }
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    let low = (trace_id.to_u128() as u64) >> 1;
    low < bound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(trace_id: TraceId) -> SamplingInput<'static> {
        SamplingInput {
            trace_id,
            name: "root",
            span_type: SpanType::AgentRun,
            parent_sampled: None,
        }
    }

    #[test]
    fn ratio_is_deterministic_and_close() {
        let s = Sampler::Ratio(0.25);
        let ids: Vec<TraceId> = (0..20_000).map(|_| TraceId::random()).collect();
        let first: Vec<bool> = ids.iter().map(|t| s.should_sample(&input(*t))).collect();
        let second: Vec<bool> = ids.iter().map(|t| s.should_sample(&input(*t))).collect();
        assert_eq!(first, second, "same trace id, same decision");
        let kept = first.iter().filter(|b| **b).count() as f64 / ids.len() as f64;
        assert!((0.22..0.28).contains(&kept), "kept {kept}");
        assert!(!Sampler::Ratio(f64::NAN).should_sample(&input(ids[0])));
        assert!(Sampler::Ratio(1.0).should_sample(&input(ids[0])));
        assert!(!Sampler::Never.should_sample(&input(ids[0])));
    }

    #[test]
    fn panicking_custom_sampler_is_contained() {
        let s = Sampler::custom(|_| panic!("boom"));
        assert!(!s.should_sample(&input(TraceId::random())));
        let by_name = Sampler::custom(|i| i.name == "root");
        assert!(by_name.should_sample(&input(TraceId::random())));
    }
}
