//! Configuration: credentials, endpoint, transport and delivery mode, from
//! code or from the standard `LANGFUSE_*` environment variables.

use std::time::Duration;

use aiobs_http::{ClientError, Env, EnvError, Secret, UrlError, base_url, process_env};

/// The Langfuse Cloud (EU) endpoint, used when no base URL is configured.
pub const DEFAULT_BASE_URL: &str = "https://cloud.langfuse.com";

/// Langfuse's default limit for one ingestion event (1 MB, as the official
/// SDKs' `LANGFUSE_MAX_EVENT_SIZE_BYTES`).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1_000_000;

/// The largest request body sent at once. The server accepts 3.5 MB per
/// ingestion batch; the official SDK stops at 2.5 MB, and so do we.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 2_500_000;

/// Which Langfuse endpoint receives the spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LangfuseTransport {
    /// `POST /api/public/otel/v1/traces` (OTLP protobuf, gzip) plus
    /// `POST /api/public/scores`: what current Langfuse SDKs send, and what the
    /// server's own API spec recommends. The default.
    #[default]
    Otlp,
    /// `POST /api/public/ingestion`: the legacy batch API with per-event
    /// 207 results, for older self-hosted servers.
    Ingestion,
}

impl LangfuseTransport {
    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "otlp" | "otel" => Some(Self::Otlp),
            "ingestion" | "legacy" => Some(Self::Ingestion),
            _ => None,
        }
    }
}

/// How soon ended spans are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeliveryMode {
    /// Collect spans for up to a second and send them together (fewest requests).
    #[default]
    Batched,
    /// Send each trace as it ends (a few milliseconds of batching): spans show
    /// up in Langfuse at once, at the cost of more requests.
    Realtime,
}

/// Why a [`LangfuseExporter`](crate::LangfuseExporter) could not be built.
/// Each message names the setting to fix, in code and in the environment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LangfuseBuildError {
    /// No public key was configured.
    #[error(
        "Langfuse public key is missing: call `.public_key(..)` on the builder or set LANGFUSE_PUBLIC_KEY (pk-lf-...)"
    )]
    MissingPublicKey,
    /// No secret key was configured.
    #[error(
        "Langfuse secret key is missing: call `.secret_key(..)` on the builder or set LANGFUSE_SECRET_KEY (sk-lf-...)"
    )]
    MissingSecretKey,
    /// The base URL is not an http(s) base URL.
    #[error(
        "invalid Langfuse base URL (`.base_url(..)`, LANGFUSE_BASE_URL or LANGFUSE_HOST; e.g. https://cloud.langfuse.com): {0}"
    )]
    InvalidBaseUrl(#[source] UrlError),
    /// Langfuse accepts environments of lowercase letters, digits, `-` and `_`,
    /// at most 40 characters, not starting with `langfuse`.
    #[error(
        "Langfuse environment {0:?} is invalid: use at most 40 lowercase letters, digits, '-' or '_', not starting with \"langfuse\""
    )]
    InvalidEnvironment(String),
    /// The environment configures the exporter only in part, or holds a
    /// value that cannot be used.
    #[error("the environment does not configure the Langfuse exporter: {0}")]
    Env(#[from] EnvError),
    /// The HTTP client could not be created, or a key cannot go in a header.
    #[error("could not create the HTTP client for Langfuse: {0}")]
    Client(#[source] ClientError),
}

impl From<ClientError> for LangfuseBuildError {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

/// The validated configuration of one exporter.
#[derive(Debug, Clone)]
pub(crate) struct LangfuseConfig {
    pub(crate) public_key: String,
    pub(crate) secret_key: Secret,
    /// Without a trailing slash.
    pub(crate) base_url: String,
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) transport: LangfuseTransport,
    pub(crate) mode: DeliveryMode,
    pub(crate) timeout: Duration,
    pub(crate) max_event_bytes: usize,
    pub(crate) max_request_bytes: usize,
    pub(crate) feedback_as_scores: bool,
}

/// Configures a [`LangfuseExporter`](crate::LangfuseExporter).
///
/// Start from [`LangfuseExporter::builder`](crate::LangfuseExporter::builder);
/// [`from_env`](Self::from_env) fills what code did not set from the
/// `LANGFUSE_*` variables. Code beats the environment, which beats the
/// defaults, whatever the order of the calls.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LangfuseExporterBuilder {
    pub(crate) public_key: Option<String>,
    pub(crate) secret_key: Option<Secret>,
    pub(crate) base_url: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) transport: Option<LangfuseTransport>,
    pub(crate) mode: DeliveryMode,
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_event_bytes: Option<usize>,
    pub(crate) max_request_bytes: Option<usize>,
    pub(crate) no_feedback: bool,
    /// An invalid environment variable, reported by `build`.
    pub(crate) env_error: Option<EnvError>,
}

/// The environment variables [`LangfuseExporterBuilder::from_env`] reads.
pub const ENV_VARS: [&str; 8] = [
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
    "LANGFUSE_BASE_URL",
    "LANGFUSE_HOST",
    "LANGFUSE_TRACING_ENVIRONMENT",
    "LANGFUSE_RELEASE",
    "LANGFUSE_TIMEOUT",
    "LANGFUSE_TRANSPORT",
];

/// The variables that together configure the exporter.
pub(crate) const REQUIRED_ENV: [&str; 2] = ["LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"];

/// Whether `lookup` configures the exporter: not at all, fully, or in part (an error).
pub(crate) fn configured_by(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<bool, LangfuseBuildError> {
    Ok(Env::new(&lookup).configured(&REQUIRED_ENV)?)
}

impl LangfuseExporterBuilder {
    /// Fills what code did not set from the process environment:
    ///
    /// | variable | sets |
    /// | --- | --- |
    /// | `LANGFUSE_PUBLIC_KEY`, `LANGFUSE_SECRET_KEY` | credentials |
    /// | `LANGFUSE_BASE_URL` (or `LANGFUSE_HOST`) | server, default `https://cloud.langfuse.com` |
    /// | `LANGFUSE_TRACING_ENVIRONMENT` | environment (`production`, `staging`, ...) |
    /// | `LANGFUSE_RELEASE` | release |
    /// | `LANGFUSE_TIMEOUT` | request timeout in seconds |
    /// | `LANGFUSE_TRANSPORT` | `otlp` (default) or `ingestion` |
    ///
    /// Blank variables count as unset. An unusable value (`LANGFUSE_TIMEOUT=soon`)
    /// is reported by `build`, naming the variable.
    pub fn from_env(self) -> Self {
        self.env_from(process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`
    /// (for tests and for configuration sources other than the process environment).
    pub fn env_from(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let env = Env::new(&lookup);
        fill(&mut self.public_key, || env.get("LANGFUSE_PUBLIC_KEY"));
        fill(&mut self.secret_key, || {
            env.get("LANGFUSE_SECRET_KEY").map(Secret::from)
        });
        fill(&mut self.base_url, || {
            env.first(&["LANGFUSE_BASE_URL", "LANGFUSE_HOST"])
        });
        fill(&mut self.environment, || {
            env.get("LANGFUSE_TRACING_ENVIRONMENT")
        });
        fill(&mut self.release, || env.get("LANGFUSE_RELEASE"));
        if self.timeout.is_none() {
            match env.parse("LANGFUSE_TIMEOUT", "a positive number of seconds", |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
            }) {
                Ok(t) => self.timeout = t,
                Err(e) => self.env_error = Some(e),
            }
        }
        if self.transport.is_none() {
            match env.parse(
                "LANGFUSE_TRANSPORT",
                "`otlp` or `ingestion`",
                LangfuseTransport::parse,
            ) {
                Ok(t) => self.transport = t,
                Err(e) => self.env_error = Some(e),
            }
        }
        self
    }

    /// The project's public key (`pk-lf-...`).
    pub fn public_key(mut self, key: impl Into<String>) -> Self {
        self.public_key = Some(key.into());
        self
    }
    /// The project's secret key (`sk-lf-...`).
    pub fn secret_key(mut self, key: impl Into<Secret>) -> Self {
        self.secret_key = Some(key.into());
        self
    }
    /// The Langfuse server, e.g. `https://us.cloud.langfuse.com` or a self-hosted URL.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }
    /// The environment every trace, observation and score is filed under.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }
    /// The release (application version) recorded on every trace.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }
    /// Which endpoint to send to (default [`LangfuseTransport::Otlp`]).
    pub fn transport(mut self, transport: LangfuseTransport) -> Self {
        self.transport = Some(transport);
        self
    }
    /// How soon to send (default [`DeliveryMode::Batched`]).
    pub fn delivery_mode(mut self, mode: DeliveryMode) -> Self {
        self.mode = mode;
        self
    }
    /// Shorthand for `delivery_mode(DeliveryMode::Realtime)`.
    pub fn realtime(self) -> Self {
        self.delivery_mode(DeliveryMode::Realtime)
    }
    /// Longest one HTTP request may take (default 20 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Largest encoded observation (default 1 MB); larger ones have their
    /// biggest payload fields truncated with a marker until they fit.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = Some(bytes);
        self
    }
    /// Largest request body (default 2.5 MB): bigger batches are split.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = Some(bytes);
        self
    }
    /// Whether user feedback is sent as Langfuse scores (default `true`).
    pub fn feedback_as_scores(mut self, on: bool) -> Self {
        self.no_feedback = !on;
        self
    }

    /// Validates the configuration.
    pub(crate) fn into_config(self) -> Result<LangfuseConfig, LangfuseBuildError> {
        if let Some(e) = self.env_error {
            return Err(e.into());
        }
        let public_key = non_empty(self.public_key).ok_or(LangfuseBuildError::MissingPublicKey)?;
        let secret_key = self
            .secret_key
            .filter(|s| !s.is_blank())
            .ok_or(LangfuseBuildError::MissingSecretKey)?;
        let base_url = base_url(self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))
            .map_err(LangfuseBuildError::InvalidBaseUrl)?;
        let environment = non_empty(self.environment)
            .map(validate_environment)
            .transpose()?;
        Ok(LangfuseConfig {
            public_key,
            secret_key,
            base_url,
            environment,
            release: non_empty(self.release),
            transport: self.transport.unwrap_or_default(),
            mode: self.mode,
            timeout: self.timeout.unwrap_or(Duration::from_secs(20)),
            max_event_bytes: self
                .max_event_bytes
                .unwrap_or(DEFAULT_MAX_EVENT_BYTES)
                .max(1024),
            max_request_bytes: self
                .max_request_bytes
                .unwrap_or(DEFAULT_MAX_REQUEST_BYTES)
                .max(1024),
            feedback_as_scores: !self.no_feedback,
        })
    }
}

/// Sets `slot` from `value` when code left it unset.
fn fill<T>(slot: &mut Option<T>, value: impl FnOnce() -> Option<T>) {
    if slot.is_none() {
        *slot = value();
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Langfuse's rule for environment names (`^(?!langfuse)[a-z0-9-_]+$`, ≤ 40).
fn validate_environment(env: String) -> Result<String, LangfuseBuildError> {
    let ok = env.len() <= 40
        && !env.starts_with("langfuse")
        && env
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(env)
    } else {
        Err(LangfuseBuildError::InvalidEnvironment(env))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_provides_credentials_and_host() {
        let cfg = LangfuseExporterBuilder::default()
            .env_from(lookup(&[
                ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
                ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
                ("LANGFUSE_HOST", "http://localhost:3000/"),
                ("LANGFUSE_TRACING_ENVIRONMENT", "staging"),
                ("LANGFUSE_RELEASE", "v9"),
                ("LANGFUSE_TIMEOUT", "2.5"),
                ("LANGFUSE_TRANSPORT", "ingestion"),
            ]))
            .into_config()
            .unwrap();
        assert_eq!(cfg.public_key, "pk-lf-1");
        assert_eq!(cfg.secret_key.expose(), "sk-lf-1");
        assert_eq!(cfg.base_url, "http://localhost:3000");
        assert_eq!(cfg.environment.as_deref(), Some("staging"));
        assert_eq!(cfg.release.as_deref(), Some("v9"));
        assert_eq!(cfg.timeout, Duration::from_millis(2500));
        assert_eq!(cfg.transport, LangfuseTransport::Ingestion);
        assert!(!format!("{cfg:?}").contains("sk-lf-1"), "secret leaked");
    }

    #[test]
    fn base_url_wins_over_host_and_code_wins_over_env() {
        let cfg = LangfuseExporterBuilder::default()
            .env_from(lookup(&[
                ("LANGFUSE_PUBLIC_KEY", "pk-env"),
                ("LANGFUSE_SECRET_KEY", "sk-env"),
                ("LANGFUSE_BASE_URL", "https://eu.example"),
                ("LANGFUSE_HOST", "https://host.example"),
            ]))
            .public_key("pk-code")
            .into_config()
            .unwrap();
        assert_eq!(cfg.base_url, "https://eu.example");
        assert_eq!(cfg.public_key, "pk-code");
        let before = LangfuseExporterBuilder::default()
            .public_key("pk-code")
            .transport(LangfuseTransport::Ingestion)
            .env_from(lookup(&[
                ("LANGFUSE_PUBLIC_KEY", "pk-env"),
                ("LANGFUSE_SECRET_KEY", "sk-env"),
                ("LANGFUSE_TRANSPORT", "otlp"),
            ]))
            .into_config()
            .unwrap();
        assert_eq!(before.public_key, "pk-code", "code wins in either order");
        assert_eq!(before.transport, LangfuseTransport::Ingestion);
        assert_eq!(
            cfg.transport,
            LangfuseTransport::Otlp,
            "OTLP is the default"
        );
    }

    #[test]
    fn not_configured_is_not_an_error_but_half_configured_is() {
        assert!(!configured_by(lookup(&[("LANGFUSE_HOST", "http://x")])).unwrap());
        let err = configured_by(lookup(&[("LANGFUSE_PUBLIC_KEY", "pk")])).unwrap_err();
        assert!(
            err.to_string().contains("LANGFUSE_SECRET_KEY is not set"),
            "{err}"
        );
        assert!(
            configured_by(lookup(&[
                ("LANGFUSE_PUBLIC_KEY", "pk"),
                ("LANGFUSE_SECRET_KEY", "sk")
            ]))
            .unwrap()
        );
    }

    #[test]
    fn defaults_to_langfuse_cloud() {
        let cfg = LangfuseExporterBuilder::default()
            .public_key("pk")
            .secret_key("sk")
            .into_config()
            .unwrap();
        assert_eq!(cfg.base_url, DEFAULT_BASE_URL);
        assert_eq!(cfg.max_event_bytes, DEFAULT_MAX_EVENT_BYTES);
    }

    #[test]
    fn missing_keys_are_clear_errors() {
        let e = LangfuseExporterBuilder::default()
            .env_from(lookup(&[("LANGFUSE_SECRET_KEY", "sk")]))
            .into_config()
            .unwrap_err();
        assert!(matches!(e, LangfuseBuildError::MissingPublicKey));
        assert!(e.to_string().contains("LANGFUSE_PUBLIC_KEY"), "{e}");
        let e = LangfuseExporterBuilder::default()
            .public_key("pk")
            .secret_key("   ")
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("LANGFUSE_SECRET_KEY"), "{e}");
    }

    #[test]
    fn rejects_bad_urls_environments_and_env_values() {
        let base = || {
            LangfuseExporterBuilder::default()
                .public_key("pk")
                .secret_key("sk")
        };
        for url in [
            "cloud.langfuse.com",
            "ftp://x",
            "https://",
            "https://h/x?y=1",
        ] {
            let e = base().base_url(url).into_config().unwrap_err();
            assert!(
                matches!(e, LangfuseBuildError::InvalidBaseUrl(_)),
                "{url}: {e}"
            );
        }
        for env in ["Production", "langfuse-x", "a b", &"x".repeat(41)] {
            let e = base().environment(env).into_config().unwrap_err();
            assert!(
                matches!(e, LangfuseBuildError::InvalidEnvironment(_)),
                "{env}: {e}"
            );
        }
        assert!(base().environment("prod_eu-1").into_config().is_ok());
        let e = LangfuseExporterBuilder::default()
            .env_from(lookup(&[
                ("LANGFUSE_PUBLIC_KEY", "pk"),
                ("LANGFUSE_SECRET_KEY", "sk"),
                ("LANGFUSE_TIMEOUT", "soon"),
            ]))
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("LANGFUSE_TIMEOUT"), "{e}");
    }
}
