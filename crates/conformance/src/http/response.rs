//! What the scripted server answers to one request.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

/// One scripted answer: a reply (status, headers, body), an abrupt connection
/// reset, or a hang; optionally after an artificial delay.
///
/// ```
/// use std::time::Duration;
/// use aiobs_conformance::http::ScriptedResponse;
///
/// let throttled = ScriptedResponse::too_many_requests(Some(Duration::from_secs(2)));
/// assert_eq!(throttled.status(), Some(429));
/// let slow_ok = ScriptedResponse::ok().with_delay(Duration::from_millis(50));
/// assert_eq!(slow_ok.delay(), Duration::from_millis(50));
/// assert_eq!(ScriptedResponse::reset().status(), None);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct ScriptedResponse {
    pub(crate) action: Action,
    pub(crate) delay: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    Reset,
    Hang,
}

impl Default for ScriptedResponse {
    /// `200` with the JSON body `{}`: what the server answers when nothing is scripted.
    fn default() -> Self {
        Self::ok()
    }
}

impl ScriptedResponse {
    /// `200` with the JSON body `{}`.
    pub fn ok() -> Self {
        Self::json(200, &Value::Object(serde_json::Map::new()))
    }

    /// A reply with this status and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            action: Action::Reply {
                status,
                headers: Vec::new(),
                body: Bytes::new(),
            },
            delay: Duration::ZERO,
        }
    }

    /// A reply with this status and a JSON body (`content-type: application/json`).
    pub fn json(status: u16, body: &Value) -> Self {
        Self::new(status)
            .with_header("content-type", "application/json")
            .with_body(body.to_string())
    }

    /// A reply with this status and a plain-text body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(body.into())
    }

    /// `207 Multi-Status` with this JSON body, e.g. a Langfuse ingestion result
    /// `{"successes": [...], "errors": [...]}`.
    pub fn multi_status(body: &Value) -> Self {
        Self::json(207, body)
    }

    /// `400 Bad Request`: a permanent failure.
    pub fn bad_request() -> Self {
        Self::text(400, "bad request")
    }

    /// `401 Unauthorized`: bad credentials.
    pub fn unauthorized() -> Self {
        Self::text(401, "unauthorized")
    }

    /// `413 Payload Too Large`.
    pub fn payload_too_large() -> Self {
        Self::text(413, "payload too large")
    }

    /// `429 Too Many Requests`, with `Retry-After` when given.
    pub fn too_many_requests(retry_after: Option<Duration>) -> Self {
        Self::text(429, "slow down").with_optional_retry_after(retry_after)
    }

    /// `500 Internal Server Error`: a transient failure.
    pub fn server_error() -> Self {
        Self::text(500, "internal server error")
    }

    /// `503 Service Unavailable`, with `Retry-After` when given.
    pub fn service_unavailable(retry_after: Option<Duration>) -> Self {
        Self::text(503, "service unavailable").with_optional_retry_after(retry_after)
    }

    /// Reads the whole request, then closes the connection abruptly (TCP RST)
    /// without answering: the client sees a connection reset.
    pub fn reset() -> Self {
        Self {
            action: Action::Reset,
            delay: Duration::ZERO,
        }
    }

    /// Reads the whole request and never answers, until the server is dropped.
    pub fn hang() -> Self {
        Self {
            action: Action::Hang,
            delay: Duration::ZERO,
        }
    }

    /// Adds a header to a reply (no effect on a reset or a hang).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Action::Reply { headers, .. } = &mut self.action {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// Sets the body of a reply (no effect on a reset or a hang).
    pub fn with_body(mut self, bytes: impl Into<Bytes>) -> Self {
        if let Action::Reply { body, .. } = &mut self.action {
            *body = bytes.into();
        }
        self
    }

    /// Adds `Retry-After` in whole seconds, rounded up (the header's HTTP form).
    pub fn with_retry_after(self, after: Duration) -> Self {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        self.with_header("retry-after", secs.to_string())
    }

    fn with_optional_retry_after(self, after: Option<Duration>) -> Self {
        match after {
            Some(d) => self.with_retry_after(d),
            None => self,
        }
    }

    /// Waits this long after reading the request before acting (artificial latency).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The reply's status; `None` for a reset or a hang.
    pub fn status(&self) -> Option<u16> {
        match &self.action {
            Action::Reply { status, .. } => Some(*status),
            Action::Reset | Action::Hang => None,
        }
    }

    /// The artificial delay.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// What this response does, as recorded on the captured request.
    pub(crate) fn answer(&self) -> Answer {
        match &self.action {
            Action::Reply { status, body, .. } => Answer::Status {
                status: *status,
                body: body.clone(),
            },
            Action::Reset => Answer::Reset,
            Action::Hang => Answer::Hang,
        }
    }
}

/// What the server planned to answer to a captured request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// A reply with this status and body (sent after the scripted delay, if
    /// the client still listened by then).
    Status {
        /// HTTP status.
        status: u16,
        /// Body sent.
        body: Bytes,
    },
    /// The connection was reset without an answer.
    Reset,
    /// No answer until the server was dropped.
    Hang,
}

impl Answer {
    /// The status of a reply; `None` for a reset or a hang.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Reset | Self::Hang => None,
        }
    }
    /// Whether the answer was a 2xx reply (the destination acknowledged the
    /// request, though a 207 may still reject some items).
    pub fn is_success(&self) -> bool {
        self.status().is_some_and(|s| (200..300).contains(&s))
    }
}
