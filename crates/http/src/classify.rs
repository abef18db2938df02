//! What an HTTP answer or a transport failure means for the pipeline worker.
//!
//! | answer | class |
//! |---|---|
//! | 2xx | delivered |
//! | 429, 503 | `Throttled(Retry-After)` (seconds or HTTP-date) |
//! | 408, 500, 502, 504 and other 5xx | `Transient` |
//! | 401, 403 | `Disabled` (credentials refused) |
//! | 413 | [`SendError::TooLarge`]: split the batch ([`crate::send_split`]) |
//! | 400, 404, 422, 501, 505, other 4xx, 3xx | `Permanent` |
//! | timeout, connection refused/reset, DNS failure | `Transient` |
//! | TLS handshake or certificate failure, invalid URL | `Permanent` |

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use aiobs_core::{ErrorClass, ExportError};
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// A failed request, as the sending exporter sees it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// `413 Payload Too Large`: the same items may go through in smaller requests.
    #[error("payload too large (HTTP 413): {0}")]
    TooLarge(String),
    /// The answer says some items failed without saying which (see
    /// [`crate::ItemAnswers::resolve`]): sending them again in smaller
    /// requests tells them apart.
    #[error("ambiguous per-item answer: {0}")]
    Ambiguous(String),
    /// Any other failure, classified for the worker.
    #[error(transparent)]
    Export(#[from] ExportError),
}

impl SendError {
    /// The class the worker would give it (413 is `Permanent` once it cannot
    /// be split; an ambiguous answer is `Transient`: nothing was counted
    /// delivered, and the items can be sent again).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::TooLarge(_) => ErrorClass::Permanent,
            Self::Ambiguous(_) => ErrorClass::Transient,
            Self::Export(e) => e.class,
        }
    }
}

impl From<SendError> for ExportError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::TooLarge(msg) => {
                ExportError::permanent(format!("payload too large (HTTP 413): {msg}"))
            }
            SendError::Ambiguous(msg) => {
                ExportError::transient(format!("ambiguous per-item answer: {msg}"))
            }
            SendError::Export(e) => e,
        }
    }
}

/// Most bytes of an error body quoted in an error message.
const BODY_EXCERPT: usize = 300;

/// Classifies an HTTP answer: `Ok(())` for 2xx, else the error to report.
/// `url` and `body` only feed the message.
///
/// ```
/// use std::time::Duration;
/// use aiobs_core::ErrorClass;
/// use aiobs_http::{SendError, classify_status};
/// use reqwest::header::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", HeaderValue::from_static("3"));
/// let err = classify_status(429, &headers, b"slow down", "http://x/v1/spans").unwrap_err();
/// assert_eq!(err.class(), ErrorClass::Throttled(Some(Duration::from_secs(3))));
/// assert!(classify_status(202, &HeaderMap::new(), b"", "u").is_ok());
/// assert!(matches!(classify_status(413, &HeaderMap::new(), b"", "u"), Err(SendError::TooLarge(_))));
/// ```
pub fn classify_status(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    url: &str,
) -> Result<(), SendError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let excerpt = body_excerpt(body);
    let what = format!("HTTP {status} {reason} from {url}{excerpt}");
    let err = match status {
        413 => return Err(SendError::TooLarge(what)),
        429 | 503 => ExportError::throttled(retry_after(headers, SystemTime::now()), what),
        300..=399 => ExportError::permanent(format!(
            "{what}: redirects are not followed; point the exporter at the final URL{}",
            headers
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(|l| format!(" ({l})"))
                .unwrap_or_default()
        )),
        401 | 403 => ExportError::disabled(format!(
            "{what}: the destination refused the credentials; check the token or keys"
        )),
        408 | 500..=599 if status != 501 && status != 505 => ExportError::transient(what),
        _ => ExportError::permanent(what),
    };
    Err(SendError::Export(err))
}

fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_EXCERPT)]);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// The class of one item's status in a multi-status (207) answer. Unlike a
/// whole answer, 401/403 on one item is `Permanent`: the credentials worked
/// for the rest of the batch.
pub fn item_status_class(status: u16) -> ErrorClass {
    match status {
        200..=299 => ErrorClass::Permanent, // callers only pass errors; never retry a success
        429 | 503 => ErrorClass::Throttled(None),
        408 | 500..=599 if status != 501 && status != 505 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// The `Retry-After` header, if present and valid, as a wait from `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// Parses a `Retry-After` value: delay-seconds (`"120"`, tolerating a
/// fraction) or an HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`), the latter
/// as the time left from `now` (zero if already past).
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use aiobs_http::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 07:27:50 GMT
/// assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
/// assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(10)));
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
            .or(Some(Duration::MAX));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Classifies a failure to get an answer at all (reqwest's error): timeouts,
/// refused or reset connections and DNS failures are `Transient`; TLS and
/// invalid-URL failures are `Permanent`, since retrying cannot fix them.
pub fn classify_transport_error(err: &reqwest::Error) -> ExportError {
    let url = err
        .url()
        .map(|u| u.as_str().to_owned())
        .unwrap_or_else(|| "<unknown url>".into());
    let host = err
        .url()
        .and_then(|u| u.host_str())
        .unwrap_or("<unknown host>")
        .to_owned();
    let chain = error_chain(err);
    let failure = if err.is_timeout() || chain_has(err, is_timeout_io) {
        TransportFailure::Timeout
    } else if err.is_builder() {
        TransportFailure::InvalidRequest
    } else if chain_has(err, is_tls) {
        TransportFailure::Tls
    } else if chain.contains("dns error") || chain.contains("failed to lookup address") {
        TransportFailure::Dns
    } else if chain_has(err, |e| {
        io_kind(e) == Some(std::io::ErrorKind::ConnectionRefused)
    }) {
        TransportFailure::Refused
    } else if err.is_redirect() {
        TransportFailure::Redirect
    } else {
        TransportFailure::Other
    };
    let message = match failure {
        TransportFailure::Timeout => format!("request to {url} timed out: {chain}"),
        TransportFailure::InvalidRequest => format!("invalid request to {url}: {chain}"),
        TransportFailure::Tls => format!(
            "TLS handshake with {host} failed (check the endpoint's scheme and certificate): {chain}"
        ),
        TransportFailure::Dns => format!("DNS lookup of {host} failed: {chain}"),
        TransportFailure::Refused => format!("connection to {url} refused: {chain}"),
        TransportFailure::Redirect => format!("too many redirects from {url}: {chain}"),
        TransportFailure::Other => format!("request to {url} failed: {chain}"),
    };
    let class = match failure {
        TransportFailure::InvalidRequest | TransportFailure::Tls | TransportFailure::Redirect => {
            ErrorClass::Permanent
        }
        _ => ErrorClass::Transient,
    };
    ExportError::new(class, message)
}

enum TransportFailure {
    Timeout,
    InvalidRequest,
    Tls,
    Dns,
    Refused,
    Redirect,
    Other,
}

/// The errors under `err`, outermost first. A custom `io::Error` reports its
/// inner error's *source* as its own, skipping the inner error itself (where
/// rustls puts its error), so it is followed through `get_ref` instead.
fn causes<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e: &&'a (dyn StdError + 'static)| match e
        .downcast_ref::<std::io::Error>()
    {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => e.source(),
    })
}

/// `outer: inner: innermost`, skipping messages repeated by wrappers.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in causes(err) {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn chain_has(
    err: &(dyn StdError + 'static),
    pred: impl Fn(&(dyn StdError + 'static)) -> bool,
) -> bool {
    causes(err).any(pred)
}

fn io_kind(e: &(dyn StdError + 'static)) -> Option<std::io::ErrorKind> {
    e.downcast_ref::<std::io::Error>().map(std::io::Error::kind)
}

fn is_timeout_io(e: &(dyn StdError + 'static)) -> bool {
    io_kind(e) == Some(std::io::ErrorKind::TimedOut)
}

fn is_tls(e: &(dyn StdError + 'static)) -> bool {
    e.is::<rustls::Error>()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use reqwest::header::HeaderValue;

    use super::*;

    fn class(status: u16) -> Option<ErrorClass> {
        classify_status(status, &HeaderMap::new(), b"", "http://h/x")
            .err()
            .map(|e| e.class())
    }

    #[test]
    fn statuses_map_to_classes() {
        for ok in [200, 201, 202, 204, 207] {
            assert_eq!(class(ok), None, "{ok}");
        }
        for t in [408, 500, 502, 504, 599] {
            assert_eq!(class(t), Some(ErrorClass::Transient), "{t}");
        }
        for p in [400, 404, 409, 422, 501, 505, 302] {
            assert_eq!(class(p), Some(ErrorClass::Permanent), "{p}");
        }
        assert_eq!(class(401), Some(ErrorClass::Disabled));
        assert_eq!(class(403), Some(ErrorClass::Disabled));
        assert_eq!(class(429), Some(ErrorClass::Throttled(None)));
        assert_eq!(class(503), Some(ErrorClass::Throttled(None)));
        assert!(matches!(
            classify_status(413, &HeaderMap::new(), b"", "u"),
            Err(SendError::TooLarge(_))
        ));
        assert_eq!(
            ExportError::from(SendError::TooLarge("x".into())).class,
            ErrorClass::Permanent
        );
    }

    #[test]
    fn message_names_status_url_and_body() {
        let err = classify_status(
            422,
            &HeaderMap::new(),
            b"{\"error\":\"bad span\"}",
            "http://h/v1/spans",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("422"), "{msg}");
        assert!(msg.contains("http://h/v1/spans"), "{msg}");
        assert!(msg.contains("bad span"), "{msg}");
        let long = vec![b'x'; 10_000];
        let msg = classify_status(400, &HeaderMap::new(), &long, "u")
            .unwrap_err()
            .to_string();
        assert!(msg.len() < 500, "{}", msg.len());
    }

    #[test]
    fn retry_after_seconds() {
        let now = SystemTime::now();
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        let err = classify_status(503, &h, b"", "u").unwrap_err();
        assert_eq!(
            err.class(),
            ErrorClass::Throttled(Some(Duration::from_secs(1)))
        );
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("NaN", now), None);
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::MAX),
            "absurd values saturate; the worker caps them at max_backoff"
        );
    }

    #[test]
    fn retry_after_http_date() {
        // Wed, 21 Oct 2015 07:28:00 GMT = 1445412480.
        let at = UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(
            parse_retry_after(date, at - Duration::from_secs(90)),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after(date, at + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
        // The obsolete RFC 850 and asctime forms are accepted too.
        assert_eq!(
            parse_retry_after(
                "Wednesday, 21-Oct-15 07:28:00 GMT",
                at - Duration::from_secs(1)
            ),
            Some(Duration::from_secs(1))
        );
        assert_eq!(parse_retry_after("Wed, 32 Oct 2015 07:28:00 GMT", at), None);
        let mut h = HeaderMap::new();
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        match classify_status(429, &h, b"", "u").unwrap_err().class() {
            ErrorClass::Throttled(Some(d)) => {
                assert!(
                    d > Duration::from_secs(27) && d <= Duration::from_secs(30),
                    "{d:?}"
                )
            }
            other => panic!("expected throttled with a delay, got {other:?}"),
        }
    }

    #[test]
    fn item_status_classes() {
        assert_eq!(item_status_class(429), ErrorClass::Throttled(None));
        assert_eq!(item_status_class(500), ErrorClass::Transient);
        assert_eq!(item_status_class(400), ErrorClass::Permanent);
        assert_eq!(item_status_class(401), ErrorClass::Permanent);
    }
}
