//! One `Exporter::export` call carried by several requests: splitting on 413
//! and merging the results into one [`ExportOutcome`].

use std::future::Future;

use aiobs_core::{ErrorClass, ExportError, ExportOutcome, ItemRejection};

use crate::classify::SendError;

/// The results of the requests that together carry one export batch, by the
/// items' indices in that batch.
///
/// [`BatchResults::into_outcome`] turns them into what `export` returns: an
/// error for the whole batch when every item failed the same way (so the
/// worker retries, throttles or disables as a whole), else per-item
/// rejections, so that items already acknowledged are never sent again.
#[derive(Debug, Default)]
pub struct BatchResults {
    delivered: usize,
    rejected: Vec<ItemRejection>,
    /// Items of requests that failed as a whole, with the error.
    failures: Vec<(Vec<usize>, ExportError)>,
}

impl BatchResults {
    /// No results yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `n` items were acknowledged.
    pub fn delivered(&mut self, n: usize) {
        self.delivered += n;
    }

    /// One item was refused (e.g. in a 207 answer, or too large to send).
    pub fn reject(&mut self, index: usize, class: ErrorClass, message: impl Into<String>) {
        self.rejected.push(ItemRejection {
            index,
            class,
            message: message.into(),
        });
    }

    /// Items refused one by one.
    pub fn extend_rejections(&mut self, rejections: impl IntoIterator<Item = ItemRejection>) {
        self.rejected.extend(rejections);
    }

    /// The request carrying these items failed as a whole.
    pub fn fail(&mut self, indices: &[usize], error: ExportError) {
        if !indices.is_empty() {
            self.failures.push((indices.to_vec(), error));
        }
    }

    /// The first whole-request failure so far, if any: a caller sending
    /// several requests may stop early when the destination is unreachable.
    pub fn failure(&self) -> Option<&ExportError> {
        self.failures.first().map(|(_, e)| e)
    }

    /// Items acknowledged so far.
    pub fn delivered_count(&self) -> usize {
        self.delivered
    }

    /// The result of `export`.
    pub fn into_outcome(mut self) -> Result<ExportOutcome, ExportError> {
        if self.failures.is_empty() {
            return Ok(ExportOutcome::partial(self.rejected));
        }
        let nothing_else = self.delivered == 0 && self.rejected.is_empty();
        let first_class = self.failures[0].1.class;
        let uniform = self.failures.iter().all(|(_, e)| e.class == first_class);
        if nothing_else && uniform {
            return Err(self.failures.swap_remove(0).1);
        }
        // Refused credentials disable the exporter even when other requests of
        // the batch failed differently, as long as none got through.
        if self.delivered == 0
            && let Some(pos) = self
                .failures
                .iter()
                .position(|(_, e)| e.class == ErrorClass::Disabled)
        {
            return Err(self.failures.swap_remove(pos).1);
        }
        for (indices, error) in self.failures {
            for index in indices {
                self.rejected.push(ItemRejection {
                    index,
                    class: error.class,
                    message: error.message.clone(),
                });
            }
        }
        Ok(ExportOutcome::partial(self.rejected))
    }
}

/// Sends `indices` (positions in the export batch) with `send`, halving any
/// request answered `413 Payload Too Large` or with an ambiguous per-item
/// answer ([`SendError::Ambiguous`]) and sending the halves, down to single
/// items. A single item still too large is rejected as `Permanent` (counted
/// by the worker as a permanent failure, never retried). Halving re-sends
/// items the destination may already hold: item ids must be idempotent, as
/// every aiobs exporter's are.
///
/// `send` gets the indices one request must carry and returns the rejections
/// of a 2xx answer (indices in the batch; empty when all were accepted) —
/// usually [`crate::ItemAnswers::resolve`]'s result. After the first failure
/// that is neither a 413 nor ambiguous, the remaining items are not sent and
/// share that failure. Requests go one after another, in order.
///
/// ```
/// use aiobs_core::ErrorClass;
/// use aiobs_http::{BatchResults, SendError, send_split};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // A destination that takes at most 2 items per request, and never item 4.
/// let indices: Vec<usize> = (0..6).collect();
/// let mut results = BatchResults::new();
/// send_split(&indices, &mut results, |part| async move {
///     if part.len() > 2 || part.contains(&4) {
///         Err(SendError::TooLarge(format!("{} items", part.len())))
///     } else {
///         Ok(Vec::new())
///     }
/// })
/// .await;
/// let outcome = results.into_outcome().unwrap();
/// assert_eq!(outcome.rejected.len(), 1);
/// assert_eq!(outcome.rejected[0].index, 4);
/// assert_eq!(outcome.rejected[0].class, ErrorClass::Permanent);
/// # }
/// ```
pub async fn send_split<'a, F, Fut>(indices: &'a [usize], results: &mut BatchResults, mut send: F)
where
    F: FnMut(&'a [usize]) -> Fut,
    Fut: Future<Output = Result<Vec<ItemRejection>, SendError>>,
{
    // Parts still to send, the next one last.
    let mut todo: Vec<&'a [usize]> = Vec::new();
    if !indices.is_empty() {
        todo.push(indices);
    }
    while let Some(part) = todo.pop() {
        match send(part).await {
            Ok(rejections) => {
                let refused = rejections
                    .iter()
                    .filter(|r| part.contains(&r.index))
                    .count();
                results.delivered(part.len() - refused.min(part.len()));
                results.extend_rejections(rejections);
            }
            Err(SendError::TooLarge(msg)) => {
                if let [index] = part {
                    results.reject(
                        *index,
                        ErrorClass::Permanent,
                        format!(
                            "item alone exceeds the destination's body limit (HTTP 413): {msg}"
                        ),
                    );
                } else {
                    let (left, right) = part.split_at(part.len() / 2);
                    todo.push(right);
                    todo.push(left);
                }
            }
            Err(SendError::Ambiguous(msg)) => {
                if let [index] = part {
                    // One item cannot be ambiguous; if an answer still is,
                    // the item is not delivered: send it again later.
                    results.reject(*index, ErrorClass::Transient, msg);
                } else {
                    let (left, right) = part.split_at(part.len() / 2);
                    todo.push(right);
                    todo.push(left);
                }
            }
            Err(SendError::Export(error)) => {
                let mut rest: Vec<usize> = part.to_vec();
                for p in todo.drain(..).rev() {
                    rest.extend_from_slice(p);
                }
                results.fail(&rest, error);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn run(
        n: usize,
        answer: impl Fn(&[usize], usize) -> Result<Vec<ItemRejection>, SendError>,
    ) -> (Result<ExportOutcome, ExportError>, Vec<Vec<usize>>) {
        let indices: Vec<usize> = (0..n).collect();
        let sent = RefCell::new(Vec::new());
        let mut results = BatchResults::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(send_split(&indices, &mut results, |part| {
            sent.borrow_mut().push(part.to_vec());
            let attempt = sent.borrow().len();
            let r = answer(part, attempt);
            async move { r }
        }));
        (results.into_outcome(), sent.into_inner())
    }

    #[test]
    fn all_accepted_in_one_request() {
        let (out, sent) = run(5, |_, _| Ok(Vec::new()));
        assert_eq!(out.unwrap(), ExportOutcome::all_delivered());
        assert_eq!(sent, vec![vec![0, 1, 2, 3, 4]]);
    }

    #[test]
    fn too_large_halves_recursively_in_order() {
        // Accepts at most 2 items per request.
        let (out, sent) = run(7, |part, _| {
            if part.len() > 2 {
                Err(SendError::TooLarge("big".into()))
            } else {
                Ok(Vec::new())
            }
        });
        assert_eq!(out.unwrap(), ExportOutcome::all_delivered());
        let delivered: Vec<Vec<usize>> = sent.into_iter().filter(|p| p.len() <= 2).collect();
        assert_eq!(delivered, vec![vec![0], vec![1, 2], vec![3, 4], vec![5, 6]]);
    }

    #[test]
    fn single_oversized_item_is_a_permanent_rejection() {
        let (out, sent) = run(4, |part, _| {
            if part.contains(&2) {
                Err(SendError::TooLarge("big".into()))
            } else {
                Ok(Vec::new())
            }
        });
        let out = out.unwrap();
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].index, 2);
        assert_eq!(out.rejected[0].class, ErrorClass::Permanent);
        assert!(
            out.rejected[0].message.contains("413"),
            "{}",
            out.rejected[0].message
        );
        assert!(sent.contains(&vec![2]));
        // Every item went out in some accepted request or was rejected; none twice.
        let accepted: Vec<usize> = sent
            .iter()
            .filter(|p| !p.contains(&2))
            .flatten()
            .copied()
            .collect();
        assert_eq!(accepted, vec![0, 1, 3]);
    }

    #[test]
    fn an_ambiguous_answer_is_narrowed_down_to_the_refused_item() {
        // The destination refuses item 5 and answers with a count only.
        let (out, sent) = run(8, |part, _| {
            crate::ItemAnswers::RefusedCount {
                refused: u64::from(part.contains(&5)),
                message: "invalid".into(),
            }
            .resolve(part.iter().map(|&i| (i, "")))
        });
        let out = out.unwrap();
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(
            (out.rejected[0].index, out.rejected[0].class),
            (5, ErrorClass::Permanent)
        );
        // [0..8] → [0..4] ok, [4..8] → [4, 5] → [4] ok, [5] refused; [6, 7] ok.
        assert_eq!(sent.len(), 7, "{sent:?}");
    }

    #[test]
    fn whole_batch_failure_is_returned_as_the_error() {
        let (out, sent) = run(3, |_, _| Err(ExportError::disabled("401").into()));
        assert_eq!(out.unwrap_err().class, ErrorClass::Disabled);
        assert_eq!(sent.len(), 1);
    }

    #[test]
    fn failure_after_partial_delivery_rejects_only_the_rest() {
        // 413 first, then the left half is accepted, then the right half gets a 503.
        let (out, sent) = run(4, |part, attempt| match attempt {
            1 => Err(SendError::TooLarge("big".into())),
            2 => Ok(Vec::new()),
            _ => Err(ExportError::throttled(None, format!("503 for {part:?}")).into()),
        });
        let out = out.unwrap();
        assert_eq!(sent.len(), 3);
        let idx: Vec<usize> = out.rejected.iter().map(|r| r.index).collect();
        assert_eq!(idx, vec![2, 3]);
        assert!(
            out.rejected
                .iter()
                .all(|r| r.class == ErrorClass::Throttled(None))
        );
    }

    #[test]
    fn failure_stops_sending_and_covers_unsent_parts() {
        // 1: 413 on all 8; 2: 413 on [0..4]; 3: [0,1] ok; 4: [2,3] fails → [4..8] never sent.
        let (out, sent) = run(8, |_, attempt| match attempt {
            1 | 2 => Err(SendError::TooLarge("big".into())),
            3 => Ok(Vec::new()),
            _ => Err(ExportError::transient("reset").into()),
        });
        assert_eq!(sent.len(), 4);
        let mut idx: Vec<usize> = out.unwrap().rejected.iter().map(|r| r.index).collect();
        idx.sort_unstable();
        assert_eq!(idx, vec![2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn item_rejections_pass_through() {
        let (out, _) = run(3, |_, _| {
            Ok(vec![ItemRejection {
                index: 1,
                class: ErrorClass::Permanent,
                message: "bad".into(),
            }])
        });
        let out = out.unwrap();
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].index, 1);
    }

    #[test]
    fn mixed_failures_without_delivery_become_item_rejections() {
        let mut r = BatchResults::new();
        r.fail(&[0, 1], ExportError::transient("500"));
        r.fail(&[2], ExportError::permanent("400"));
        let out = r.into_outcome().unwrap();
        let classes: Vec<(usize, ErrorClass)> =
            out.rejected.iter().map(|r| (r.index, r.class)).collect();
        assert_eq!(
            classes,
            vec![
                (0, ErrorClass::Transient),
                (1, ErrorClass::Transient),
                (2, ErrorClass::Permanent)
            ]
        );
        let mut r = BatchResults::new();
        r.fail(&[0], ExportError::transient("500"));
        r.fail(&[1], ExportError::disabled("401"));
        assert_eq!(r.into_outcome().unwrap_err().class, ErrorClass::Disabled);
    }
}
