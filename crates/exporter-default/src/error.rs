//! Storage errors, classified so the pipeline knows whether retrying can help.

// Used by the backends; a build with neither feature has only the types.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

use aiobs_core::{ErrorClass, ExportError};

/// What kind of failure a [`StorageError`] is. The kind decides the
/// [`ErrorClass`] the exporter reports to the pipeline worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageErrorKind {
    /// Another writer holds a lock, or the server is overloaded: retry later.
    Busy,
    /// No space left (disk full, or the configured size cap reached): retry
    /// later, space may be freed.
    DiskFull,
    /// The server cannot be reached or the connection dropped: retry later.
    Unavailable,
    /// The store is read-only (opened read-only, read-only file or server).
    ReadOnly,
    /// The store holds a schema newer than this version of aiobs understands.
    /// Nothing is written, so nothing is corrupted: upgrade aiobs.
    SchemaTooNew,
    /// The caller passed something invalid (a malformed cursor, URL or schema name).
    InvalidInput,
    /// Stored data could not be read back (not aiobs data, or damaged).
    Corrupt,
    /// The storage was closed or its connection thread is gone.
    Closed,
    /// Any other database error (a bug or a misconfiguration): retrying will not help.
    Other,
}

impl StorageErrorKind {
    /// How the pipeline should treat a failed export with this error.
    pub fn class(self) -> ErrorClass {
        match self {
            Self::Busy | Self::DiskFull | Self::Unavailable => ErrorClass::Transient,
            Self::SchemaTooNew => ErrorClass::Disabled,
            Self::ReadOnly | Self::InvalidInput | Self::Corrupt | Self::Closed | Self::Other => {
                ErrorClass::Permanent
            }
        }
    }

    /// Whether retrying the same operation later can succeed.
    pub fn is_transient(self) -> bool {
        self.class().is_retryable()
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Busy => "database busy or locked",
            Self::DiskFull => "database or disk is full",
            Self::Unavailable => "database unavailable",
            Self::ReadOnly => "database is read-only",
            Self::SchemaTooNew => "database schema is newer than this aiobs",
            Self::InvalidInput => "invalid input",
            Self::Corrupt => "stored data is unreadable",
            Self::Closed => "storage closed",
            Self::Other => "database error",
        }
    }
}

/// A failed storage operation.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", kind.describe())]
pub struct StorageError {
    kind: StorageErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StorageError {
    /// An error of this kind.
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> StorageErrorKind {
        self.kind
    }

    /// The detail message (without the kind's description).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying later can succeed.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }

    /// The same error, its message prefixed with what was being done.
    pub(crate) fn context(mut self, doing: impl std::fmt::Display) -> Self {
        self.message = format!("{doing}: {}", self.message);
        self
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StorageErrorKind::InvalidInput, message)
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        Self::new(StorageErrorKind::Corrupt, message)
    }

    pub(crate) fn schema_too_new(found: i64, supported: i64, store: &str) -> Self {
        Self::new(
            StorageErrorKind::SchemaTooNew,
            format!(
                "{store} has aiobs schema version {found}, this aiobs supports up to {supported}; \
                 upgrade aiobs (nothing was written)"
            ),
        )
    }
}

impl From<StorageError> for ExportError {
    fn from(e: StorageError) -> Self {
        let class = e.kind.class();
        let message = e.to_string();
        let mut out = ExportError::new(class, message);
        out.source = Some(Box::new(e));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(StorageErrorKind::Busy.class(), ErrorClass::Transient);
        assert_eq!(StorageErrorKind::DiskFull.class(), ErrorClass::Transient);
        assert_eq!(StorageErrorKind::ReadOnly.class(), ErrorClass::Permanent);
        assert_eq!(StorageErrorKind::SchemaTooNew.class(), ErrorClass::Disabled);
        let e: ExportError = StorageError::new(StorageErrorKind::Busy, "locked").into();
        assert_eq!(e.class, ErrorClass::Transient);
        assert_eq!(e.message, "database busy or locked: locked");
    }
}
