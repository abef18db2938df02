//! The storage test suite, written once and run against every backend
//! (`sqlite_storage.rs`, `postgres_storage.rs`) through `storage_suite!`.

#![allow(dead_code)] // each test binary uses part of it

pub(crate) mod data;
pub(crate) mod suite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aiobs_exporter_default::Storage;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A store under test: a handle to it, a way to open more handles to the
/// same store (as other processes would), and its clean-up.
pub(crate) struct TestStore {
    pub(crate) storage: Arc<dyn Storage>,
    opener: Arc<dyn Fn() -> BoxFuture<Arc<dyn Storage>> + Send + Sync>,
    cleanup: Option<BoxFuture<()>>,
    /// Keeps a temporary directory alive.
    _keep: Option<Box<dyn std::any::Any + Send + Sync>>,
}

impl TestStore {
    pub(crate) async fn new(
        opener: Arc<dyn Fn() -> BoxFuture<Arc<dyn Storage>> + Send + Sync>,
        cleanup: Option<BoxFuture<()>>,
        keep: Option<Box<dyn std::any::Any + Send + Sync>>,
    ) -> Self {
        let storage = opener().await;
        Self {
            storage,
            opener,
            cleanup,
            _keep: keep,
        }
    }

    /// Another handle to the same store (its own connections).
    pub(crate) async fn another(&self) -> Arc<dyn Storage> {
        (self.opener)().await
    }

    pub(crate) async fn cleanup(mut self) {
        if let Some(c) = self.cleanup.take() {
            c.await;
        }
    }
}

/// One `#[tokio::test]` per suite case, in module `$module`. `$make` is an async fn returning
/// `Option<TestStore>` (`None`: the backend is unavailable here and the test
/// has said why).
#[macro_export]
macro_rules! storage_suite {
    ($module:ident: $make:path; $($case:ident),* $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(store) = $make().await else { return };
                    $crate::common::suite::$case(&store).await;
                    store.cleanup().await;
                }
            )*
        }
    };
    ($module:ident: $make:path) => {
        $crate::storage_suite!($module: $make;
            round_trip_keeps_every_field,
            end_alone_creates_the_span_and_late_states_never_regress,
            running_span_is_visible_then_completed,
            rewriting_a_batch_stores_nothing_twice,
            listing_is_newest_first_and_cursor_pages_cover_everything_once,
            every_filter_narrows_the_listing,
            summaries_count_spans_errors_and_top_level_tokens,
            a_continued_trace_is_listed_once_with_all_its_spans,
            unknown_trace_is_none,
            retention_removes_whole_old_traces_only,
            hostile_strings_round_trip,
            concurrent_writers_through_separate_handles_lose_nothing,
            non_finite_metrics_are_stored,
            strategies_and_lifecycle,
        );
    };
}
