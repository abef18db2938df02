//! Work that must not run on the pipeline's worker: blocking calls into
//! `opentelemetry_sdk` (`force_flush`, `shutdown`, a provider's span
//! processors) and the CPU-bound mapping and encoding of a batch. It goes
//! through core's supported way, [`ExporterContext::run_blocking`] (bounded
//! by the exporter's attempt timeout and in number of running calls).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

use aiobs_core::{ExportError, ExporterContext};

/// The context the pipeline gave at `init`, kept for [`run_blocking`].
pub(crate) type Context = OnceLock<ExporterContext>;

/// Runs blocking `f` off the worker, also bounded by `deadline`.
///
/// # Errors
/// A transient error when `f` does not return in time (it keeps running and
/// its result is dropped); `f`'s panic becomes a permanent error.
pub(crate) async fn run_blocking<T: Send + 'static>(
    ctx: &Context,
    deadline: Instant,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ExportError> {
    let run = async {
        match ctx.get() {
            Some(ctx) => ctx.run_blocking(f).await,
            // Before `init` (not reached through the pipeline).
            None => tokio::task::spawn_blocking(f)
                .await
                .map_err(|_| ExportError::permanent(format!("{what} panicked"))),
        }
    };
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, run).await.unwrap_or_else(|_| {
        Err(ExportError::transient(format!(
            "{what} did not finish before the deadline"
        )))
    })
}

/// Drives `work` (async: it sends HTTP requests) on a blocking thread, so
/// its CPU-bound parts do not delay the worker's thread. Dropping the
/// returned future cancels `work` with its requests — as an export on the
/// worker itself would be cancelled by the attempt timeout — so a late
/// answer from a hung backend can never deliver a batch a second time.
pub(crate) async fn drive<T, F>(ctx: &Context, work: F) -> Result<T, ExportError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ExportError>> + Send + 'static,
{
    let (Ok(runtime), Some(ctx)) = (tokio::runtime::Handle::try_current(), ctx.get()) else {
        // No tokio runtime to drive the requests from another thread, or
        // not initialised: run here.
        return work.await;
    };
    let (_cancel_on_drop, cancelled) = tokio::sync::oneshot::channel::<()>();
    ctx.run_blocking(move || {
        runtime.block_on(async {
            tokio::select! {
                result = work => result,
                _ = cancelled => Err(ExportError::transient("cancelled: the export call was dropped")),
            }
        })
    })
    .await?
}
