//! The authentication middleware ([`authenticate`]) and the task that records tokens' last use;
//! the parts that need the application state, kept apart from the token types and cache in
//! `auth` so that the state can hold those without importing this.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use shared::token::TokenSecret;
use tokio_util::sync::CancellationToken;

use crate::auth::{Principal, TOKEN_HEADER, TokenId};
use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::state::AppState;

/// Background task: flush `last_used_at` every few seconds, and once more at shutdown.
pub async fn run_last_used_flusher(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => {
                let _ = state.tokens.flush_last_used(&state.db).await;
                return;
            }
        }
        if let Err(e) = state.tokens.flush_last_used(&state.db).await {
            tracing::warn!(error = %e, "could not record token last_used_at");
        }
    }
}

/// The principal of the request's token: `NO_API_TOKEN` without one, `INVALID_TOKEN` for one
/// that is malformed or unknown.
async fn principal_of(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Arc<Principal>, ApiError> {
    let raw = headers.get(TOKEN_HEADER).ok_or(ApiError::NoApiToken)?;
    let raw = raw.to_str().map_err(|_| ApiError::InvalidToken)?.trim();
    if raw.is_empty() {
        return Err(ApiError::NoApiToken);
    }
    let secret = TokenSecret::parse(raw).ok_or(ApiError::InvalidToken)?;
    state
        .tokens
        .resolve(&state.db, &secret)
        .await?
        .ok_or(ApiError::InvalidToken)
}

/// Middleware for every authenticated route.
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // An address that guessed too often is refused before its token is even looked up
    // (crate::auth_failures); a malformed or unknown token counts as one more guess.
    let client = req.extensions().get::<ClientIp>().map(|c| c.0);
    if let Some(ip) = client {
        state.auth_failures.check(ip)?;
    }
    let principal = match principal_of(&state, req.headers()).await {
        Ok(p) => p,
        Err(e @ ApiError::InvalidToken) => {
            return Err(match client {
                Some(ip) => state.auth_failures.failed(ip, e).await,
                None => e,
            });
        }
        Err(e) => return Err(e),
    };
    let now = Utc::now();
    if !principal.is_active || principal.expires_at.is_some_and(|e| e <= now) {
        return Err(ApiError::TokenExpired);
    }

    let decision = state.rate_limiter.check(principal.token_id).await?;
    state.tokens.touch(principal.token_id, now);
    let token_id = principal.token_id;
    req.extensions_mut().insert(principal);
    let mut response = next.run(req).await;
    // For the request log line, written outside this middleware (routes::metrics::track).
    response.extensions_mut().insert(TokenId(token_id));
    let h = response.headers_mut();
    for (name, value) in decision.headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    Ok(response)
}
