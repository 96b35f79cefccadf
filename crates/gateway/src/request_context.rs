//! Every request's context: its id and its trace. The request id comes from tower-http's
//! request-id layers (`x-request-id`, generated when absent, echoed in the response);
//! the trace continues the caller's W3C `traceparent` or starts a new one. Both are
//! fields of the request's span, so every log line of the request carries them, and the
//! trace context is a request extension for the handlers that pass work on (the outbox
//! rows they write carry it).

use airlock_core::TraceContext;
use airlock_core::trace::TRACEPARENT;
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use std::convert::Infallible;
use std::time::Instant;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tracing::Instrument;

/// Sets `x-request-id` on requests without one (a UUID).
pub fn set_request_id() -> SetRequestIdLayer<MakeRequestUuid> {
    SetRequestIdLayer::x_request_id(MakeRequestUuid)
}

/// Copies the request's `x-request-id` onto the response.
pub fn propagate_request_id() -> PropagateRequestIdLayer {
    PropagateRequestIdLayer::x_request_id()
}

/// Opens the request's span (method, route, path, request id, trace id) around the rest
/// of the stack and hands the trace context to the handlers.
pub async fn middleware(mut request: Request, next: Next) -> Response {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let trace = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| TraceContext::parse(value).ok())
        .map_or_else(TraceContext::new_root, |parent| parent.child());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        path = request.uri().path(),
        request_id,
        trace_id = %trace.trace_id(),
    );
    request.extensions_mut().insert(RequestTrace(trace));
    let started = Instant::now();
    async move {
        let response = next.run(request).await;
        tracing::debug!(
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request finished"
        );
        response
    }
    .instrument(span)
    .await
}

/// The trace a request belongs to (this gateway's span of it): what a handler stores
/// with the work it passes on. A new trace when the middleware did not run.
#[derive(Debug, Clone, Copy)]
pub struct RequestTrace(pub TraceContext);

impl<S: Send + Sync> FromRequestParts<S> for RequestTrace {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestTrace>()
            .copied()
            .unwrap_or_else(|| RequestTrace(TraceContext::new_root())))
    }
}
