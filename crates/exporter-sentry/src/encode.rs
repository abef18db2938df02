//! Documents → envelopes, with the `sentry` crate's own serialisation; and the
//! size rules: fit a payload under Relay's event size limit by truncating its
//! longest data values (with aiobs' visible marker), and split a transaction
//! that the server still refuses as too large (413).

use std::time::SystemTime;

use aiobs_core::SerializationLimits;
use aiobs_core::payload::bound_value;
use sentry::Envelope;
use sentry::protocol::{EnvelopeHeaders, Map};
use serde_json::Value;

use crate::mapping::{Document, Payload};

/// The envelope bytes for one document: header (`event_id`, `sent_at`, the
/// dynamic sampling context), one item, newline-terminated.
pub(crate) fn envelope(doc: &Document) -> Vec<u8> {
    let headers = EnvelopeHeaders::new()
        .with_event_id(doc.event_id)
        .with_sent_at(SystemTime::now())
        .with_trace(doc.trace.clone());
    let mut env = Envelope::new().with_headers(headers);
    match &doc.payload {
        Payload::Transaction(t) => env.add_item((**t).clone()),
        Payload::Error(e) => env.add_item((**e).clone()),
    }
    let mut out = Vec::with_capacity(1024);
    // Writing to a Vec fails only if serialisation does, which our payloads
    // (strings, numbers, maps) cannot; an empty body would be refused (400),
    // a counted failure, never a silent loss.
    if env.to_writer(&mut out).is_err() {
        out.clear();
    }
    out
}

/// The size of the document's payload as serialised.
pub(crate) fn payload_len(doc: &Document) -> usize {
    let r = match &doc.payload {
        Payload::Transaction(t) => serde_json::to_vec(t),
        Payload::Error(e) => serde_json::to_vec(e),
    };
    r.map_or(usize::MAX, |v| v.len())
}

/// Shortest a truncated string is made.
const MIN_STRING: usize = 256;

/// Truncates the document's longest string data values (halving the allowed
/// length each round) until its payload fits `max_bytes`. Returns how many
/// values were cut; the document may still be over (too many spans): then
/// [`split`] is the next step.
pub(crate) fn fit(doc: &mut Document, max_bytes: usize) -> u32 {
    let mut cut = 0;
    let mut cap = max_bytes / 2;
    while payload_len(doc) > max_bytes && cap >= MIN_STRING {
        let limits = SerializationLimits::default().with_max_string_len(cap);
        for data in data_maps(doc) {
            for v in data.values_mut() {
                if matches!(v, Value::String(s) if s.len() > cap) {
                    let b = bound_value(v, &limits);
                    cut += b.truncations;
                    *v = b.value;
                }
            }
        }
        cap /= 2;
    }
    cut
}

/// Every `data` map of a document (the trace context's, each child's,
/// the exception mechanism's).
fn data_maps(doc: &mut Document) -> Vec<&mut Map<String, Value>> {
    let mut out = Vec::new();
    match &mut doc.payload {
        Payload::Transaction(t) => {
            for c in t.contexts.values_mut() {
                if let sentry::protocol::Context::Trace(tc) = c {
                    out.push(&mut tc.data);
                }
            }
            for s in &mut t.spans {
                out.push(&mut s.data);
            }
        }
        Payload::Error(e) => {
            for c in e.contexts.values_mut() {
                if let sentry::protocol::Context::Trace(tc) = c {
                    out.push(&mut tc.data);
                }
            }
            for ex in &mut e.exception.values {
                if let Some(m) = &mut ex.mechanism {
                    out.push(&mut m.data);
                }
            }
        }
    }
    out
}

/// Splits a transaction with children into two, each carrying half the
/// children; both keep the head's trace context (the second with its own
/// event id), so Sentry files both under the same trace and head span.
/// Returns `None` when there is nothing to split (an error event, or fewer
/// than two children). Items follow: the head goes with the first half.
pub(crate) fn split(doc: &Document) -> Option<(Document, Document)> {
    let Payload::Transaction(t) = &doc.payload else {
        return None;
    };
    let head = usize::from(doc.carries_head);
    if t.spans.len() < 2 || doc.items.len() != t.spans.len() + head {
        return None;
    }
    let mid = t.spans.len() / 2;
    let mut first = (**t).clone();
    let mut second = (**t).clone();
    second.spans = first.spans.split_off(mid);
    second.event_id = uuid::Uuid::new_v5(&doc.event_id, b"aiobs-sentry:split");
    let half =
        |txn: sentry::protocol::Transaction<'static>, items: Vec<usize>, carries_head| Document {
            event_id: txn.event_id,
            payload: Payload::Transaction(Box::new(txn)),
            trace: doc.trace.clone(),
            items,
            carries_head,
        };
    let a_items = doc.items[..head + mid].to_vec();
    let b_items = doc.items[head + mid..].to_vec();
    Some((
        half(first, a_items, doc.carries_head),
        half(second, b_items, false),
    ))
}
