//! The HTTP client `opentelemetry-otlp` sends through: aiobs-http's client,
//! so every answer is classified by the workspace's one classifier, and
//! recorded for the export call that caused it.
//!
//! `opentelemetry-otlp` turns every failure into an `InternalFailure(String)`
//! and only logs a partial success. The exporter needs the truth: the status,
//! `Retry-After`, a 413, the `partial_success` body. So the client records the
//! classified answer in a slot scoped to the export call (a tokio task-local:
//! `opentelemetry-otlp` awaits the client inside the caller's future), and
//! the exporter reads it once the OTLP exporter returns.

use std::cell::RefCell;
use std::io::Read;

use aiobs_http::{HttpReply, HttpTransport, SendError};
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{
    CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT,
};
use opentelemetry_http::HttpError;

use crate::config::OtelBuildError;

tokio::task_local! {
    /// The answers of the requests made by the export call running in this task.
    static ANSWERS: RefCell<Vec<Result<HttpReply, SendError>>>;
}

/// Runs `call` (an export through `opentelemetry-otlp`) and returns its
/// result with the classified answers of the requests it made, in order.
pub(crate) async fn with_answers<F: Future>(
    call: F,
) -> (F::Output, Vec<Result<HttpReply, SendError>>) {
    ANSWERS
        .scope(RefCell::new(Vec::new()), async move {
            let out = call.await;
            let answers = ANSWERS.with(|a| std::mem::take(&mut *a.borrow_mut()));
            (out, answers)
        })
        .await
}

/// The `opentelemetry_http::HttpClient` the OTLP exporters use.
///
/// `opentelemetry-otlp` reads `OTEL_EXPORTER_OTLP_HEADERS` and
/// `OTEL_EXPORTER_OTLP_COMPRESSION` by itself, whatever its builder was told,
/// so the transport enforces the resolved configuration (code over
/// environment, and the environment only when asked for):
/// - headers: the request keeps only `content-type`; every other header is
///   the configured set, and the user agent names both libraries;
/// - compression: the body goes out gzip-compressed exactly when configured
///   (a body `opentelemetry-otlp` compressed on its own is decompressed).
#[derive(Debug, Clone)]
pub(crate) struct OtlpTransport {
    http: HttpTransport,
    headers: HeaderMap,
    gzip: bool,
}

impl OtlpTransport {
    pub(crate) fn new(
        http: HttpTransport,
        headers: &[(String, String)],
        gzip: bool,
    ) -> Result<Self, OtelBuildError> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let invalid = |reason: String| OtelBuildError::InvalidHeader {
                name: name.clone(),
                reason,
            };
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
            let mut v = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
            v.set_sensitive(true);
            map.insert(n, v);
        }
        map.insert(
            USER_AGENT,
            HeaderValue::from_str(&format!(
                "{} OTel-OTLP-Exporter-Rust/0.33",
                aiobs_http::user_agent(crate::exporter::NAME)
            ))
            .map_err(|e| OtelBuildError::Exporter(e.to_string()))?,
        );
        Ok(Self {
            http,
            headers: map,
            gzip,
        })
    }

    /// The body as configured: gzip-compressed or not, whatever it came as.
    fn body(&self, body: Bytes, came_gzipped: bool) -> Result<Bytes, HttpError> {
        match (came_gzipped, self.gzip) {
            (false, true) => Ok(aiobs_http::gzip(&body, 6)),
            (true, false) => {
                let mut plain = Vec::with_capacity(body.len() * 4);
                flate2::read::GzDecoder::new(&body[..])
                    .read_to_end(&mut plain)
                    .map_err(|e| format!("decompressing opentelemetry-otlp's body: {e}"))?;
                Ok(Bytes::from(plain))
            }
            _ => Ok(body),
        }
    }
}

#[async_trait]
impl opentelemetry_http::HttpClient for OtlpTransport {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let mut headers = self.headers.clone();
        if let Some(v) = parts.headers.get(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, v.clone());
        }
        let came_gzipped = parts
            .headers
            .get(CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let body = self.body(body, came_gzipped)?;
        if self.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let builder = self
            .http
            .client()
            .request(parts.method, &url)
            .headers(headers)
            .body(body);
        let answer = self.http.execute(builder, &url).await;
        let response = match &answer {
            Ok(reply) => {
                let mut r = http::Response::new(reply.body.clone());
                *r.status_mut() =
                    http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::OK);
                *r.headers_mut() = reply.headers.clone();
                Ok(r)
            }
            Err(e) => Err(Box::<dyn std::error::Error + Send + Sync>::from(
                e.to_string(),
            )),
        };
        // Outside an export call (there is none today) the answer is only returned.
        let _outside_export = ANSWERS.try_with(|a| a.borrow_mut().push(answer));
        response
    }
}
