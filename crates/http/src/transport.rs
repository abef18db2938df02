//! Sending one request and classifying what came back.

use bytes::Bytes;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::auth::Auth;
use crate::body::Compression;
use crate::classify::{SendError, classify_status, classify_transport_error};
use crate::client::ClientError;

/// A 2xx answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpReply {
    /// The status (200..=299; 207 means some items may have been refused).
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Bytes,
}

impl HttpReply {
    /// The body parsed as JSON, or `None` when it is empty or not JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A client with what every request of one exporter carries: authentication,
/// compression, fixed headers. Cheap to clone (the connection pool is shared).
///
/// ```no_run
/// use aiobs_http::{Auth, HttpClientConfig, HttpTransport};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let transport = HttpTransport::new(HttpClientConfig::new("cloud").build()?)
///     .with_auth(Auth::bearer("secret"))?;
/// let reply = transport
///     .post("https://ingest.example.com/v1/spans", "application/json", br#"{"items":[]}"#.to_vec())
///     .await?; // a 2xx, or a SendError classified for the pipeline worker
/// assert!((200..300).contains(&reply.status));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    headers: HeaderMap,
    compression: Compression,
}

impl HttpTransport {
    /// Wraps a client (see [`crate::HttpClientConfig`]). Bodies are gzip-compressed by default.
    pub fn new(client: reqwest::Client) -> Self {
        Self {
            client,
            headers: HeaderMap::new(),
            compression: Compression::default(),
        }
    }

    /// Authenticates every request.
    pub fn with_auth(mut self, auth: Auth) -> Result<Self, ClientError> {
        if let Some((name, value)) = auth.header()? {
            self.headers.insert(name, value);
        }
        Ok(self)
    }

    /// Adds a header to every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidHeader {
            name: name.to_owned(),
            reason,
        };
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let v = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
        self.headers.insert(n, v);
        Ok(self)
    }

    /// Sets how request bodies are compressed.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The compression in use.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The underlying client, for requests this type does not cover.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// POSTs `body` (compressed per [`HttpTransport::with_compression`]) and
    /// returns the 2xx answer, or the failure classified for the worker.
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: impl AsRef<[u8]>,
    ) -> Result<HttpReply, SendError> {
        self.post_encoded(url, content_type, self.encode(body.as_ref()))
            .await
    }

    /// Compresses a body per this transport's setting (for callers that want
    /// to measure or reuse the encoded bytes).
    pub fn encode(&self, body: &[u8]) -> Bytes {
        self.compression.encode(body)
    }

    /// POSTs a body already encoded with [`HttpTransport::encode`].
    pub async fn post_encoded(
        &self,
        url: &str,
        content_type: &str,
        encoded: Bytes,
    ) -> Result<HttpReply, SendError> {
        let mut req = self
            .client
            .post(url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, content_type);
        if let Some(enc) = self.compression.content_encoding() {
            req = req.header(CONTENT_ENCODING, enc);
        }
        self.execute(req.body(encoded), url).await
    }

    /// GETs `url` (e.g. a server's `/info`) and returns the 2xx answer.
    pub async fn get(&self, url: &str) -> Result<HttpReply, SendError> {
        let req = self.client.get(url).headers(self.headers.clone());
        self.execute(req, url).await
    }

    /// Sends a request built on [`HttpTransport::client`] (add the auth headers
    /// yourself with [`HttpTransport::headers`]) and classifies the answer.
    pub async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<HttpReply, SendError> {
        let response = request
            .send()
            .await
            .map_err(|e| classify_transport_error(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(b) => b,
            // The status arrived but the body did not: a broken connection.
            Err(e) => return Err(classify_transport_error(&e).into()),
        };
        classify_status(status, &headers, &body, url)?;
        Ok(HttpReply {
            status,
            headers,
            body,
        })
    }

    /// The headers added to every request (auth and fixed headers).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}
