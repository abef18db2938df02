//! Configuration: the builder, `from_env`, and what can go wrong building.

use std::time::Duration;

use aiobs_core::{BatchPolicy, RetryPolicy, Signal, Signals};
use aiobs_http::{
    Auth, ClientError, Compression, Env, EnvError, HttpClientConfig, HttpTransport, Secret,
    UrlError, base_url, process_env,
};

use crate::exporter::CloudExporter;

/// The environment variable holding the ingest base URL.
pub const ENV_ENDPOINT: &str = "AIOBS_CLOUD_ENDPOINT";
/// The environment variable holding the bearer token.
pub const ENV_TOKEN: &str = "AIOBS_CLOUD_TOKEN";

/// Why a [`CloudExporter`] could not be built. Each message names the
/// setting to fix, in code and in the environment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudBuildError {
    /// No endpoint was given, in code or in the environment.
    #[error("no ingest endpoint: call .endpoint(..) or set {ENV_ENDPOINT}")]
    MissingEndpoint,
    /// No token was given, in code or in the environment.
    #[error("no ingest token: call .token(..) or set {ENV_TOKEN}")]
    MissingToken,
    /// The endpoint is not an `http://` or `https://` base URL.
    #[error("invalid ingest endpoint (.endpoint(..) or {ENV_ENDPOINT}): {0}")]
    InvalidEndpoint(#[source] UrlError),
    /// The environment configures the exporter only in part.
    #[error("the environment does not configure the cloud exporter: {0}")]
    Env(#[from] EnvError),
    /// The HTTP client could not be built, or the token cannot go in a header.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Configures a [`CloudExporter`]. Explicit settings beat the environment,
/// which beats the defaults, whatever the order of the calls.
///
/// ```
/// use std::time::Duration;
/// use aiobs_exporter_cloud::CloudExporter;
///
/// let exporter = CloudExporter::builder()
///     .endpoint("https://ingest.example.com")
///     .token("secret")
///     .include_started_spans(true)
///     .timeout(Duration::from_secs(5))
///     .build()?;
/// # drop(exporter);
/// # Ok::<(), aiobs_exporter_cloud::CloudBuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CloudExporterBuilder {
    pub(crate) name: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) token: Option<Secret>,
    pub(crate) signals: Signals,
    pub(crate) batch_policy: BatchPolicy,
    pub(crate) retry_policy: Option<RetryPolicy>,
    pub(crate) timeout: Duration,
    pub(crate) compression: Compression,
    pub(crate) max_body_bytes: usize,
    pub(crate) env_proxy: bool,
}

/// Every signal, in a fixed order.
const ALL_SIGNALS: [Signal; 7] = [
    Signal::SpanStarted,
    Signal::SpanUpdated,
    Signal::SpanEnded,
    Signal::Log,
    Signal::Metric,
    Signal::Score,
    Signal::Feedback,
];

/// Ended spans, logs, metrics, scores and feedback.
fn default_signals() -> Signals {
    ALL_SIGNALS
        .into_iter()
        .filter(|s| !matches!(s, Signal::SpanStarted | Signal::SpanUpdated))
        .collect()
}

impl Default for CloudExporterBuilder {
    fn default() -> Self {
        Self {
            name: "cloud".into(),
            endpoint: None,
            token: None,
            signals: default_signals(),
            batch_policy: BatchPolicy::default()
                .with_max_events(1000)
                .with_max_bytes(4 * 1024 * 1024)
                .with_max_wait(Duration::from_secs(2)),
            retry_policy: None,
            timeout: Duration::from_secs(10),
            compression: Compression::Gzip,
            max_body_bytes: 5 * 1024 * 1024,
            env_proxy: true,
        }
    }
}

impl CloudExporterBuilder {
    /// Fills the endpoint and token from `AIOBS_CLOUD_ENDPOINT` and
    /// `AIOBS_CLOUD_TOKEN` where they are set (not blank) and not already
    /// given in code.
    pub fn from_env(self) -> Self {
        self.env_from(process_env)
    }

    /// [`CloudExporterBuilder::from_env`] reading variables through `lookup`
    /// (tests, or configuration that is not the process environment).
    pub fn env_from(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let env = Env::new(&lookup);
        if self.endpoint.is_none() {
            self.endpoint = env.get(ENV_ENDPOINT);
        }
        if self.token.is_none() {
            self.token = env.get(ENV_TOKEN).map(Secret::from);
        }
        self
    }

    /// The ingest base URL; requests go to `{endpoint}/v1/spans`, `/v1/logs`, ...
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The bearer token.
    pub fn token(mut self, token: impl Into<Secret>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Renames the exporter (default `cloud`), e.g. to send to two ingest endpoints.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Also sends a span's `started` event (off by default: the `ended` event
    /// carries the complete span).
    pub fn include_started_spans(self, on: bool) -> Self {
        self.toggle(Signal::SpanStarted, on)
    }

    /// Also sends `updated` events of running spans (off by default).
    pub fn include_updated_spans(self, on: bool) -> Self {
        self.toggle(Signal::SpanUpdated, on)
    }

    /// Exactly which events to send (default: ended spans, logs, metrics,
    /// scores, feedback).
    pub fn signals(mut self, signals: Signals) -> Self {
        self.signals = signals;
        self
    }

    fn toggle(mut self, signal: Signal, on: bool) -> Self {
        let current = self.signals;
        self.signals = ALL_SIGNALS
            .into_iter()
            .filter(|s| {
                if *s == signal {
                    on
                } else {
                    current.contains(*s)
                }
            })
            .collect();
        self
    }

    /// How the pipeline batches events for this exporter (default: 1000
    /// events, 4 MiB estimated, 2 s).
    pub fn batch_policy(mut self, policy: BatchPolicy) -> Self {
        self.batch_policy = policy;
        self
    }

    /// How the pipeline retries (default: core's policy, with an attempt
    /// timeout 2 s above the request timeout).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = Some(policy);
        self
    }

    /// Longest one request may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Request body compression (default gzip).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Most bytes of JSON (before compression) in one request (default 5 MiB).
    /// A larger batch is sent in several requests; a single span larger than
    /// this is sent without its input, output and metadata (marked
    /// `aiobs_truncated`), and rejected if still too large.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes.max(1024);
        self
    }

    /// Whether to use `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` (default on).
    pub fn env_proxy(mut self, on: bool) -> Self {
        self.env_proxy = on;
        self
    }

    /// Validates the configuration and builds the exporter. No request is sent.
    pub fn build(self) -> Result<CloudExporter, CloudBuildError> {
        let endpoint = self
            .endpoint
            .as_deref()
            .ok_or(CloudBuildError::MissingEndpoint)
            .and_then(|e| base_url(e).map_err(CloudBuildError::InvalidEndpoint))?;
        let token = self
            .token
            .clone()
            .filter(|t| !t.is_blank())
            .ok_or(CloudBuildError::MissingToken)?;
        let client = HttpClientConfig::new("cloud")
            .timeout(self.timeout)
            .env_proxy(self.env_proxy)
            .build()?;
        let transport = HttpTransport::new(client)
            .with_auth(Auth::bearer(token))?
            .with_compression(self.compression);
        let retry = self.retry_policy.unwrap_or_else(|| {
            RetryPolicy::default().with_attempt_timeout(self.timeout + Duration::from_secs(2))
        });
        Ok(CloudExporter::new(self, endpoint, transport, retry))
    }
}

/// The variables that together configure the exporter.
pub(crate) const REQUIRED_ENV: [&str; 2] = [ENV_ENDPOINT, ENV_TOKEN];

/// Whether `lookup` configures the exporter: not at all, fully, or in part (an error).
pub(crate) fn configured_by(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<bool, CloudBuildError> {
    Ok(Env::new(&lookup).configured(&REQUIRED_ENV)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn env_supplies_what_code_did_not() {
        let b = CloudExporterBuilder::default()
            .token("from-code")
            .env_from(env(&[
                (ENV_ENDPOINT, "http://env:1/"),
                (ENV_TOKEN, "from-env"),
            ]));
        assert_eq!(b.endpoint.as_deref(), Some("http://env:1/"));
        assert_eq!(b.token.as_ref().map(Secret::expose), Some("from-code"));
        let e = b.build().unwrap();
        assert_eq!(e.endpoint(), "http://env:1");
    }

    #[test]
    fn missing_settings_name_the_variable() {
        let err = CloudExporterBuilder::default()
            .env_from(env(&[(ENV_TOKEN, "t")]))
            .build()
            .unwrap_err();
        assert!(matches!(err, CloudBuildError::MissingEndpoint));
        assert!(err.to_string().contains("AIOBS_CLOUD_ENDPOINT"), "{err}");
        let err = CloudExporterBuilder::default()
            .env_from(env(&[(ENV_ENDPOINT, "http://x"), (ENV_TOKEN, "  ")]))
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("AIOBS_CLOUD_TOKEN"), "{err}");
    }

    #[test]
    fn endpoints_are_validated() {
        for bad in ["ftp://x", "not a url", "http://x/?a=1", "localhost:8080"] {
            let r = CloudExporterBuilder::default()
                .endpoint(bad)
                .token("t")
                .build();
            assert!(
                matches!(r, Err(CloudBuildError::InvalidEndpoint(_))),
                "{bad}: {r:?}"
            );
        }
        let e = CloudExporterBuilder::default()
            .endpoint("https://ingest.example.com/base/")
            .token("t")
            .build()
            .unwrap();
        assert_eq!(e.endpoint(), "https://ingest.example.com/base");
    }

    #[test]
    fn token_with_newline_is_a_build_error_without_echo() {
        let err = CloudExporterBuilder::default()
            .endpoint("http://x")
            .token("abc\ndef")
            .build()
            .unwrap_err();
        assert!(!err.to_string().contains("abc"), "{err}");
        assert!(
            !format!("{:?}", CloudExporterBuilder::default().token("sekrit")).contains("sekrit")
        );
    }

    #[test]
    fn not_configured_is_not_an_error_but_half_configured_is() {
        assert!(!configured_by(env(&[])).unwrap());
        assert!(configured_by(env(&[(ENV_ENDPOINT, "http://x"), (ENV_TOKEN, "t")])).unwrap());
        let err = configured_by(env(&[(ENV_TOKEN, "t"), (ENV_ENDPOINT, " ")])).unwrap_err();
        assert!(
            err.to_string().contains("AIOBS_CLOUD_ENDPOINT is not set"),
            "{err}"
        );
    }

    #[test]
    fn span_lifecycle_toggles() {
        let b = CloudExporterBuilder::default();
        assert!(b.signals.contains(Signal::SpanEnded));
        assert!(!b.signals.contains(Signal::SpanStarted));
        assert!(b.signals.contains(Signal::Score));
        let b = b.include_started_spans(true).include_updated_spans(true);
        assert!(b.signals.contains(Signal::SpanStarted));
        assert!(b.signals.contains(Signal::SpanUpdated));
        assert!(b.signals.contains(Signal::Feedback));
        let b = b.include_started_spans(false);
        assert!(!b.signals.contains(Signal::SpanStarted));
        assert!(b.signals.contains(Signal::SpanUpdated));
    }
}
