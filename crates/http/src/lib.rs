//! # aiobs-http
//!
//! What every aiobs HTTP exporter shares, so that none of them re-implements
//! it: building the `reqwest` client (rustls, timeouts, user agent, proxies
//! from the environment), gzip request bodies, authentication headers, and the
//! translation of HTTP answers into the pipeline's [`ExportError`] classes —
//! including splitting a batch answered `413` and reading `207` per-item results.
//!
//! An exporter's `export` sends the batch through an [`HttpTransport`] and
//! returns what [`BatchResults`] collected; the pipeline worker does the rest
//! (retry with backoff, honouring `Retry-After`, disabling on 401/403, counting).
//!
//! ```no_run
//! use aiobs_core::{ExportError, ExportOutcome};
//! use aiobs_http::{Auth, BatchResults, HttpClientConfig, HttpTransport, send_split};
//!
//! # async fn export(items: Vec<String>) -> Result<ExportOutcome, ExportError> {
//! let transport = HttpTransport::new(HttpClientConfig::new("example").build().map_err(|e| ExportError::disabled(e.to_string()))?)
//!     .with_auth(Auth::bearer("token"))
//!     .map_err(|e| ExportError::disabled(e.to_string()))?;
//! let indices: Vec<usize> = (0..items.len()).collect();
//! let mut results = BatchResults::new();
//! send_split(&indices, &mut results, |part| {
//!     let body = format!("[{}]", part.iter().map(|&i| items[i].as_str()).collect::<Vec<_>>().join(","));
//!     let transport = transport.clone();
//!     async move {
//!         transport.post("https://ingest.example.com/v1/items", "application/json", body).await?;
//!         Ok(Vec::new()) // or the rejections read from a 207 body, see `rejections_by_id`
//!     }
//! })
//! .await;
//! results.into_outcome()
//! # }
//! ```
//!
//! | answer | what the worker does |
//! |---|---|
//! | 2xx | delivered (207: per-item rejections via [`rejections_by_id`]) |
//! | 429, 503 | retries after `Retry-After` (seconds or HTTP-date), else backoff |
//! | 408, 500, 502, 504, timeouts, refused/reset connections, DNS failures | retries with backoff |
//! | 401, 403 | disables the exporter (one error logged; every event counted dropped) |
//! | 413 | [`send_split`] halves the request down to single items; an item still too large is a permanent failure |
//! | 400, 404, 422, TLS failures, other 4xx, 3xx (redirects are not followed) | permanent failure, counted, not retried |
//!
//! ## Feature flags
//! None. TLS is always rustls (aws-lc-rs provider, the platform's
//! certificate verifier); HTTP/1.1 only.

mod auth;
mod body;
mod classify;
mod client;
mod multistatus;
mod split;
mod transport;

pub use auth::Auth;
pub use body::{Compression, gzip};
pub use classify::{
    SendError, classify_status, classify_transport_error, item_status_class, parse_retry_after,
    retry_after,
};
pub use client::{ClientError, HttpClientConfig, user_agent};
pub use multistatus::{ItemError, rejections_by_id};
pub use split::{BatchResults, send_split};
pub use transport::{HttpReply, HttpTransport};

/// The `reqwest` version the types above use, for exporters that need more of it.
pub use reqwest;

#[doc(no_inline)]
pub use aiobs_core::{ErrorClass, ExportError, ExportOutcome, ItemRejection};
