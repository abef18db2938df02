//! Cutting a batch into requests that fit a destination's body limit.

use std::ops::Range;

/// Cuts items, in order, into consecutive runs whose sizes sum to at most
/// `budget` bytes. An item larger than the budget travels alone (the
/// destination may still take it; if not, its `413` says so and
/// [`crate::send_split`] rejects it). Returns position ranges over the items.
///
/// ```
/// use aiobs_http::chunk_by_size;
///
/// let sizes = [40, 40, 40, 200, 10];
/// assert_eq!(chunk_by_size(sizes, 100), vec![0..2, 2..3, 3..4, 4..5]);
/// assert!(chunk_by_size([], 100).is_empty());
/// ```
pub fn chunk_by_size(sizes: impl IntoIterator<Item = usize>, budget: usize) -> Vec<Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0usize;
    let mut end = 0;
    for size in sizes {
        if end > start && bytes.saturating_add(size) > budget {
            chunks.push(start..end);
            start = end;
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        end += 1;
    }
    if end > start {
        chunks.push(start..end);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_in_exactly_one_chunk_within_budget() {
        let sizes: Vec<usize> = (0..500).map(|i| (i * 37) % 113 + 1).collect();
        let chunks = chunk_by_size(sizes.iter().copied(), 300);
        let flat: Vec<usize> = chunks.iter().flat_map(|r| r.clone()).collect();
        assert_eq!(flat, (0..500).collect::<Vec<_>>());
        for r in chunks {
            let total: usize = sizes[r.clone()].iter().sum();
            assert!(total <= 300 || r.len() == 1, "{r:?}: {total}");
        }
    }
}
