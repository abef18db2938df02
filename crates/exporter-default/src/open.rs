//! Choosing a store from a URL or the environment.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{StorageError, StorageErrorKind};
use crate::storage::Storage;

/// The environment variable naming the store: `sqlite://path`,
/// `sqlite::memory:`, `postgres://...`, or a plain file path.
pub const DATABASE_URL_ENV: &str = "AIOBS_DATABASE_URL";

/// The store used when nothing else is configured.
pub const DEFAULT_DATABASE: &str = "./aiobs.db";

/// A parsed store location.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatabaseUrl {
    /// A SQLite file.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database.
    SqliteMemory,
    /// A PostgreSQL connection string (`postgres://user@host:port/db?...`).
    Postgres(String),
}

impl FromStr for DatabaseUrl {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, StorageError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(StorageError::invalid("empty database URL"));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_owned()));
        }
        let Some(rest) = s.strip_prefix("sqlite:") else {
            if let Some((scheme, _)) = s.split_once("://") {
                return Err(StorageError::invalid(format!(
                    "unsupported database URL scheme {scheme:?}: use sqlite://<path>, sqlite::memory: or postgres://..."
                )));
            }
            return Ok(Self::SqliteFile(PathBuf::from(s)));
        };
        let path = rest.strip_prefix("//").unwrap_or(rest);
        match path {
            ":memory:" => Ok(Self::SqliteMemory),
            "" => Err(StorageError::invalid("sqlite URL without a path")),
            p => Ok(Self::SqliteFile(PathBuf::from(p))),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SqliteFile(p) => write!(f, "sqlite://{}", p.display()),
            Self::SqliteMemory => f.write_str("sqlite::memory:"),
            // Never print a password.
            Self::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

impl DatabaseUrl {
    /// Opens the store. SQLite files are opened and migrated now; PostgreSQL
    /// connects lazily, at the first operation (which runs the migrations).
    pub fn open(&self) -> Result<Arc<dyn Storage>, StorageError> {
        match self {
            #[cfg(feature = "sqlite")]
            Self::SqliteFile(p) => Ok(Arc::new(crate::SqliteStorage::open(p)?)),
            #[cfg(feature = "sqlite")]
            Self::SqliteMemory => Ok(Arc::new(crate::SqliteStorage::in_memory()?)),
            #[cfg(feature = "postgres")]
            Self::Postgres(url) => Ok(Arc::new(crate::PostgresStorage::new(
                crate::PostgresConfig::new(url.clone()),
            )?)),
            #[allow(unreachable_patterns)]
            other => Err(StorageError::new(
                StorageErrorKind::InvalidInput,
                format!(
                    "{other}: this build of aiobs-exporter-default lacks the Cargo feature for it"
                ),
            )),
        }
    }
}

/// Opens the store at `url` (see [`DatabaseUrl`]).
pub fn open(url: &str) -> Result<Arc<dyn Storage>, StorageError> {
    url.parse::<DatabaseUrl>()?.open()
}

/// The store named by [`DATABASE_URL_ENV`], else [`DEFAULT_DATABASE`].
pub fn database_url_from_env() -> Result<DatabaseUrl, StorageError> {
    match std::env::var(DATABASE_URL_ENV) {
        Ok(v) if !v.trim().is_empty() => v.parse(),
        _ => DEFAULT_DATABASE.parse(),
    }
}

pub(crate) fn open_from_env() -> Result<Arc<dyn Storage>, StorageError> {
    database_url_from_env()?.open()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_accepted_forms() {
        let file = |p: &str| DatabaseUrl::SqliteFile(PathBuf::from(p));
        assert_eq!(
            "./aiobs.db".parse::<DatabaseUrl>().unwrap(),
            file("./aiobs.db")
        );
        assert_eq!(
            "sqlite://rel/x.db".parse::<DatabaseUrl>().unwrap(),
            file("rel/x.db")
        );
        assert_eq!(
            "sqlite:///abs/x.db".parse::<DatabaseUrl>().unwrap(),
            file("/abs/x.db")
        );
        assert_eq!("sqlite:x.db".parse::<DatabaseUrl>().unwrap(), file("x.db"));
        assert_eq!(
            "sqlite::memory:".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::SqliteMemory
        );
        assert_eq!(
            "sqlite://:memory:".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::SqliteMemory
        );
        assert!(matches!(
            "postgresql://u@h/db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        for bad in ["", "mysql://x", "sqlite://"] {
            assert_eq!(
                bad.parse::<DatabaseUrl>().unwrap_err().kind(),
                StorageErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }

    #[test]
    fn display_hides_passwords() {
        let u: DatabaseUrl = "postgres://app:s3cret@db:5432/x".parse().unwrap();
        assert_eq!(u.to_string(), "postgres://app:***@db:5432/x");
    }
}
