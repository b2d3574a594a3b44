//! The HTTP server: our own accept loop over hyper (HTTP/1.1), for what `axum::serve` does not
//! set: a deadline for each request's header and one for its body. A client that trickles bytes
//! (slowloris) would otherwise hold a socket and a task for as long as it likes.
//!
//! * Header: hyper's `header_read_timeout` (`MAILAPI_HEADER_TIMEOUT_SECS`). It runs whenever the
//!   connection waits for a request head, so an idle keep-alive connection is closed after it
//!   too. The connection is closed without an answer, as hyper does.
//! * Body: [`body_deadline`] (after authentication) reads the whole body within `MAILAPI_BODY_TIMEOUT_SECS` or answers
//!   408 `REQUEST_TIMEOUT` and closes the connection. Every body this API takes is a JSON
//!   document that handlers read whole anyway, so reading it here first costs nothing more.
//!
//! Shutdown stops accepting, lets each connection finish the request it is on, and closes idle
//! ones at once.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use shared::config::ServerLimits;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::error::ApiError;
use crate::state::AppState;

/// Serves `app` on `listener` until `shutdown` is cancelled, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ServerLimits,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Responses go out at once: without TCP_NODELAY a response written in two parts can
        // wait for the client's delayed ACK (tens of milliseconds) on a keep-alive connection.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let service = app.clone().map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req.map(Body::new)
        });
        let conn = http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // Header timeouts, resets and clients that went away: theirs, not ours.
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Out of file descriptors or similar: wait a moment instead of spinning on `accept`.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Middleware: reads the request body within the configured time (and size), or answers.
pub async fn body_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() || req.body().size_hint().exact() == Some(0) {
        return next.run(req).await;
    }
    let limit = state.settings.limits.max_body_bytes;
    // A declared length over the limit is refused without reading a byte of it.
    if req.body().size_hint().lower() > limit as u64 {
        return ApiError::PayloadTooLarge(limit).into_response();
    }
    let (parts, body) = req.into_parts();
    let read = http_body_util::Limited::new(body, limit);
    let bytes = match tokio::time::timeout(
        state.settings.server.body_timeout,
        http_body_util::BodyExt::collect(read),
    )
    .await
    {
        Err(_elapsed) => return ApiError::RequestTimeout.into_response(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return ApiError::PayloadTooLarge(limit).into_response();
        }
        Ok(Err(e)) => {
            return ApiError::invalid(
                "INVALID_BODY",
                None,
                format!("Failed to read the request body: {e}"),
            )
            .into_response();
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
