//! One OpenTelemetry span per HTTP request when tracing is on (`MAILAPI_OTLP_ENDPOINT`).
//!
//! The span continues the client's trace when the request carries a W3C `traceparent` (and
//! `tracestate`) header, and is the current context while the handler runs, so the handler's
//! client spans (`insert message`, `XADD send stream`) and the `traceparent` stored with an
//! accepted message hang under it. With tracing off the middleware only calls the next service.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::KeyValue;
use opentelemetry::trace::{FutureExt as _, SpanKind, Status, TraceContextExt as _};
use shared::telemetry::trace::{TRACEPARENT, remote_parent};

use crate::auth::TokenId;
use crate::state::AppState;

/// The request's trace id, left in the response's extensions for the request log line.
#[derive(Debug, Clone, Copy)]
pub struct TraceId(pub opentelemetry::trace::TraceId);

/// Middleware: the server span of one request, named `<METHOD> <route pattern>` (never the raw
/// path, which can hold addresses and ids).
pub async fn request_span(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.tracer.is_enabled() {
        return next.run(req).await;
    }
    let parent = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        remote_parent(header(TRACEPARENT), header("tracestate"))
    };
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.clone(),
    };
    let mut attributes = vec![KeyValue::new("http.request.method", method)];
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route));
    }
    let Some(cx) = state
        .tracer
        .start(name, SpanKind::Server, &parent, attributes)
    else {
        return next.run(req).await;
    };
    let mut response = next.run(req).with_context(cx.clone()).await;
    let span = cx.span();
    let status = response.status();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    if let Some(token) = response.extensions().get::<TokenId>() {
        span.set_attribute(KeyValue::new("mailapi.token_id", token.0));
    }
    // Server spans fail on 5xx only: a 4xx is the client's mistake, answered correctly.
    if status.is_server_error() {
        span.set_status(Status::error(status.to_string()));
    }
    response
        .extensions_mut()
        .insert(TraceId(span.span_context().trace_id()));
    span.end();
    response
}
