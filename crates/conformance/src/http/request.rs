//! What the scripted server records about each request it receives.

use std::io::Read;
use std::time::Instant;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::response::Answer;

/// One request received by [`ScriptedHttpServer`](super::ScriptedHttpServer),
/// with the answer the server planned for it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CapturedRequest {
    /// 0 for the first request the server received, then 1, 2, ...
    pub seq: usize,
    /// When the whole request had been read.
    pub received_at: Instant,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, e.g. `/api/public/ingestion`.
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// Headers in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as sent on the wire.
    pub raw_body: Bytes,
    /// The body, decompressed when `content-encoding` is `gzip` (otherwise
    /// the same bytes as `raw_body`).
    pub body: Bytes,
    /// Why the body could not be decompressed, if it could not (then `body`
    /// holds the raw bytes).
    pub decode_error: Option<String>,
    /// What the server answered (or planned to, for a delayed reply).
    pub answer: Answer,
}

impl CapturedRequest {
    pub(crate) fn new(
        seq: usize,
        method: String,
        path: String,
        query: Option<String>,
        headers: Vec<(String, String)>,
        raw_body: Bytes,
    ) -> Self {
        let gzip = headers
            .iter()
            .any(|(k, v)| k == "content-encoding" && v.trim().eq_ignore_ascii_case("gzip"));
        let (body, decode_error) = if gzip {
            match gunzip(&raw_body) {
                Ok(b) => (Bytes::from(b), None),
                Err(e) => (raw_body.clone(), Some(format!("gzip: {e}"))),
            }
        } else {
            (raw_body.clone(), None)
        };
        Self {
            seq,
            received_at: Instant::now(),
            method,
            path,
            query,
            headers,
            raw_body,
            body,
            decode_error,
            answer: Answer::Hang,
        }
    }

    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the body arrived gzip-compressed.
    pub fn is_gzip(&self) -> bool {
        self.header("content-encoding")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"))
    }

    /// The (decompressed) body as UTF-8 text, lossily.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The (decompressed) body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Whether the server answered this request with a 2xx status.
    pub fn was_acknowledged(&self) -> bool {
        self.answer.is_success()
    }
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}
