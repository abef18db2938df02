//! A connection owned by a dedicated thread: blocking SQLite calls never run
//! on an async executor, and the jobs of one connection run in order.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use rusqlite::Connection;

use crate::error::{StorageError, StorageErrorKind};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Sends closures to the thread that owns a connection. The thread finishes
/// the queued jobs and closes the connection when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct ConnectionThread {
    jobs: mpsc::Sender<Job>,
}

impl ConnectionThread {
    pub(crate) fn spawn(role: &str, mut conn: Connection) -> Result<Self, StorageError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(format!("aiobs-sqlite-{role}"))
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| {
                StorageError::new(
                    StorageErrorKind::Other,
                    format!("could not start the SQLite {role} thread: {e}"),
                )
                .with_source(e)
            })?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the connection's thread and waits for its result.
    ///
    /// If the caller stops waiting (a timeout) before the job starts, the job
    /// is skipped; once started it runs to completion, so a later
    /// [`ConnectionThread::call`] always sees its effect.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R, StorageError>
    where
        F: FnOnce(&mut Connection) -> Result<R, StorageError> + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            if tx.is_closed() {
                return;
            }
            let result =
                std::panic::catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|_| {
                    Err(StorageError::new(
                        StorageErrorKind::Other,
                        "a SQLite operation panicked (a bug in aiobs); the connection was kept",
                    ))
                });
            // The caller may have stopped waiting; the work is done either way.
            let _receiver_gone = tx.send(result);
        });
        self.jobs.send(job).map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }
}

fn closed() -> StorageError {
    StorageError::new(
        StorageErrorKind::Closed,
        "the SQLite connection thread has stopped",
    )
}
