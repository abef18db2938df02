//! The JSON API under `/api/` (documented in `docs/viewer.md`). Read-only:
//! every handler answers `GET` and only reads the store.

use std::sync::Arc;

use aiobs_core::{SpanId, TraceId};
use aiobs_exporter_default::{StorageError, StorageErrorKind, TraceFilter, TraceSummary};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::params;
use super::tree::TraceView;

/// An API failure: its status and a message for people, sent as
/// `{"error": "<message>"}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let status = match e.kind() {
            StorageErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            StorageErrorKind::Busy | StorageErrorKind::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status != StatusCode::BAD_REQUEST {
            tracing::warn!(target: "aiobs::serve", error = %e, "store query failed");
        }
        Self {
            status,
            message: format!("the store failed: {e}"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (
            self.status,
            Json(Body {
                error: self.message,
            }),
        )
            .into_response()
    }
}

type Result<T> = std::result::Result<T, ApiError>;
type Shared = State<Arc<AppState>>;

fn trace_id(text: &str) -> Result<TraceId> {
    text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{text:?} is not a trace id (32 hexadecimal digits)"
        ))
    })
}

/// `GET /api/info`: what the viewer serves.
pub(crate) async fn info(State(state): Shared) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "store": state.store_name,
        "backend": state.store.kind(),
        "read_only": true,
        "span_types": aiobs_core::SpanType::ALL.map(|t| t.as_str()),
    }))
}

/// `GET /api/traces`: one page of the listing, newest first.
pub(crate) async fn list_traces(State(state): Shared, RawQuery(q): RawQuery) -> Result<Response> {
    let (filter, page) = params::list_query(q.as_deref())?;
    let page = state.store.list_traces(&filter, &page).await?;
    Ok(Json(page).into_response())
}

/// `GET /api/traces/{trace_id}`: the trace as a waterfall.
pub(crate) async fn get_trace(State(state): Shared, Path(id): Path<String>) -> Result<Response> {
    let id = trace_id(&id)?;
    let trace = state
        .store
        .get_trace(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no trace {id} in the store")))?;
    Ok(Json(TraceView::new(&trace)).into_response())
}

/// `GET /api/traces/{trace_id}/spans/{span_id}`: one span whole, with the
/// logs, scores and feedback attached to it.
pub(crate) async fn get_span(
    State(state): Shared,
    Path((trace, span)): Path<(String, String)>,
) -> Result<Response> {
    let trace_id = trace_id(&trace)?;
    let span_id: SpanId = span.parse().map_err(|_| {
        ApiError::bad_request(format!("{span:?} is not a span id (16 hexadecimal digits)"))
    })?;
    let trace = state
        .store
        .get_trace(trace_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no trace {trace_id} in the store")))?;
    let span = trace
        .spans
        .iter()
        .find(|s| s.span_id == span_id)
        .ok_or_else(|| ApiError::not_found(format!("no span {span_id} in trace {trace_id}")))?;
    let mine = |s: Option<SpanId>| s == Some(span_id);
    Ok(Json(serde_json::json!({
        "span": span,
        "logs": trace.logs.iter().filter(|l| mine(l.span_id)).collect::<Vec<_>>(),
        "scores": trace.scores.iter().filter(|s| mine(s.span_id)).collect::<Vec<_>>(),
        "feedback": trace.feedback.iter().filter(|f| mine(f.span_id)).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /api/sessions/{session_id}`: the session's most recent traces (one
/// page), in the order they ran.
pub(crate) async fn get_session(
    State(state): Shared,
    Path(session): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    #[derive(Serialize)]
    struct Session {
        session_id: String,
        /// Oldest first.
        traces: Vec<TraceSummary>,
        /// Where the page of earlier traces starts.
        earlier_cursor: Option<String>,
    }
    let page = params::page_query(q.as_deref())?;
    let filter = TraceFilter::new().session_id(session.clone());
    let mut found = state.store.list_traces(&filter, &page).await?;
    if found.traces.is_empty() && page.cursor.is_none() {
        return Err(ApiError::not_found(format!(
            "no trace of session {session:?} in the store"
        )));
    }
    found.traces.reverse();
    Ok(Json(Session {
        session_id: session,
        traces: found.traces,
        earlier_cursor: found.next_cursor.map(|c| c.to_string()),
    })
    .into_response())
}

/// Any other method on an API route: the viewer is read-only.
pub(crate) async fn method_not_allowed() -> Response {
    let mut r = ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "the viewer is read-only: API routes answer GET only".into(),
    }
    .into_response();
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
    r
}

/// Any other path under `/api/`.
pub(crate) async fn no_such_endpoint() -> ApiError {
    ApiError::not_found(
        "no such API endpoint; see /api/info, /api/traces, /api/traces/{trace_id}, \
         /api/traces/{trace_id}/spans/{span_id}, /api/sessions/{session_id}",
    )
}
