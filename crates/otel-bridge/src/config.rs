//! Configuration: the builder, the standard `OTEL_*` environment variables,
//! and what can go wrong building. Code beats the environment, which beats
//! the defaults of the OTLP exporter specification.

use std::fmt;
use std::time::Duration;

use aiobs_core::semconv::{self, ENV_CAPTURE_MESSAGE_CONTENT, ENV_STABILITY_OPT_IN, Stability};
use aiobs_core::{BatchPolicy, RetryPolicy};
use aiobs_http::{Env, EnvError, UrlError, base_url};
use percent_encoding::percent_decode_str;

/// `OTEL_EXPORTER_OTLP_ENDPOINT`: base URL; `/v1/traces` and `/v1/metrics` are appended.
pub const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the full traces URL, used as is.
pub const ENV_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: the full metrics URL, used as is.
pub const ENV_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,key2=value2`, values percent-decoded.
pub const ENV_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`: like [`ENV_HEADERS`], for traces only (wins over it).
pub const ENV_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
/// `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` (default) or `http/json`.
pub const ENV_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`: like [`ENV_PROTOCOL`], for traces only.
pub const ENV_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
/// `OTEL_EXPORTER_OTLP_COMPRESSION`: `gzip` or `none` (default).
pub const ENV_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
/// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`: like [`ENV_COMPRESSION`], for traces only.
pub const ENV_TRACES_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
/// `OTEL_EXPORTER_OTLP_TIMEOUT`: milliseconds per request (default 10000).
pub const ENV_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`: like [`ENV_TIMEOUT`], for traces only.
pub const ENV_TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
/// `OTEL_SERVICE_NAME`: the `service.name` resource attribute.
pub const ENV_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value,...` resource attributes, values percent-decoded.
pub const ENV_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// Every variable [`OtelExporterBuilder::from_env`] reads.
pub const ENV_VARS: [&str; 16] = [
    ENV_ENDPOINT,
    ENV_TRACES_ENDPOINT,
    ENV_METRICS_ENDPOINT,
    ENV_HEADERS,
    ENV_TRACES_HEADERS,
    ENV_PROTOCOL,
    ENV_TRACES_PROTOCOL,
    ENV_COMPRESSION,
    ENV_TRACES_COMPRESSION,
    ENV_TIMEOUT,
    ENV_TRACES_TIMEOUT,
    ENV_SERVICE_NAME,
    ENV_RESOURCE_ATTRIBUTES,
    ENV_CAPTURE_MESSAGE_CONTENT,
    ENV_STABILITY_OPT_IN,
    "NO_PROXY",
];

/// The OTLP/HTTP base URL when none is configured (the specification's default).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";
/// The request timeout when none is configured (the specification's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How spans are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// `http/protobuf`: `application/x-protobuf` (the default).
    #[default]
    HttpProtobuf,
    /// `http/json`: `application/json` (OTLP/JSON: hex ids, integers as strings).
    HttpJson,
}

impl OtlpProtocol {
    /// The environment value: `http/protobuf` or `http/json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::HttpJson => "http/json",
        }
    }

    fn to_otlp(self) -> opentelemetry_otlp::Protocol {
        match self {
            Self::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
            Self::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
        }
    }
}

/// How request bodies are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OtlpCompression {
    /// Sent as encoded (the specification's default).
    #[default]
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// Why an [`OtelExporter`](crate::OtelExporter) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelBuildError {
    /// An endpoint is not an `http://` or `https://` URL.
    #[error(
        "OTLP endpoint {0}; expected e.g. http://localhost:4318 ({ENV_ENDPOINT}) or http://collector:4318/v1/traces ({ENV_TRACES_ENDPOINT})"
    )]
    InvalidEndpoint(#[source] UrlError),
    /// An environment variable holds a value that cannot be used (header
    /// values are not quoted: they may hold credentials).
    #[error("invalid OpenTelemetry environment: {0}")]
    Env(#[from] EnvError),
    /// A header cannot be sent (invalid name or value).
    #[error("invalid OTLP header {name:?}: {reason}")]
    InvalidHeader {
        /// The header name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client or the OTLP exporter could not be created.
    #[error("could not create the OTLP exporter: {0}")]
    Exporter(String),
}

/// Configures an [`OtelExporter`](crate::OtelExporter).
///
/// Start from [`OtelExporter::builder`](crate::OtelExporter::builder)
/// (defaults only) and call [`OtelExporterBuilder::from_env`] to read the
/// standard variables; setters win over the environment whenever they are
/// called.
///
/// | setting | code | environment | default |
/// |---|---|---|---|
/// | traces URL | [`traces_endpoint`](Self::traces_endpoint), else [`endpoint`](Self::endpoint) + `/v1/traces` | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces` | `http://localhost:4318/v1/traces` |
/// | metrics URL | [`metrics_endpoint`](Self::metrics_endpoint), else the base + `/v1/metrics` | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else the base + `/v1/metrics` | `http://localhost:4318/v1/metrics` |
/// | headers | [`header`](Self::header) (wins per name) | `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, `OTEL_EXPORTER_OTLP_HEADERS` | none |
/// | encoding | [`protocol`](Self::protocol) | `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` |
/// | compression | [`compression`](Self::compression) | `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, `OTEL_EXPORTER_OTLP_COMPRESSION` | none |
/// | request timeout | [`timeout`](Self::timeout) | `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, `OTEL_EXPORTER_OTLP_TIMEOUT` (ms) | 10 s |
/// | `service.name` | [`service_name`](Self::service_name) | `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES` | the pipeline's service name |
/// | resource attributes | [`resource_attribute`](Self::resource_attribute) (wins per key) | `OTEL_RESOURCE_ATTRIBUTES` | none |
/// | content capture | [`capture_content`](Self::capture_content) | `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` | off |
/// | semconv version | [`stability`](Self::stability) | `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` | latest names + `gen_ai.system` |
/// | GenAI metrics | [`genai_metrics`](Self::genai_metrics) | — | off |
///
/// gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`) is refused with a clear error:
/// this exporter speaks OTLP/HTTP (port 4318).
///
/// ```
/// use std::time::Duration;
/// use aiobs_otel_bridge::{OtelExporter, OtlpCompression, OtlpProtocol};
///
/// let exporter = OtelExporter::builder()
///     .endpoint("http://collector:4318")
///     .header("authorization", "Bearer secret")
///     .protocol(OtlpProtocol::HttpJson)
///     .compression(OtlpCompression::Gzip)
///     .timeout(Duration::from_secs(5))
///     .service_name("weather-agent")
///     .build()?;
/// assert_eq!(exporter.traces_url(), "http://collector:4318/v1/traces");
/// # Ok::<(), aiobs_otel_bridge::OtelBuildError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct OtelExporterBuilder {
    pub(crate) name: String,
    endpoint: Option<String>,
    traces_endpoint: Option<String>,
    metrics_endpoint: Option<String>,
    env_endpoint: Option<(&'static str, String)>,
    env_traces_endpoint: Option<String>,
    env_metrics_endpoint: Option<String>,
    headers: Vec<(String, String)>,
    env_headers: Vec<(String, String)>,
    protocol: Option<OtlpProtocol>,
    compression: Option<OtlpCompression>,
    timeout: Option<Duration>,
    pub(crate) service_name: Option<String>,
    resource: Vec<(String, String)>,
    env_resource: Vec<(String, String)>,
    capture_content: Option<bool>,
    stability: Option<Stability>,
    pub(crate) genai_metrics: bool,
    pub(crate) batch_policy: BatchPolicy,
    retry_policy: Option<RetryPolicy>,
    env_proxy: bool,
    env_error: Option<EnvError>,
}

impl fmt::Debug for OtelExporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values often carry credentials: names only.
        let names = |h: &[(String, String)]| h.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        f.debug_struct("OtelExporterBuilder")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("traces_endpoint", &self.traces_endpoint)
            .field("headers", &names(&self.headers))
            .field("env_headers", &names(&self.env_headers))
            .field("protocol", &self.protocol)
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("service_name", &self.service_name)
            .field("genai_metrics", &self.genai_metrics)
            .finish_non_exhaustive()
    }
}

impl Default for OtelExporterBuilder {
    fn default() -> Self {
        Self {
            name: crate::exporter::NAME.into(),
            endpoint: None,
            traces_endpoint: None,
            metrics_endpoint: None,
            env_endpoint: None,
            env_traces_endpoint: None,
            env_metrics_endpoint: None,
            headers: Vec::new(),
            env_headers: Vec::new(),
            protocol: None,
            compression: None,
            timeout: None,
            service_name: None,
            resource: Vec::new(),
            env_resource: Vec::new(),
            capture_content: None,
            stability: None,
            genai_metrics: false,
            // OTLP collectors accept 4 MiB requests by default (gRPC's limit,
            // which the collector applies to HTTP too); stay under it.
            batch_policy: BatchPolicy::default()
                .with_max_events(512)
                .with_max_bytes(3 * 1024 * 1024)
                .with_max_wait(std::time::Duration::from_secs(2)),
            retry_policy: None,
            env_proxy: true,
            env_error: None,
        }
    }
}

/// The signal-specific variable, else the general one, with the name that held it.
fn either(
    env: &Env<'_>,
    specific: &'static str,
    general: &'static str,
) -> Option<(&'static str, String)> {
    env.get(specific)
        .map(|v| (specific, v))
        .or_else(|| env.get(general).map(|v| (general, v)))
}

impl OtelExporterBuilder {
    /// Fills what code did not set from the standard variables ([`ENV_VARS`]).
    /// A malformed value is reported by [`build`](Self::build).
    pub fn from_env(self) -> Self {
        self.env_from(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) reading variables through `lookup`
    /// (tests, or configuration that is not the process environment).
    pub fn env_from(mut self, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let env = Env::new(&lookup);
        if let Err(e) = self.read_env(&env) {
            self.env_error.get_or_insert(e);
        }
        self
    }

    fn read_env(&mut self, env: &Env<'_>) -> Result<(), EnvError> {
        self.env_traces_endpoint = env.get(ENV_TRACES_ENDPOINT);
        self.env_metrics_endpoint = env.get(ENV_METRICS_ENDPOINT);
        self.env_endpoint = env.get(ENV_ENDPOINT).map(|v| (ENV_ENDPOINT, v));
        // Both the general and the traces headers apply; the specific ones win per name.
        self.env_headers.clear();
        for name in [ENV_HEADERS, ENV_TRACES_HEADERS] {
            if let Some(v) = env.get(name) {
                let parsed = parse_key_values(&v).map_err(|reason| {
                    invalid_env(name, "<hidden: may hold credentials>", reason)
                })?;
                merge(&mut self.env_headers, parsed);
            }
        }
        if let Some(v) = env.get(ENV_RESOURCE_ATTRIBUTES) {
            self.env_resource = parse_key_values(&v)
                .map_err(|reason| invalid_env(ENV_RESOURCE_ATTRIBUTES, &v, reason))?;
        }
        if self.service_name.is_none() {
            self.service_name = env.get(ENV_SERVICE_NAME).or_else(|| {
                self.env_resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            });
        }
        if self.protocol.is_none()
            && let Some((name, v)) = either(env, ENV_TRACES_PROTOCOL, ENV_PROTOCOL)
        {
            self.protocol = Some(match v.trim().to_ascii_lowercase().as_str() {
                "http/protobuf" => OtlpProtocol::HttpProtobuf,
                "http/json" => OtlpProtocol::HttpJson,
                "grpc" => {
                    return Err(invalid_env(
                        name,
                        &v,
                        "http/protobuf or http/json (gRPC is not supported by aiobs-otel-bridge: it speaks OTLP/HTTP, port 4318)",
                    ));
                }
                _ => return Err(invalid_env(name, &v, "http/protobuf or http/json")),
            });
        }
        if self.compression.is_none()
            && let Some((name, v)) = either(env, ENV_TRACES_COMPRESSION, ENV_COMPRESSION)
        {
            self.compression = Some(match v.trim().to_ascii_lowercase().as_str() {
                "gzip" => OtlpCompression::Gzip,
                "none" => OtlpCompression::None,
                _ => return Err(invalid_env(name, &v, "gzip or none")),
            });
        }
        if self.timeout.is_none()
            && let Some((name, v)) = either(env, ENV_TRACES_TIMEOUT, ENV_TIMEOUT)
        {
            let ms: u64 = v
                .trim()
                .parse()
                .map_err(|_| invalid_env(name, &v, "a whole number of milliseconds"))?;
            self.timeout = Some(Duration::from_millis(ms));
        }
        if self.capture_content.is_none() {
            self.capture_content = Some(semconv::capture_content_from(
                env.get(ENV_CAPTURE_MESSAGE_CONTENT).as_deref(),
            ));
        }
        if self.stability.is_none() {
            self.stability = Some(Stability::from_opt_in(
                env.get(ENV_STABILITY_OPT_IN).as_deref(),
            ));
        }
        Ok(())
    }

    /// The OTLP/HTTP base URL (e.g. `http://collector:4318`): spans go to
    /// `{endpoint}/v1/traces`, metrics to `{endpoint}/v1/metrics`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The full traces URL, used as is (wins over [`endpoint`](Self::endpoint)).
    pub fn traces_endpoint(mut self, url: impl Into<String>) -> Self {
        self.traces_endpoint = Some(url.into());
        self
    }

    /// The full metrics URL, used as is.
    pub fn metrics_endpoint(mut self, url: impl Into<String>) -> Self {
        self.metrics_endpoint = Some(url.into());
        self
    }

    /// Adds a header to every request (wins over a variable's header of the same name).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        merge(&mut self.headers, vec![(name.into(), value.into())]);
        self
    }

    /// How spans are encoded.
    pub fn protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// How request bodies are compressed.
    pub fn compression(mut self, compression: OtlpCompression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// Longest one request may take, from connecting to the end of the answer.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The `service.name` resource attribute.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds a resource attribute (wins over `OTEL_RESOURCE_ATTRIBUTES` for the same key).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        merge(&mut self.resource, vec![(key.into(), value.into())]);
        self
    }

    /// Whether prompts, completions, instructions, tool arguments and results
    /// (and other spans' input and output) are sent. Off by default: they may
    /// hold personal data.
    pub fn capture_content(mut self, on: bool) -> Self {
        self.capture_content = Some(on);
        self
    }

    /// Which version of the GenAI conventions is written (see [`Stability`]).
    pub fn stability(mut self, stability: Stability) -> Self {
        self.stability = Some(stability);
        self
    }

    /// Also export the `gen_ai.client.token.usage` and
    /// `gen_ai.client.operation.duration` histograms over OTLP metrics
    /// (cumulative, sent on every flush that has something new). Off by default.
    pub fn genai_metrics(mut self, on: bool) -> Self {
        self.genai_metrics = on;
        self
    }

    /// Renames the exporter (default `otel`), e.g. to send to two collectors.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// How the pipeline batches spans for this exporter (default: 512 spans,
    /// the `BatchSpanProcessor`'s batch, 3 MiB estimated, 2 s).
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

    /// Whether to use the proxies of `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`
    /// (honouring `NO_PROXY`). On by default.
    pub fn env_proxy(mut self, on: bool) -> Self {
        self.env_proxy = on;
        self
    }

    /// Validates everything and resolves the precedence rules.
    pub(crate) fn resolve(&self) -> Result<Resolved, OtelBuildError> {
        if let Some(e) = &self.env_error {
            return Err(OtelBuildError::Env(e.clone()));
        }
        let base = |code: &Option<String>| -> Result<Option<String>, OtelBuildError> {
            code.as_deref()
                .map(|u| check_url(u).map(|u| u.trim_end_matches('/').to_owned()))
                .transpose()
        };
        let code_base = base(&self.endpoint)?;
        let env_base = base(&self.env_endpoint.as_ref().map(|(_, v)| v.clone()))?;
        let signal = |full_code: &Option<String>,
                      full_env: &Option<String>,
                      path: &str|
         -> Result<String, OtelBuildError> {
            if let Some(u) = full_code {
                return check_url(u);
            }
            if let Some(b) = &code_base {
                return Ok(format!("{b}{path}"));
            }
            if let Some(u) = full_env {
                return check_url(u);
            }
            Ok(format!(
                "{}{path}",
                env_base.as_deref().unwrap_or(DEFAULT_ENDPOINT)
            ))
        };
        let traces_url = signal(
            &self.traces_endpoint,
            &self.env_traces_endpoint,
            "/v1/traces",
        )?;
        let metrics_url = signal(
            &self.metrics_endpoint,
            &self.env_metrics_endpoint,
            "/v1/metrics",
        )?;
        let mut headers = self.env_headers.clone();
        merge(&mut headers, self.headers.clone());
        for (name, value) in &headers {
            let invalid = |reason: String| OtelBuildError::InvalidHeader {
                name: name.clone(),
                reason,
            };
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
            http::HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
        }
        let mut resource = self.env_resource.clone();
        merge(&mut resource, self.resource.clone());
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        Ok(Resolved {
            resource,
            traces_url,
            metrics_url,
            headers,
            protocol: self.protocol.unwrap_or_default(),
            compression: self.compression.unwrap_or_default(),
            timeout,
            capture_content: self.capture_content.unwrap_or(false),
            stability: self.stability.unwrap_or_default(),
            retry_policy: self.retry_policy.unwrap_or_else(|| {
                RetryPolicy::default().with_attempt_timeout(timeout + Duration::from_secs(2))
            }),
            env_proxy: self.env_proxy,
        })
    }
}

/// The configuration after precedence and validation.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// Resource attributes: the environment's, then code's (winning per key).
    pub(crate) resource: Vec<(String, String)>,
    pub(crate) traces_url: String,
    pub(crate) metrics_url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) protocol: OtlpProtocol,
    pub(crate) compression: OtlpCompression,
    pub(crate) timeout: Duration,
    pub(crate) capture_content: bool,
    pub(crate) stability: Stability,
    pub(crate) retry_policy: RetryPolicy,
    pub(crate) env_proxy: bool,
}

impl Resolved {
    pub(crate) fn otlp_protocol(&self) -> opentelemetry_otlp::Protocol {
        self.protocol.to_otlp()
    }
}

fn invalid_env(name: &'static str, value: &str, expected: &'static str) -> EnvError {
    EnvError::Invalid {
        name,
        value: value.to_owned(),
        expected,
    }
}

/// An OTLP URL: a base URL (`{endpoint}`) or a signal's full URL, checked
/// by the workspace's one validator; trailing slashes removed.
fn check_url(url: &str) -> Result<String, OtelBuildError> {
    base_url(url).map_err(OtelBuildError::InvalidEndpoint)
}

/// Replaces or appends each entry of `new` in `into`, by key.
fn merge(into: &mut Vec<(String, String)>, new: Vec<(String, String)>) {
    for (k, v) in new {
        match into.iter_mut().find(|(ek, _)| ek.eq_ignore_ascii_case(&k)) {
            Some(e) => e.1 = v,
            None => into.push((k, v)),
        }
    }
}

/// Parses `key=value,key2=value2` (the W3C-baggage-like list of
/// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`): items trimmed,
/// values percent-decoded, empty items skipped.
pub(crate) fn parse_key_values(text: &str) -> Result<Vec<(String, String)>, &'static str> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or("comma-separated key=value pairs")?;
        let k = k.trim();
        if k.is_empty() {
            return Err("comma-separated key=value pairs with non-empty keys");
        }
        let v = percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| "percent-encoded UTF-8 values")?;
        merge(&mut out, vec![(k.to_owned(), v.into_owned())]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn code_beats_env_beats_defaults() {
        let defaults = OtelExporterBuilder::default()
            .env_from(env(&[]))
            .resolve()
            .unwrap();
        assert_eq!(defaults.traces_url, "http://localhost:4318/v1/traces");
        assert_eq!(defaults.metrics_url, "http://localhost:4318/v1/metrics");
        assert_eq!(defaults.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(defaults.compression, OtlpCompression::None);
        assert_eq!(defaults.timeout, Duration::from_secs(10));
        assert!(!defaults.capture_content);

        let vars = [
            (ENV_ENDPOINT, "http://env:4318/"),
            (ENV_HEADERS, "authorization=Bearer%20env,x-tenant=acme"),
            (ENV_TRACES_HEADERS, "x-tenant=traces"),
            (ENV_PROTOCOL, "http/json"),
            (ENV_COMPRESSION, "gzip"),
            (ENV_TRACES_TIMEOUT, "2500"),
            (ENV_TIMEOUT, "9000"),
            (
                ENV_RESOURCE_ATTRIBUTES,
                "service.name=from-attrs,deployment.environment.name=prod",
            ),
            (ENV_CAPTURE_MESSAGE_CONTENT, "true"),
            (ENV_STABILITY_OPT_IN, "gen_ai_latest_experimental"),
        ];
        let from_env = OtelExporterBuilder::default().env_from(env(&vars));
        let r = from_env.resolve().unwrap();
        assert_eq!(r.traces_url, "http://env:4318/v1/traces");
        assert_eq!(r.metrics_url, "http://env:4318/v1/metrics");
        assert_eq!(
            r.headers,
            vec![
                ("authorization".to_owned(), "Bearer env".to_owned()),
                ("x-tenant".to_owned(), "traces".to_owned())
            ],
            "values percent-decoded; the traces variable wins per name"
        );
        assert_eq!(r.protocol, OtlpProtocol::HttpJson);
        assert_eq!(r.compression, OtlpCompression::Gzip);
        assert_eq!(r.timeout, Duration::from_millis(2500));
        assert!(r.capture_content);
        assert_eq!(r.stability, Stability::LatestExperimental);
        assert_eq!(from_env.service_name.as_deref(), Some("from-attrs"));

        let coded = OtelExporterBuilder::default()
            .endpoint("http://code:4318")
            .header("Authorization", "Bearer code")
            .protocol(OtlpProtocol::HttpProtobuf)
            .compression(OtlpCompression::None)
            .timeout(Duration::from_secs(1))
            .capture_content(false)
            .service_name("from-code")
            .env_from(env(&[
                (ENV_TRACES_ENDPOINT, "http://env-traces/v1/t"),
                (ENV_SERVICE_NAME, "from-env"),
            ]));
        let r = coded.resolve().unwrap();
        assert_eq!(
            r.traces_url, "http://code:4318/v1/traces",
            "code base beats env full URL"
        );
        assert_eq!(r.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(r.timeout, Duration::from_secs(1));
        assert!(!r.capture_content);
        assert_eq!(coded.service_name.as_deref(), Some("from-code"));

        let full = OtelExporterBuilder::default()
            .env_from(env(&[
                (ENV_ENDPOINT, "http://base"),
                (ENV_TRACES_ENDPOINT, "http://t/custom"),
            ]))
            .resolve()
            .unwrap();
        assert_eq!(
            full.traces_url, "http://t/custom",
            "the signal URL is used as is"
        );
        assert_eq!(full.metrics_url, "http://base/v1/metrics");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (name, value, needle) in [
            (ENV_PROTOCOL, "grpc", "gRPC is not supported"),
            (ENV_PROTOCOL, "thrift", "http/protobuf or http/json"),
            (ENV_COMPRESSION, "zip", "gzip or none"),
            (ENV_TIMEOUT, "10s", "milliseconds"),
            (ENV_HEADERS, "novalue", "key=value"),
        ] {
            let err = OtelExporterBuilder::default()
                .env_from(env(&[(name, value)]))
                .resolve()
                .unwrap_err()
                .to_string();
            assert!(err.contains(name) && err.contains(needle), "{err}");
        }
        let hidden = OtelExporterBuilder::default()
            .env_from(env(&[(ENV_HEADERS, "authorization=secret,broken")]))
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            !hidden.contains("secret"),
            "header values never shown: {hidden}"
        );
        for url in ["localhost:4318", "ftp://x", "http://"] {
            let err = OtelExporterBuilder::default()
                .endpoint(url)
                .resolve()
                .unwrap_err();
            assert!(
                matches!(err, OtelBuildError::InvalidEndpoint { .. }),
                "{url}: {err}"
            );
        }
        let err = OtelExporterBuilder::default()
            .header("bad header", "v")
            .resolve()
            .unwrap_err();
        assert!(matches!(err, OtelBuildError::InvalidHeader { .. }), "{err}");
    }

    #[test]
    fn key_value_lists() {
        assert_eq!(
            parse_key_values(" a = 1 , b=x%2Cy,, a=2").unwrap(),
            vec![("a".into(), "2".into()), ("b".into(), "x,y".into())]
        );
        assert!(parse_key_values("=v").is_err());
        assert!(parse_key_values("k=%FF").is_err());
    }
}
