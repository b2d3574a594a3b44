//! `/api/v1/tokens`: the caller's own token (`/me`, per spec), and admin management.

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::access::require_admin;
use crate::auth::{Auth, TokenType};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::docs::bodies;
use crate::routes::docs::spec::ErrorBody;
use crate::state::AppState;
use crate::tokens::{self, CreateTokenError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens/me", get(me))
        .route("/tokens", get(list).post(create))
        .route("/tokens/{id}", delete(revoke))
}

/// `GET /tokens/me`: the spec's fields, plus `success` so clients that check it uniformly work.
#[utoipa::path(
    get,
    path = "/api/v1/tokens/me",
    tag = "tokens",
    responses((status = 200, description = "The calling token: {success, token: {id, name, token_type, email, ...}}", body = bodies::TokenMe))
)]
pub async fn me(State(state): State<AppState>, Auth(p): Auth) -> impl IntoResponse {
    let last_used = match (p.last_used_at, state.tokens.pending_last_used(p.token_id)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    JsonResponse(json!({
        "success": true,
        "id": p.token_id,
        "token_prefix": p.token_prefix,
        "token_type": p.token_type.as_str(),
        "email": p.email(),
        "name": p.name,
        "is_active": p.is_active,
        "created_at": crate::time::format(&p.created_at),
        "last_used_at": last_used.map(|t| crate::time::format(&t)),
        "expires_at": p.expires_at.map(|t| crate::time::format(&t)),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    token_type: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    expires_in_days: Option<u32>,
}

/// `POST /tokens` (admin): mint an admin token, or a user token bound to one mailbox.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    request_body = CreateToken,
    responses((status = 201, description = "The new token with its secret (shown once): {success, token, id, ...}", body = bodies::TokenCreated), (status = 403, description = "ACCESS_DENIED: admin only", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND: a user token's mailbox", body = ErrorBody))
)]
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<CreateToken>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&p)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 200 || shared::address::has_control_chars(name) {
        return Err(ApiError::validation(
            "name",
            "must be 1-200 printable characters",
        ));
    }
    let token_type = match req.token_type.as_str() {
        "admin" => TokenType::Admin,
        "user" => TokenType::User,
        _ => {
            return Err(ApiError::validation(
                "token_type",
                "must be \"admin\" or \"user\"",
            ));
        }
    };
    let email = match (token_type, req.email.as_deref()) {
        (TokenType::User, None) => {
            return Err(ApiError::validation(
                "email",
                "a user token needs the mailbox it is bound to",
            ));
        }
        (TokenType::User, Some(e)) => Some(
            shared::address::EmailAddress::parse(e)
                .map_err(|err| ApiError::validation("email", err.to_string()))?,
        ),
        (TokenType::Admin, Some(_)) => {
            return Err(ApiError::validation(
                "email",
                "an admin token is not bound to a mailbox",
            ));
        }
        (TokenType::Admin, None) => None,
    };
    let expires_at = match (req.expires_at, req.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "expires_at",
                "give expires_at or expires_in_days, not both",
            ));
        }
        (Some(t), None) if t <= Utc::now() => {
            return Err(ApiError::validation("expires_at", "must be in the future"));
        }
        (Some(t), None) => Some(t),
        (None, Some(0)) => {
            return Err(ApiError::validation(
                "expires_in_days",
                "must be at least 1",
            ));
        }
        (None, Some(d)) => Some(Utc::now() + Duration::days(i64::from(d.min(36_500)))),
        (None, None) => None,
    };
    let (secret, info) = tokens::create_token(
        &state.db,
        token_type,
        email.as_ref().map(|e| e.as_str()),
        name,
        expires_at,
    )
    .await
    .map_err(|e| match e {
        CreateTokenError::UnknownMailbox(_) => ApiError::MailboxNotFound,
        CreateTokenError::Db(e) => e.into(),
    })?;
    let mut body = serde_json::to_value(&info).map_err(|e| ApiError::Internal(e.into()))?;
    body["success"] = json!(true);
    body["token"] = json!(secret.expose());
    Ok((StatusCode::CREATED, JsonResponse(body)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// Items to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

impl Page {
    /// `limit` defaults to 50 and is capped at 200, as for every list in the spec.
    pub fn resolve(&self) -> ApiResult<(i64, i64)> {
        let limit = self.limit.unwrap_or(50);
        let offset = self.offset.unwrap_or(0);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::validation("limit", "must be between 1 and 200"));
        }
        if offset < 0 {
            return Err(ApiError::validation("offset", "must not be negative"));
        }
        Ok((limit, offset))
    }
}

/// `GET /tokens` (admin).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    params(Page),
    responses((status = 200, description = "{success, total, tokens}", body = bodies::TokenList), (status = 403, description = "ACCESS_DENIED: admin only", body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(page): Query<Page>,
) -> ApiResult<impl IntoResponse> {
    require_admin(&p)?;
    let (limit, offset) = page.resolve()?;
    let (total, tokens) = tokens::list_tokens(&state.db, limit, offset).await?;
    Ok(JsonResponse(
        json!({ "success": true, "total": total, "tokens": tokens }),
    ))
}

/// `DELETE /tokens/{id}`: admins revoke any token; any token may revoke itself.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, description = "{success, message, id}", body = bodies::Revoked), (status = 404, description = "NOT_FOUND: no such token (or not yours)", body = ErrorBody))
)]
pub async fn revoke(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    if !p.is_admin() && p.token_id != id {
        // Indistinguishable from a token that does not exist.
        return Err(ApiError::NotFound("Token not found".into()));
    }
    if !tokens::revoke_token(&state.db, id).await? {
        return Err(ApiError::NotFound("Token not found".into()));
    }
    state.tokens.forget(id);
    Ok(JsonResponse(
        json!({ "success": true, "message": format!("Token {id} revoked"), "id": id }),
    ))
}
