//! Opening the store for the viewer: read-only, and never created.

use std::sync::Arc;

use aiobs_exporter_default::{DatabaseUrl, SqliteConfig, SqliteStorage, Storage};

use crate::Error;

/// Opens the store at `url` for reading.
///
/// A SQLite file is opened read-only (the viewer can serve a file it may not
/// write) and must exist: a path with nothing there is an error naming it,
/// not a new empty store. An in-memory store is refused (it would be empty).
/// PostgreSQL is reached as the other commands reach it; the viewer only ever
/// reads through it.
pub(crate) async fn open_read_only(url: &DatabaseUrl) -> Result<Arc<dyn Storage>, Error> {
    let store: Arc<dyn Storage> = match url {
        DatabaseUrl::SqliteFile(path) => {
            if !path.exists() {
                return Err(format!(
                    "no store at {}: nothing has been traced there yet (run `aiobs demo`, or \
                     pass --db with the store your application writes)",
                    path.display()
                )
                .into());
            }
            Arc::new(SqliteStorage::open_with(
                SqliteConfig::file(path).read_only(),
            )?)
        }
        DatabaseUrl::SqliteMemory => {
            return Err(
                "an in-memory store (sqlite::memory:) would be new and empty: \
                        serve a SQLite file or a postgres:// URL"
                    .into(),
            );
        }
        other => other.open()?,
    };
    store.init().await?;
    Ok(store)
}
