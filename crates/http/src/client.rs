//! Building the `reqwest::Client` every HTTP exporter uses.
//!
//! TLS is reqwest's rustls setup: the aws-lc-rs provider and the platform's
//! certificate verifier. reqwest's own retries are turned off: the pipeline
//! worker is the one place that retries.

use std::time::Duration;

/// Why an HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// reqwest refused the client configuration.
    #[error("could not build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// A header given to the configuration is not a valid HTTP header.
    #[error("invalid HTTP header {name:?}: {reason}")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Settings for [`HttpClientConfig::build`].
///
/// Defaults: 10 s per request (connect, send, answer), 5 s to connect, idle
/// connections kept 90 s, proxies from `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`
/// (honouring `NO_PROXY`), HTTP/1.1, no automatic retry, redirects not
/// followed (a 3xx is a permanent error naming the status).
///
/// ```
/// use std::time::Duration;
/// use aiobs_http::HttpClientConfig;
///
/// let client = HttpClientConfig::new("cloud")
///     .timeout(Duration::from_secs(5))
///     .build()?;
/// # drop(client);
/// # Ok::<(), aiobs_http::ClientError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpClientConfig {
    user_agent: String,
    timeout: Duration,
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    env_proxy: bool,
}

impl HttpClientConfig {
    /// Defaults for the exporter named `exporter`; its user agent is
    /// `aiobs-<exporter>/<version>`.
    pub fn new(exporter: &str) -> Self {
        Self {
            user_agent: user_agent(exporter),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(90),
            env_proxy: true,
        }
    }

    /// Replaces the user agent.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Longest one request may take, from connecting to the end of the answer.
    /// Keep it below the exporter's `RetryPolicy::attempt_timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Longest connecting (TCP and TLS) may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an idle connection stays in the pool.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Whether to use the proxies named by `HTTP_PROXY`, `HTTPS_PROXY` and
    /// `ALL_PROXY` (and their lowercase forms), except for hosts in `NO_PROXY`.
    /// On by default.
    pub fn env_proxy(mut self, on: bool) -> Self {
        self.env_proxy = on;
        self
    }

    /// The request timeout set on the client.
    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// Builds the client.
    pub fn build(&self) -> Result<reqwest::Client, ClientError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(self.user_agent.clone())
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(self.pool_idle_timeout)
            .tcp_nodelay(true)
            .retry(reqwest::retry::never())
            // A followed 301/302 turns a POST into a body-less GET whose 2xx
            // would count as delivered: answer redirects as errors instead.
            .redirect(reqwest::redirect::Policy::none());
        if !self.env_proxy {
            builder = builder.no_proxy();
        }
        builder.build().map_err(ClientError::Build)
    }
}

/// `aiobs-<exporter>/<version>`.
pub fn user_agent(exporter: &str) -> String {
    format!("aiobs-{exporter}/{}", env!("CARGO_PKG_VERSION"))
}
