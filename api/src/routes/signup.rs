//! `POST /auth/signup` (no token): a new domain, pending approval, with its first mailbox.
//!
//! Everything a signup creates (the domain, the mailbox, its `manage_domains` grant and its
//! session token) is written in one transaction, so a signup that fails anywhere leaves nothing
//! behind. The mailbox is active at once: Dovecot reads our tables, so the new password works
//! for IMAP immediately, while sending from the domain waits for an admin's approval.

mod limit;

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::address::{DomainName, EmailAddress};
use shared::token::TokenSecret;

use crate::access::Permission;
use crate::auth::TokenType;
use crate::client_ip::ClientIp;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::common::input::{
    Password, address_in_domain, constraint, display_name, insert_mailbox,
};
use crate::routes::common::{DisplayName, Domain, ErrorBody, NewPassword};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/signup", post(signup))
}

/// Every field optional at the serde level so a missing one is reported by name.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SignupRequest {
    /// The new domain (not one that exists).
    #[schema(required = true, value_type = Domain)]
    domain: Option<String>,
    /// The first mailbox: an address in `domain`.
    #[schema(required = true, nullable = false, format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(required = true, value_type = NewPassword)]
    password: Option<String>,
    #[schema(value_type = Option<DisplayName>)]
    name: Option<String>,
}

/// `domain_status` of a signup: always `pending` (an admin approves the domain).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DomainStatus {
    Pending,
}

/// The spec's signup answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedUp {
    success: bool,
    /// The new user token's secret: shown once, here.
    token: String,
    token_type: TokenType,
    #[schema(value_type = String, format = Email)]
    email: EmailAddress,
    #[schema(required = true)]
    name: Option<String>,
    #[schema(value_type = String)]
    domain: DomainName,
    domain_status: DomainStatus,
    /// When the session token stops working.
    #[serde(serialize_with = "crate::time::serialize")]
    expires_at: DateTime<Utc>,
    message: String,
}

fn required<'a>(value: &'a Option<String>, field: &str) -> ApiResult<&'a str> {
    value
        .as_deref()
        .ok_or_else(|| ApiError::validation(field, "is required"))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/signup",
    tag = "signup",
    request_body = SignupRequest,
    security(()),
    responses((status = 201, description = "The pending domain and its first mailbox: {success, domain, email, ...}", body = SignedUp), (status = 409, description = "DOMAIN_EXISTS or MAILBOX_EXISTS", body = ErrorBody), (status = 429, description = "RATE_LIMITED: signups from this address", body = ErrorBody), (status = 500, description = "INTERNAL_ERROR", body = ErrorBody), (status = 503, description = "SERVICE_UNAVAILABLE", body = ErrorBody))
)]
async fn signup(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    Json(req): Json<SignupRequest>,
) -> ApiResult<(StatusCode, JsonResponse<SignedUp>)> {
    let domain = DomainName::parse(required(&req.domain, "domain")?.trim())
        .map_err(|e| ApiError::validation("domain", e.to_string()))?;
    let email = address_in_domain(required(&req.email, "email")?, domain.as_str())?;
    let password = Password::parse(required(&req.password, "password")?)?;
    let name = display_name(req.name.as_deref())?;

    // Counted before the domain is looked at: the limit is on attempts, successful or not. Per
    // client address: behind a trusted proxy, the one it names (crate::client_ip).
    limit::admit(&state, domain.as_str(), &client.to_string()).await?;
    let exists = || ApiError::Conflict {
        code: "DOMAIN_EXISTS",
        message: format!("Domain {domain} already exists"),
    };
    // The bounce domain receives every bounce report and the MX host is the server itself:
    // neither is ever up for signup.
    let settings = &state.settings;
    if [&settings.bounce_domain, &settings.accounts.mx_host].contains(&&domain) {
        return Err(exists());
    }
    let password_hash = password.hash().await?;
    let expires_at = Utc::now()
        + chrono::Duration::from_std(state.settings.accounts.signup_token_ttl)
            .map_err(|e| ApiError::Internal(e.into()))?;
    let secret = TokenSecret::generate();

    let mut tx = state.db.begin().await?;
    let domain_id: i64 = sqlx::query_scalar(
        "insert into domains (domain, active, creator_email) values ($1, false, $2) returning id",
    )
    .bind(domain.as_str())
    .bind(email.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        if constraint(&e) == Some("domains_domain_key") {
            exists()
        } else {
            e.into()
        }
    })?;
    let mailbox_id = insert_mailbox(
        &mut tx,
        domain_id,
        &email,
        name.as_deref(),
        &password_hash,
        true,
    )
    .await?;
    sqlx::query("insert into permissions (mailbox_id, domain_id, permission) values ($1, $2, $3)")
        .bind(mailbox_id)
        .bind(domain_id)
        .bind(Permission::ManageDomains.as_str())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "insert into api_tokens (token_hash, token_prefix, token_type, mailbox_id, name, expires_at)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&secret.hash()[..])
    .bind(secret.prefix())
    .bind(TokenType::User.as_str())
    .bind(mailbox_id)
    .bind("signup session")
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    tracing::info!(domain = %domain, email = %email, "signup: domain pending approval");
    Ok((
        StatusCode::CREATED,
        JsonResponse(SignedUp {
            success: true,
            token: secret.expose().to_owned(),
            token_type: TokenType::User,
            message: format!("Account created! Your domain '{domain}' is pending admin approval."),
            email,
            name,
            domain,
            domain_status: DomainStatus::Pending,
            expires_at,
        }),
    ))
}
