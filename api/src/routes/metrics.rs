//! `GET /metrics` (Prometheus text format, outside `/api/v1` and without a token, like
//! `/health`: restrict it at the network edge) and the middleware that counts every request by
//! its route pattern, so a path full of ids cannot explode the label space, and writes one log
//! line per request (route, status, latency, client address, token id, and the trace id when
//! tracing is on; JSON with `MAILAPI_LOG_FORMAT=json`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use shared::metrics as m;

use crate::auth::TokenId;
use crate::client_ip::ClientIp;
use crate::trace::TraceId;

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    security(()),
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"))
)]
pub async fn render() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m::handle().render(),
    )
}

pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let token_id = response.extensions().get::<TokenId>().map(|t| t.0);
    // Through trusted proxies, the client they name (crate::client_ip), not the proxy.
    let client_ip = response
        .extensions()
        .get::<ClientIp>()
        .map(|c| tracing::field::display(c.0));
    let trace_id = response
        .extensions()
        .get::<TraceId>()
        .map(|t| tracing::field::display(t.0));
    tracing::info!(
        target: "mailapi::request",
        %method,
        %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        client_ip,
        token_id,
        trace_id,
        "request"
    );
    let status = status.to_string();
    metrics::histogram!(m::HTTP_DURATION, "route" => route.clone(), "method" => method.clone())
        .record(elapsed.as_secs_f64());
    metrics::counter!(m::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}
