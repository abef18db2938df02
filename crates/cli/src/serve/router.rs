//! Which handler answers which path.

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::http::Uri;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};

use super::headers::{self, HostPolicy};
use super::{AppState, api, assets};

/// `GET` (and `HEAD`) only; any other method gets a 405 saying the viewer is read-only.
fn read_only<H, T>(handler: H) -> MethodRouter<Arc<AppState>>
where
    H: Handler<T, Arc<AppState>>,
    T: 'static,
{
    get(handler).fallback(api::method_not_allowed)
}

/// The viewer: the API under `/api/`, the page at `/`, `/traces/{id}` and
/// `/sessions/{id}`, its assets under `/assets/`.
pub(crate) fn router(state: Arc<AppState>, hosts: HostPolicy) -> Router {
    Router::new()
        .route("/api/info", read_only(api::info))
        .route("/api/traces", read_only(api::list_traces))
        .route("/api/traces/{trace_id}", read_only(api::get_trace))
        .route(
            "/api/traces/{trace_id}/spans/{span_id}",
            read_only(api::get_span),
        )
        .route("/api/sessions/{session_id}", read_only(api::get_session))
        .route("/", read_only(assets::page))
        .route("/traces/{trace_id}", read_only(assets::page))
        .route("/sessions/{session_id}", read_only(assets::page))
        .route("/assets/{file}", read_only(assets::asset))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            Arc::new(hosts),
            headers::secure,
        ))
        .with_state(state)
}

async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") || uri.path() == "/api" {
        api::no_such_endpoint().await.into_response()
    } else {
        assets::not_found().into_response()
    }
}
