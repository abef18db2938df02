//! Per-item results of a `207 Multi-Status` answer.

use std::collections::HashMap;

use aiobs_core::ItemRejection;

use crate::classify::item_status_class;

/// One item the destination refused, as its 207 body names it.
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

/// Maps the errors of a 207 answer to rejections of the batch items they name.
///
/// `sent` pairs each item's index in the export batch with the id it was sent
/// under; errors naming an id that was not sent are ignored (and logged at
/// debug level). The class follows [`item_status_class`]: 429/503 throttled,
/// 5xx/408 transient (re-sent by the worker), others permanent.
///
/// ```
/// use aiobs_core::ErrorClass;
/// use aiobs_http::{ItemError, rejections_by_id};
///
/// let sent = [(0, "a"), (1, "b"), (2, "c")];
/// let errors = vec![ItemError::new("c", 400, "invalid"), ItemError::new("b", 500, "retry")];
/// let rejected = rejections_by_id(sent, errors);
/// assert_eq!(rejected.len(), 2);
/// assert_eq!((rejected[0].index, rejected[0].class), (2, ErrorClass::Permanent));
/// assert_eq!((rejected[1].index, rejected[1].class), (1, ErrorClass::Transient));
/// ```
pub fn rejections_by_id<'a>(
    sent: impl IntoIterator<Item = (usize, &'a str)>,
    errors: impl IntoIterator<Item = ItemError>,
) -> Vec<ItemRejection> {
    let by_id: HashMap<&str, usize> = sent.into_iter().map(|(i, id)| (id, i)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for e in errors {
        let Some(&index) = by_id.get(e.id.as_str()) else {
            tracing::debug!(target: "aiobs", id = %e.id, status = e.status, "207 answer names an item that was not sent; ignored");
            continue;
        };
        if !seen.insert(index) {
            continue;
        }
        out.push(ItemRejection {
            index,
            class: item_status_class(e.status),
            message: format!(
                "item {} refused with status {}: {}",
                e.id, e.status, e.message
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use aiobs_core::ErrorClass;

    use super::*;

    #[test]
    fn unknown_and_duplicate_ids_are_ignored() {
        let sent = [(4, "x"), (7, "y")];
        let errors = vec![
            ItemError::new("nope", 400, "?"),
            ItemError::new("y", 429, "slow"),
            ItemError::new("y", 400, "again"),
        ];
        let r = rejections_by_id(sent, errors);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].index, 7);
        assert_eq!(r[0].class, ErrorClass::Throttled(None));
        assert!(r[0].message.contains("slow"));
    }
}
