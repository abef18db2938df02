//! Validating the base URL an exporter is configured with.

/// Why a configured base URL was refused. The message quotes the URL (a base
/// URL may not carry credentials, so quoting it leaks nothing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} is not a usable base URL: {reason}")]
#[non_exhaustive]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks a base URL (`http://` or `https://`, a host, no query, fragment,
/// credentials or whitespace) and returns it without trailing slashes, ready
/// for `format!("{base}/v1/spans")`. Surrounding whitespace is ignored.
///
/// ```
/// use aiobs_http::base_url;
///
/// assert_eq!(base_url(" https://cloud.langfuse.com/ ")?, "https://cloud.langfuse.com");
/// assert_eq!(base_url("http://localhost:3000/prefix")?, "http://localhost:3000/prefix");
/// for bad in ["cloud.langfuse.com", "ftp://x", "https://", "https://h/?a=1", "https://u:p@h", "https://h/a b"] {
///     assert!(base_url(bad).is_err(), "{bad}");
/// }
/// # Ok::<(), aiobs_http::UrlError>(())
/// ```
pub fn base_url(url: &str) -> Result<String, UrlError> {
    let refuse = |reason| UrlError {
        url: url.to_owned(),
        reason,
    };
    let trimmed = url.trim();
    if trimmed.chars().any(char::is_whitespace) {
        return Err(refuse("it contains whitespace"));
    }
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|_| refuse("it is not a URL; expected e.g. https://host:port"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refuse("the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(refuse("it has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(refuse("a base URL takes no query or fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refuse(
            "it carries credentials; configure them as the exporter's key or token instead",
        ));
    }
    Ok(trimmed.trim_end_matches('/').to_owned())
}
