//! # aiobs-http
//!
//! The skeleton every aiobs HTTP exporter is built on, so that none of them
//! re-implements its plumbing. An exporter crate keeps the same small
//! layout — `config.rs` (builder, `*BuildError`, environment), `mapping/`
//! (events to the vendor's model), `encode.rs` (the vendor's bodies),
//! `exporter.rs` (the `Exporter` impl) — and takes from here:
//!
//! | step | here |
//! |---|---|
//! | configuration | [`Secret`] (credentials hidden from `Debug`), [`base_url`] (one URL check), [`Env`] (one environment convention: blank = unset, code beats env, "not configured" vs "misconfigured") |
//! | the client | [`HttpClientConfig`] (rustls, timeouts, user agent, proxies, no redirects, no hidden retries), [`HttpTransport`] ([`Auth`] headers, [`Compression`]) |
//! | request sizes | [`chunk_by_size`] (batches into requests under a body limit), [`send_split`] (halves a request answered `413`) |
//! | answers | [`classify_status`] (status → the worker's error classes), [`ItemAnswers`] (per-item answers: 207, OTLP partial success, counts) |
//! | the outcome | [`BatchResults`] → what `export` returns |
//!
//! The payload truncation marker is core's
//! ([`aiobs_core::payload::truncate_marked`]): one marker for every cut.
//!
//! **The per-item rule.** An item counts as delivered only when the answer
//! says so unambiguously: an unreadable per-item answer is an error for the
//! whole request (sent again), and "some failed" without saying which is
//! narrowed down by sending the items again in halves
//! ([`ItemAnswers::resolve`], [`send_split`]). The pipeline worker does the
//! rest: retry with backoff, `Retry-After`, disabling on 401/403, counting.
//! `docs/exporters.md` ("Writing an HTTP exporter") walks through a new one.
//!
//! ```no_run
//! use aiobs_core::{ExportError, ExportOutcome};
//! use aiobs_http::{Auth, BatchResults, HttpClientConfig, HttpTransport, ItemAnswers, send_split};
//!
//! # async fn export(items: Vec<(String, String)>) -> Result<ExportOutcome, ExportError> {
//! // (id, JSON) pairs; a real exporter builds the transport once, in `build()`.
//! let client = HttpClientConfig::new("example").build().map_err(|e| ExportError::disabled(e.to_string()))?;
//! let transport = HttpTransport::new(client)
//!     .with_auth(Auth::bearer("token"))
//!     .map_err(|e| ExportError::disabled(e.to_string()))?;
//! let indices: Vec<usize> = (0..items.len()).collect();
//! let mut results = BatchResults::new();
//! send_split(&indices, &mut results, |part| {
//!     let body = format!("[{}]", part.iter().map(|&i| items[i].1.as_str()).collect::<Vec<_>>().join(","));
//!     let (transport, items) = (transport.clone(), &items);
//!     async move {
//!         let reply = transport.post("https://ingest.example.com/v1/items", "application/json", body).await?;
//!         // A 207 would be parsed into `ItemAnswers::Refused(..)` (or `Unreadable`).
//!         let answers = if reply.status == 207 { ItemAnswers::Unreadable("example".into()) } else { ItemAnswers::AllAccepted };
//!         answers.resolve(part.iter().map(|&i| (i, items[i].0.as_str())))
//!     }
//! })
//! .await;
//! results.into_outcome()
//! # }
//! ```
//!
//! | answer | what the worker does |
//! |---|---|
//! | 2xx | delivered, unless its per-item answer says otherwise ([`ItemAnswers`]) |
//! | 429, 503 | retries after `Retry-After` (seconds or HTTP-date), else backoff |
//! | 408, 500, 502, 504, timeouts, refused/reset connections, DNS failures | retries with backoff |
//! | 401, 403 | disables the exporter (one error logged; every event counted dropped) |
//! | 413 | [`send_split`] halves the request down to single items; an item still too large is a permanent failure |
//! | 400, 404, 422, TLS failures, other 4xx, 3xx (redirects are not followed) | permanent failure, counted, not retried |
//!
//! ## Feature flags
//! None. TLS is always rustls (aws-lc-rs provider, the platform's
//! certificate verifier); HTTP/1.1 only.

mod answers;
mod auth;
mod body;
mod chunk;
mod classify;
mod client;
mod env;
mod secret;
mod split;
mod transport;
mod url;

pub use answers::{ItemAnswers, ItemError};
pub use auth::Auth;
pub use body::{Compression, gzip};
pub use chunk::chunk_by_size;
pub use classify::{
    SendError, classify_status, classify_transport_error, item_status_class, parse_retry_after,
    retry_after,
};
pub use client::{ClientError, HttpClientConfig, user_agent};
pub use env::{Env, EnvError, process_env};
pub use secret::Secret;
pub use split::{BatchResults, send_split};
pub use transport::{HttpReply, HttpTransport};
pub use url::{UrlError, base_url};

/// The `reqwest` version the types above use, for exporters that need more of it.
pub use reqwest;

#[doc(no_inline)]
pub use aiobs_core::{ErrorClass, ExportError, ExportOutcome, ItemRejection};
