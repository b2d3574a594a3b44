//! `/api/v1/tokens`: the caller's own token (`/me`, per spec), and admin management.

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

use crate::access::require_admin;
use crate::auth::{Auth, TokenType};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::common::{ErrorBody, Page, Text, patterns, text};
use crate::state::AppState;
use crate::tokens::{self, CreateTokenError, TokenInfo};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens/me", get(me))
        .route("/tokens", get(list).post(create))
        .route("/tokens/{id}", delete(revoke))
}

/// `GET /tokens/me`: the spec's fields, plus `success` so clients that check it uniformly work.
#[derive(Serialize, ToSchema)]
pub struct TokenMe {
    success: bool,
    #[serde(flatten)]
    token: TokenInfo,
}

/// `GET /tokens/me`: the spec's fields, plus `success` so clients that check it uniformly work.
#[utoipa::path(
    get,
    path = "/api/v1/tokens/me",
    tag = "tokens",
    responses((status = 200, description = "The calling token", body = TokenMe))
)]
pub async fn me(State(state): State<AppState>, Auth(p): Auth) -> JsonResponse<TokenMe> {
    let last_used = match (p.last_used_at, state.tokens.pending_last_used(p.token_id)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    JsonResponse(TokenMe {
        success: true,
        token: TokenInfo {
            id: p.token_id,
            email: p.email().map(str::to_owned),
            token_prefix: p.token_prefix.clone(),
            token_type: p.token_type,
            name: p.name.clone(),
            is_active: p.is_active,
            created_at: p.created_at,
            last_used_at: last_used,
            expires_at: p.expires_at,
        },
    })
}

/// Longest token name, in characters.
const MAX_NAME_CHARS: usize = 200;

text!(
    TokenName,
    "1 to 200 characters, not only blanks, no control characters; stored trimmed.",
    Text {
        min: Some(1),
        max: Some(MAX_NAME_CHARS),
        pattern: Some(patterns::NAME),
        ..Text::default()
    }
);

/// Between fields (see [`CreateToken::rules`]): a user token names its mailbox and an admin token
/// none; `expires_at` and `expires_in_days` are not both given.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// 1-200 characters, not only blanks, no control characters; stored trimmed.
    #[schema(value_type = TokenName)]
    name: String,
    token_type: TokenType,
    /// The mailbox a user token is bound to (required for `user`, absent or null for `admin`).
    #[serde(default)]
    #[schema(format = Email)]
    email: Option<String>,
    /// When the token stops working. A time already past makes a token that is expired from
    /// the start.
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    /// Days from now until the token stops working (at most 36,500: larger values are capped).
    /// Give this or `expires_at`, not both.
    #[serde(default)]
    #[schema(minimum = 1)]
    expires_in_days: Option<i64>,
}

impl CreateToken {
    /// What the struct's properties cannot say: `allOf` members added to its schema (see
    /// `docs::spec`), each a rule [`create`] enforces with a 400.
    pub fn rules() -> Vec<RefOr<Schema>> {
        use crate::routes::common::rule;
        vec![
            rule::one_of(vec![
                rule::object(
                    [
                        ("token_type", rule::one_value("admin")),
                        ("email", rule::null()),
                    ],
                    [],
                ),
                rule::object(
                    [
                        ("token_type", rule::one_value("user")),
                        ("email", rule::non_null()),
                    ],
                    ["email"],
                ),
            ]),
            rule::any_of(vec![
                rule::object([("expires_at", rule::null())], []),
                rule::object([("expires_in_days", rule::null())], []),
            ]),
        ]
    }
}

/// The longest `expires_in_days` honoured: a hundred years. Larger values are capped to it.
const MAX_EXPIRY_DAYS: i64 = 36_500;

/// `POST /tokens`: the new token, with its secret (shown once, here).
#[derive(Serialize, ToSchema)]
pub struct TokenCreated {
    success: bool,
    /// The secret: shown once, here.
    token: String,
    #[serde(flatten)]
    info: TokenInfo,
}

/// `POST /tokens` (admin): mint an admin token, or a user token bound to one mailbox.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    request_body = CreateToken,
    responses((status = 201, description = "The new token with its secret (shown once)", body = TokenCreated), (status = 403, description = "ACCESS_DENIED: admin only", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND: a user token's mailbox", body = ErrorBody))
)]
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<CreateToken>,
) -> ApiResult<(StatusCode, JsonResponse<TokenCreated>)> {
    require_admin(&p)?;
    // Checked before trimming, as the document's maxLength and pattern are.
    let name = req.name.trim();
    if name.is_empty()
        || req.name.chars().count() > MAX_NAME_CHARS
        || shared::address::has_control_chars(&req.name)
    {
        return Err(ApiError::validation(
            "name",
            "must be 1-200 printable characters",
        ));
    }
    let email = match (req.token_type, req.email.as_deref()) {
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
    // An `expires_at` already past is not refused: it makes a token that is expired from the
    // start. "In the future" depends on the server's clock, which no document (and no client
    // whose clock differs) can check beforehand.
    let expires_at = match (req.expires_at, req.expires_in_days) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "expires_at",
                "give expires_at or expires_in_days, not both",
            ));
        }
        (Some(t), None) => Some(t),
        (None, Some(d)) if d < 1 => {
            return Err(ApiError::validation(
                "expires_in_days",
                "must be at least 1",
            ));
        }
        (None, Some(d)) => Some(Utc::now() + Duration::days(d.min(MAX_EXPIRY_DAYS))),
        (None, None) => None,
    };
    let (secret, info) = tokens::create_token(
        &state.db,
        req.token_type,
        email.as_ref().map(|e| e.as_str()),
        name,
        expires_at,
    )
    .await
    .map_err(|e| match e {
        CreateTokenError::UnknownMailbox(_) => ApiError::MailboxNotFound,
        CreateTokenError::Db(e) => e.into(),
    })?;
    Ok((
        StatusCode::CREATED,
        JsonResponse(TokenCreated {
            success: true,
            token: secret.expose().to_owned(),
            info,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    success: bool,
    /// Every token, not only this page's.
    total: i64,
    tokens: Vec<TokenInfo>,
}

/// `GET /tokens` (admin).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    params(Page),
    responses((status = 200, description = "A page of tokens, by id", body = TokenList), (status = 403, description = "ACCESS_DENIED: admin only", body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(page): Query<Page>,
) -> ApiResult<JsonResponse<TokenList>> {
    require_admin(&p)?;
    let (limit, offset) = page.resolve()?;
    let (total, tokens) = tokens::list_tokens(&state.db, limit, offset).await?;
    Ok(JsonResponse(TokenList {
        success: true,
        total,
        tokens,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    success: bool,
    #[schema(example = "Token 7 revoked")]
    message: String,
    id: i64,
}

/// `DELETE /tokens/{id}`: admins revoke any token; any token may revoke itself.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 200, description = "Revoked", body = Revoked), (status = 404, description = "NOT_FOUND: no such token (or not yours)", body = ErrorBody))
)]
pub async fn revoke(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
) -> ApiResult<JsonResponse<Revoked>> {
    if !p.is_admin() && p.token_id != id {
        // Indistinguishable from a token that does not exist.
        return Err(ApiError::NotFound("Token not found".into()));
    }
    if !tokens::revoke_token(&state.db, id).await? {
        return Err(ApiError::NotFound("Token not found".into()));
    }
    state.tokens.forget(id);
    Ok(JsonResponse(Revoked {
        success: true,
        message: format!("Token {id} revoked"),
        id,
    }))
}
