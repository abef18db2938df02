//! Per-item answers: what a destination's 2xx says about each item of the
//! request (a `207 Multi-Status`, OTLP's `partial_success`, a count of
//! refused items), and the one rule that turns it into delivered and
//! refused items.
//!
//! **The rule: an item counts as delivered only when the answer says so
//! unambiguously.** A per-item answer that cannot be read is an error for
//! the whole request (resent: item ids are idempotent); an answer that says
//! how many items failed without saying which is resolved by sending the
//! items again in smaller requests ([`crate::send_split`]) until each
//! answer is exact. An exporter parses its vendor's body into
//! [`ItemAnswers`] and calls [`ItemAnswers::resolve`]; it never decides
//! "delivered" itself.

use std::collections::HashMap;

use aiobs_core::{ErrorClass, ExportError, ItemRejection};

use crate::classify::{SendError, item_status_class};

/// One item the destination refused, as its answer names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// The item's id, as sent.
    pub id: String,
    /// The item's HTTP status (e.g. 400, 429, 500).
    pub status: u16,
    /// Why.
    pub message: String,
}

impl ItemError {
    /// An item error.
    pub fn new(id: impl Into<String>, status: u16, message: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            status,
            message: message.into(),
        }
    }
}

/// What a 2xx answer says about the items of the request that carried them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ItemAnswers {
    /// Every item accepted: a plain 2xx, or a per-item section listing no failure.
    AllAccepted,
    /// These items refused, named by the ids they were sent under; the rest accepted.
    Refused(Vec<ItemError>),
    /// This many items refused, without saying which (Langfuse's scores
    /// `{"accepted": n, "rejected": m}`, OTLP's `partial_success.rejected_spans`).
    RefusedCount {
        /// How many.
        refused: u64,
        /// The destination's explanation.
        message: String,
    },
    /// The per-item answer cannot be read (e.g. a 207 whose body is not the
    /// vendor's documented shape).
    Unreadable(String),
}

impl ItemAnswers {
    /// Applies the rule to the items of one request. `sent` pairs each item's
    /// index (in the export batch, or whatever the caller counts in) with an
    /// id it was sent under; an item sent as several parts (Langfuse's
    /// ingestion events) appears once per part and is refused when any part
    /// is — re-sent when any of its refusals is retryable.
    ///
    /// - [`AllAccepted`](Self::AllAccepted): no rejection.
    /// - [`Refused`](Self::Refused): the named items, classed by
    ///   [`item_status_class`]. An error naming an id that was not sent makes
    ///   the answer ambiguous (as below): something failed and we cannot say what.
    /// - [`RefusedCount`](Self::RefusedCount): none refused, or all refused
    ///   (`Permanent`), is exact; anything between is
    ///   [`SendError::Ambiguous`], on which [`crate::send_split`] sends the
    ///   items again in halves until each answer is exact.
    /// - [`Unreadable`](Self::Unreadable): a `Transient` error for the whole
    ///   request: the worker sends it again; nothing is counted delivered.
    ///
    /// ```
    /// use aiobs_core::ErrorClass;
    /// use aiobs_http::{ItemAnswers, ItemError, SendError};
    ///
    /// let sent = [(0, "a"), (1, "b"), (2, "c")];
    /// let named = ItemAnswers::Refused(vec![ItemError::new("c", 400, "invalid"), ItemError::new("b", 500, "retry")]);
    /// let rejected = named.resolve(sent).unwrap();
    /// assert_eq!((rejected[0].index, rejected[0].class), (1, ErrorClass::Transient));
    /// assert_eq!((rejected[1].index, rejected[1].class), (2, ErrorClass::Permanent));
    ///
    /// let counted = ItemAnswers::RefusedCount { refused: 1, message: "bad score".into() };
    /// assert!(matches!(counted.resolve(sent), Err(SendError::Ambiguous(_))));
    /// let unreadable = ItemAnswers::Unreadable("not JSON".into());
    /// assert_eq!(unreadable.resolve(sent).unwrap_err().class(), ErrorClass::Transient);
    /// ```
    pub fn resolve<'a>(
        self,
        sent: impl IntoIterator<Item = (usize, &'a str)>,
    ) -> Result<Vec<ItemRejection>, SendError> {
        match self {
            Self::AllAccepted => Ok(Vec::new()),
            Self::Unreadable(why) => Err(SendError::Export(ExportError::transient(format!(
                "the destination's per-item answer cannot be read ({why}); the items are sent again, none counted delivered"
            )))),
            Self::RefusedCount { refused: 0, .. } => Ok(Vec::new()),
            Self::RefusedCount { refused, message } => {
                let mut indices: Vec<usize> = sent.into_iter().map(|(i, _)| i).collect();
                indices.sort_unstable();
                indices.dedup();
                if refused < indices.len() as u64 {
                    return Err(SendError::Ambiguous(format!(
                        "{refused} of {} items refused without saying which: {message}",
                        indices.len()
                    )));
                }
                Ok(indices
                    .into_iter()
                    .map(|index| ItemRejection {
                        index,
                        class: ErrorClass::Permanent,
                        message: format!("refused by the destination: {message}"),
                    })
                    .collect())
            }
            Self::Refused(errors) => by_id(sent, errors),
        }
    }
}

/// Maps named errors to rejections; an error naming an unknown id is ambiguous.
fn by_id<'a>(
    sent: impl IntoIterator<Item = (usize, &'a str)>,
    errors: Vec<ItemError>,
) -> Result<Vec<ItemRejection>, SendError> {
    let by_id: HashMap<&str, usize> = sent.into_iter().map(|(i, id)| (id, i)).collect();
    let mut worst: HashMap<usize, &ItemError> = HashMap::new();
    let mut unknown = 0;
    for e in &errors {
        let Some(&index) = by_id.get(e.id.as_str()) else {
            unknown += 1;
            continue;
        };
        // One rejection per item: a retryable refusal wins, so the item is
        // sent again rather than given up because another part failed for good.
        let keep = worst
            .get(&index)
            .is_none_or(|w| !item_status_class(w.status).is_retryable());
        if keep {
            worst.insert(index, e);
        }
    }
    if unknown > 0 {
        return Err(SendError::Ambiguous(format!(
            "{unknown} refusal(s) name items that were not sent, so which sent items failed is unknown"
        )));
    }
    let mut out: Vec<ItemRejection> = worst
        .into_iter()
        .map(|(index, e)| ItemRejection {
            index,
            class: item_status_class(e.status),
            message: format!(
                "item {} refused with status {}: {}",
                e.id, e.status, e.message
            ),
        })
        .collect();
    out.sort_by_key(|r| r.index);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retryable_refusal_of_one_part_wins_and_duplicates_count_once() {
        let sent = [(4, "x1"), (4, "x2"), (7, "y")];
        let r = ItemAnswers::Refused(vec![
            ItemError::new("x1", 400, "bad"),
            ItemError::new("x2", 503, "busy"),
            ItemError::new("y", 400, "bad"),
            ItemError::new("y", 400, "again"),
        ])
        .resolve(sent)
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].index, r[0].class), (4, ErrorClass::Throttled(None)));
        assert_eq!((r[1].index, r[1].class), (7, ErrorClass::Permanent));
    }

    #[test]
    fn a_refusal_naming_an_unknown_item_is_ambiguous() {
        let r = ItemAnswers::Refused(vec![ItemError::new("nope", 400, "?")]).resolve([(0, "a")]);
        assert!(matches!(r, Err(SendError::Ambiguous(_))), "{r:?}");
    }

    #[test]
    fn counts_are_exact_only_at_none_or_all() {
        let sent = [(0, "a"), (1, "b")];
        let none = ItemAnswers::RefusedCount {
            refused: 0,
            message: String::new(),
        };
        assert_eq!(none.resolve(sent).unwrap(), Vec::new());
        let all = ItemAnswers::RefusedCount {
            refused: 2,
            message: "invalid".into(),
        }
        .resolve(sent)
        .unwrap();
        assert_eq!(all.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1]);
        assert!(all.iter().all(|r| r.class == ErrorClass::Permanent));
        let one = ItemAnswers::RefusedCount {
            refused: 1,
            message: "invalid".into(),
        };
        assert!(matches!(one.resolve(sent), Err(SendError::Ambiguous(_))));
    }
}
