//! Configuration: the DSN, release, environment and limits, from code or from
//! the standard `SENTRY_*` environment variables.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use aiobs_core::TrackingLimits;
use sentry::types::Dsn;

/// Relay's default limit for one event or transaction payload (`max_event_size`, 1 MiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// The environment variables [`SentryExporterBuilder::from_env`] reads.
pub const ENV_VARS: [&str; 3] = ["SENTRY_DSN", "SENTRY_ENVIRONMENT", "SENTRY_RELEASE"];

/// Why a [`SentryExporter`](crate::SentryExporter) could not be built.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SentryBuildError {
    /// No DSN was configured.
    #[error(
        "Sentry DSN is missing: call `.dsn(..)` on the builder or set SENTRY_DSN (https://<public key>@<host>/<project id>)"
    )]
    MissingDsn,
    /// The DSN could not be parsed.
    #[error(
        "Sentry DSN {dsn:?} is invalid ({reason}); expected https://<public key>@<host>/<project id>"
    )]
    InvalidDsn {
        /// The DSN with any secret key removed.
        dsn: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be created.
    #[error("could not create the HTTP client for Sentry: {0}")]
    Http(String),
}

/// The validated configuration of one exporter.
#[derive(Clone)]
pub(crate) struct SentryConfig {
    pub(crate) dsn: Dsn,
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) server_name: Option<String>,
    pub(crate) capture_content: bool,
    pub(crate) timeout: Duration,
    pub(crate) max_event_bytes: usize,
    pub(crate) tracking: TrackingLimits,
}

impl fmt::Debug for SentryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentryConfig")
            .field("dsn", &redacted(&self.dsn.to_string()))
            .field("environment", &self.environment)
            .field("release", &self.release)
            .field("server_name", &self.server_name)
            .field("capture_content", &self.capture_content)
            .field("timeout", &self.timeout)
            .field("max_event_bytes", &self.max_event_bytes)
            .finish_non_exhaustive()
    }
}

/// A DSN without its legacy secret key (`https://public:secret@host/1`).
fn redacted(dsn: &str) -> String {
    match (dsn.find("://"), dsn.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &dsn[s + 3..at];
            match creds.split_once(':') {
                Some((public, _)) => format!("{}{public}:<redacted>{}", &dsn[..s + 3], &dsn[at..]),
                None => dsn.to_owned(),
            }
        }
        _ => dsn.to_owned(),
    }
}

/// Configures a [`SentryExporter`](crate::SentryExporter).
///
/// Start from [`SentryExporter::builder`](crate::SentryExporter::builder)
/// (defaults only) or [`SentryExporterBuilder::from_env`] (defaults, then
/// `SENTRY_*` variables); setters called afterwards win over both.
#[derive(Clone)]
#[must_use]
pub struct SentryExporterBuilder {
    dsn: Option<String>,
    environment: Option<String>,
    release: Option<String>,
    server_name: Option<String>,
    capture_content: bool,
    timeout: Duration,
    max_event_bytes: usize,
    tracking: TrackingLimits,
}

impl Default for SentryExporterBuilder {
    fn default() -> Self {
        Self {
            dsn: None,
            environment: None,
            release: None,
            server_name: None,
            capture_content: true,
            timeout: Duration::from_secs(10),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            tracking: TrackingLimits::default(),
        }
    }
}

impl fmt::Debug for SentryExporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentryExporterBuilder")
            .field("dsn", &self.dsn.as_deref().map(redacted))
            .field("environment", &self.environment)
            .field("release", &self.release)
            .field("capture_content", &self.capture_content)
            .finish_non_exhaustive()
    }
}

impl SentryExporterBuilder {
    /// Defaults overlaid with the process environment:
    ///
    /// | variable | sets |
    /// | --- | --- |
    /// | `SENTRY_DSN` | where to send (`https://<public key>@<host>/<project id>`) |
    /// | `SENTRY_ENVIRONMENT` | `environment` on every event |
    /// | `SENTRY_RELEASE` | `release` on every event |
    ///
    /// Empty variables count as unset, as in Sentry's own SDKs.
    pub fn from_env() -> Self {
        Self::from_lookup(aiobs_http::process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let env = aiobs_http::Env::new(&lookup);
        Self {
            dsn: env.get("SENTRY_DSN"),
            environment: env.get("SENTRY_ENVIRONMENT"),
            release: env.get("SENTRY_RELEASE"),
            ..Self::default()
        }
    }

    /// The project's DSN, e.g. `https://abc123@o1.ingest.sentry.io/42`.
    pub fn dsn(mut self, dsn: impl Into<String>) -> Self {
        self.dsn = Some(dsn.into());
        self
    }
    /// The environment (`production`, `staging`, ...) on every event.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }
    /// The release (e.g. `my-agent@1.2.3`) on every event.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }
    /// The `server_name` on every event (none by default).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }
    /// Whether span inputs and outputs (prompts, completions, tool arguments
    /// and results) are sent as `gen_ai.input.messages`, `gen_ai.output.messages`,
    /// `gen_ai.tool.call.arguments`/`result`. On by default; `hide_input`/`hide_output`
    /// and the `SensitiveDataFilter` apply before this exporter sees a span.
    pub fn capture_content(mut self, on: bool) -> Self {
        self.capture_content = on;
        self
    }
    /// Longest one HTTP request may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Largest event or transaction payload (default 1 MiB, Relay's limit):
    /// larger ones have their longest data values truncated with a marker.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes.max(4096);
        self
    }
    /// Bounds on the children held until their root ends (gathering is always
    /// on for Sentry; see `TrackingLimits`).
    pub fn tracking_limits(mut self, limits: TrackingLimits) -> Self {
        self.tracking = limits;
        self
    }

    /// Validates the configuration.
    pub(crate) fn into_config(self) -> Result<SentryConfig, SentryBuildError> {
        let raw = self
            .dsn
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .ok_or(SentryBuildError::MissingDsn)?;
        let dsn = Dsn::from_str(&raw).map_err(|e| SentryBuildError::InvalidDsn {
            dsn: redacted(&raw),
            reason: e.to_string(),
        })?;
        let non_empty =
            |s: Option<String>| s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        Ok(SentryConfig {
            dsn,
            environment: non_empty(self.environment),
            release: non_empty(self.release),
            server_name: non_empty(self.server_name),
            capture_content: self.capture_content,
            timeout: self.timeout,
            max_event_bytes: self.max_event_bytes,
            tracking: self.tracking.with_gather(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_provides_dsn_release_and_environment() {
        let cfg = SentryExporterBuilder::from_lookup(lookup(&[
            ("SENTRY_DSN", "https://pk@o1.ingest.example.io/42"),
            ("SENTRY_ENVIRONMENT", "staging"),
            ("SENTRY_RELEASE", "agent@1.2.3"),
        ]))
        .into_config()
        .unwrap();
        assert_eq!(cfg.dsn.public_key(), "pk");
        assert_eq!(cfg.dsn.project_id().to_string(), "42");
        assert_eq!(
            cfg.dsn.envelope_api_url().as_str(),
            "https://o1.ingest.example.io/api/42/envelope/"
        );
        assert_eq!(cfg.environment.as_deref(), Some("staging"));
        assert_eq!(cfg.release.as_deref(), Some("agent@1.2.3"));
        assert!(
            cfg.tracking.gather,
            "Sentry gathers children into transactions"
        );
    }

    #[test]
    fn code_wins_over_env() {
        let cfg = SentryExporterBuilder::from_lookup(lookup(&[
            ("SENTRY_DSN", "https://pk@h/1"),
            ("SENTRY_RELEASE", "env"),
        ]))
        .release("code")
        .into_config()
        .unwrap();
        assert_eq!(cfg.release.as_deref(), Some("code"));
    }

    #[test]
    fn missing_or_malformed_dsn_is_a_clear_error() {
        let e = SentryExporterBuilder::from_lookup(lookup(&[("SENTRY_DSN", "  ")]))
            .into_config()
            .unwrap_err();
        assert!(matches!(e, SentryBuildError::MissingDsn));
        assert!(e.to_string().contains("SENTRY_DSN"), "{e}");
        for bad in [
            "not a dsn",
            "https://host/1",
            "https://pk@host/",
            "ftp://pk@host/1",
        ] {
            let e = SentryExporterBuilder::default()
                .dsn(bad)
                .into_config()
                .unwrap_err();
            assert!(
                matches!(e, SentryBuildError::InvalidDsn { .. }),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains("invalid"), "{e}");
        }
    }

    #[test]
    fn secret_keys_never_printed() {
        let raw = "https://pk:very-secret@host/1";
        let b = SentryExporterBuilder::default().dsn(raw);
        assert!(!format!("{b:?}").contains("very-secret"));
        let cfg = b.into_config().unwrap();
        assert!(!format!("{cfg:?}").contains("very-secret"), "{cfg:?}");
        let e = SentryExporterBuilder::default()
            .dsn("ftp://pk:very-secret@host/1")
            .into_config()
            .unwrap_err();
        assert!(!e.to_string().contains("very-secret"), "{e}");
    }
}
