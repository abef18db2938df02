//! A failed span → a separate error event linked to it.
//!
//! The exception is built from the span's own `SpanError` (type, message and
//! the application's stack when it carries one): this exporter never captures
//! a stack of its own, so Sentry never shows the exporter as the culprit.
//! `contexts.trace` carries the failing span's ids, which is how Sentry links
//! the issue to the span in the trace view.

use std::collections::BTreeMap;

use aiobs_core::{ExportedSpan, SpanError};
use sentry::integrations::backtrace::parse_stacktrace;
use sentry::protocol::{Context, Event, Exception, Level, Mechanism, TraceContext, Values};
use serde_json::{Value, json};

/// `exception.values[0]` for a span error. A stack in Rust's backtrace format
/// becomes frames; any other stack text is kept verbatim in
/// `mechanism.data.stack`, so it is never lost.
pub(crate) fn exception(error: &SpanError) -> Exception {
    let frames = error
        .stack
        .as_deref()
        .filter(|s| is_rust_backtrace(s))
        .and_then(parse_stacktrace)
        .filter(|s| !s.frames.is_empty());
    let mut data = sentry::protocol::Map::new();
    if frames.is_none()
        && let Some(stack) = &error.stack
    {
        data.insert("stack".into(), json!(stack));
    }
    Exception {
        ty: error.kind.clone().unwrap_or_else(|| "Error".into()),
        value: Some(error.message.clone()),
        stacktrace: frames,
        mechanism: Some(Mechanism {
            ty: "aiobs".into(),
            handled: Some(true),
            data,
            ..Mechanism::default()
        }),
        ..Exception::default()
    }
}

/// Whether a stack is in the format of Rust's `std::backtrace::Backtrace`
/// (`  0: function` lines), the one `parse_stacktrace` reads.
fn is_rust_backtrace(stack: &str) -> bool {
    stack
        .lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.trim_start().split_once(':'))
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The error event for a failed span; `transaction` is the name of the
/// transaction the span is part of, when known.
pub(crate) fn error_event(
    span: &ExportedSpan,
    error: &SpanError,
    trace: TraceContext,
    transaction: Option<String>,
) -> Event<'static> {
    let mut contexts = BTreeMap::new();
    contexts.insert("trace".to_owned(), Context::Trace(Box::new(trace)));
    if let Some(details) = &error.details {
        let obj = match details {
            Value::Object(o) => o.clone().into_iter().collect(),
            other => [("details".to_owned(), other.clone())]
                .into_iter()
                .collect(),
        };
        contexts.insert("error_details".to_owned(), Context::Other(obj));
    }
    Event {
        level: Level::Error,
        exception: Values {
            values: vec![exception(error)],
        },
        transaction,
        timestamp: span.end_time.unwrap_or(span.start_time).into(),
        contexts,
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_backtrace_becomes_frames_other_stacks_are_kept_as_text() {
        let mut e = SpanError::new("forecast service unavailable").with_kind("RuntimeError");
        e.stack = Some(
            "   0: weather_agent::tools::get_forecast\n             at ./src/tools.rs:42:9\n   1: weather_agent::main\n             at ./src/main.rs:10:5\n"
                .into(),
        );
        let ex = exception(&e);
        assert_eq!(ex.ty, "RuntimeError");
        assert_eq!(ex.value.as_deref(), Some("forecast service unavailable"));
        let frames = &ex.stacktrace.as_ref().expect("parsed").frames;
        let functions: Vec<_> = frames.iter().filter_map(|f| f.function.clone()).collect();
        assert!(
            functions.iter().any(|f| f.contains("get_forecast")),
            "{functions:?}"
        );
        assert!(
            functions.iter().all(|f| !f.contains("aiobs")),
            "never the exporter's own frames: {functions:?}"
        );

        e.stack = Some("Traceback (most recent call last):\n  File \"app.py\", line 3".into());
        let ex = exception(&e);
        assert!(ex.stacktrace.is_none());
        let mech = ex.mechanism.unwrap();
        assert!(
            mech.data["stack"]
                .as_str()
                .unwrap()
                .starts_with("Traceback")
        );
    }
}
