//! The HTTP surface: one file per resource under `/api/v1`, plus health checks.

pub mod common;
pub mod docs;
pub mod domains;
pub mod events;
pub mod feed;
pub mod health;
pub mod mail;
pub mod mailbox;
pub mod metrics;
pub mod permissions;
pub mod queue;
pub mod signup;
pub mod stats;
pub mod suppressions;
pub mod tokens;
pub mod users;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    // The registry must exist before the first request is counted.
    let _ = shared::metrics::handle();
    // Each resource module owns its routes; all of them sit behind token authentication.
    let authenticated = Router::new()
        .merge(tokens::router())
        .merge(mail::router())
        .merge(events::router())
        .merge(feed::router())
        .merge(mailbox::router())
        .merge(domains::router())
        .merge(users::router())
        .merge(permissions::router())
        .merge(suppressions::router())
        .merge(stats::router())
        .merge(queue::router())
        .merge(webhooks::router())
        // After authentication (which reads no body): a client without a token cannot make
        // the server read a body at all.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::server::body_deadline,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::middleware::authenticate,
        ));
    let signup = signup::router().route_layer(middleware::from_fn_with_state(
        state.clone(),
        crate::server::body_deadline,
    ));

    let body_limit = state.settings.limits.max_body_bytes;
    Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::render))
        .merge(stats::dashboard::router())
        .merge(docs::router())
        .nest("/api/v1", authenticated.merge(signup))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |req, next| {
            limit_to_error(req, next, body_limit)
        }))
        // A request waiting for its body holds a slot too.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::overload::middleware::limit_in_flight,
        ))
        // Inside `track`, so that the request log line can carry the span's trace id.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::trace::request_span,
        ))
        // Inside `track` too: the log line carries the client address it names.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::client_ip::resolve,
        ))
        .layer(middleware::from_fn(metrics::track))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("No such endpoint".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Gives axum's own plain-text rejections (body limit) our JSON shape.
async fn limit_to_error(
    req: axum::extract::Request,
    next: middleware::Next,
    limit: usize,
) -> Response {
    let response = next.run(req).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE
        && response
            .headers()
            .get("content-type")
            .is_none_or(|v| !v.as_bytes().starts_with(b"application/json"))
    {
        return ApiError::PayloadTooLarge(limit).into_response();
    }
    response
}

fn panic_response(_err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}
