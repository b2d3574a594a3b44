//! `/suppressions`: addresses that will not be handed to the MTA for a sending domain, because
//! they hard-bounced (added by the delivery tracking) or were added by hand. Admins see and edit
//! every domain's list; a `manage_domains` holder its own domain's.
//!
//! - `GET /suppressions?domain=&limit=&offset=` (`domain` required unless admin)
//! - `POST /suppressions` `{"domain", "email", "reason"?}` -> 201, or 409 `SUPPRESSION_EXISTS`
//! - `DELETE /suppressions/{domain}/{email}` -> 200, or 404

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::address::EmailAddress;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::access::{Permission, require_permission};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::common::{Domain, ErrorBody, Page, Text, parse_domain, patterns, text};

text!(
    Reason,
    "At most 1000 characters, no control characters.",
    Text {
        max: Some(1000),
        pattern: Some(patterns::NO_CONTROL),
        ..Text::default()
    }
);
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/suppressions", get(list).post(add))
        .route("/suppressions/{domain}/{email}", delete(remove))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The sending domain whose list to show (required unless the token is an admin's).
    #[param(value_type = Option<Domain>, inline)]
    domain: Option<String>,
}

/// How an address came onto the list.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum SuppressionSource {
    /// A hard bounce.
    Bounce,
    /// Added through the API.
    Manual,
}

/// An address that is not sent to from the domain.
#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct Suppression {
    domain: String,
    #[schema(format = Email)]
    email: String,
    reason: String,
    source: SuppressionSource,
    /// The bounce's DSN code.
    #[schema(required = true)]
    dsn_code: Option<String>,
    /// The message that bounced.
    #[schema(required = true)]
    message_id: Option<Uuid>,
    #[serde(serialize_with = "crate::time::serialize")]
    created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct SuppressionList {
    success: bool,
    /// Every suppression in scope, not only this page's.
    total: i64,
    suppressions: Vec<Suppression>,
}

/// `POST /suppressions`: the new entry, with `success`.
#[derive(Serialize, ToSchema)]
pub struct SuppressionAdded {
    success: bool,
    #[serde(flatten)]
    suppression: Suppression,
}

#[derive(Serialize, ToSchema)]
pub struct Unsuppressed {
    success: bool,
    message: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/suppressions",
    tag = "suppressions",
    params(ListQuery, Page),
    responses((status = 200, description = "A page of suppressed addresses, newest first", body = SuppressionList), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody))
)]
async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListQuery>,
    Query(page): Query<Page>,
) -> ApiResult<JsonResponse<SuppressionList>> {
    let (limit, offset) = page.resolve()?;
    let domain = match q.domain.as_deref() {
        Some(d) => Some(parse_domain(d)?),
        None if p.is_admin() => None,
        None => return Err(ApiError::validation("domain", "is required")),
    };
    if let Some(d) = &domain {
        require_permission(&state.db, &p, Permission::ManageDomains, d.as_str()).await?;
    }
    let domain = domain.map(|d| d.as_str().to_owned());
    let total: i64 = sqlx::query_scalar(
        "select count(*) from suppressions where $1::text is null or domain = $1",
    )
    .bind(&domain)
    .fetch_one(&state.db)
    .await?;
    let suppressions: Vec<Suppression> = sqlx::query_as(
        "select domain, email, reason, source, dsn_code, message_id, created_at
           from suppressions where $1::text is null or domain = $1
          order by created_at desc, id desc limit $2 offset $3",
    )
    .bind(&domain)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db)
    .await?;
    Ok(JsonResponse(SuppressionList {
        success: true,
        total,
        suppressions,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    #[schema(value_type = Domain)]
    domain: String,
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// Why (default "added by hand"): at most 1000 characters, no control characters.
    #[serde(default)]
    #[schema(value_type = Option<Reason>)]
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/suppressions",
    tag = "suppressions",
    request_body = AddRequest,
    responses((status = 201, description = "Suppressed", body = SuppressionAdded), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 409, description = "SUPPRESSION_EXISTS", body = ErrorBody))
)]
async fn add(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<AddRequest>,
) -> ApiResult<(StatusCode, JsonResponse<SuppressionAdded>)> {
    let domain = parse_domain(&req.domain)?;
    let email = EmailAddress::parse(&req.email)
        .map_err(|e| ApiError::validation("email", e.to_string()))?;
    let reason = req.reason.unwrap_or_else(|| "added by hand".to_owned());
    if reason.chars().count() > 1000 || shared::address::has_control_chars(&reason) {
        return Err(ApiError::validation(
            "reason",
            "must be at most 1000 printable characters",
        ));
    }
    require_permission(&state.db, &p, Permission::ManageDomains, domain.as_str()).await?;
    let row: Option<Suppression> = sqlx::query_as(
        "insert into suppressions (domain, email, reason, source) values ($1, $2, $3, 'manual')
         on conflict (domain, email) do nothing
         returning domain, email, reason, source, dsn_code, message_id, created_at",
    )
    .bind(domain.as_str())
    .bind(email.as_str())
    .bind(&reason)
    .fetch_optional(&state.db)
    .await?;
    match row {
        Some(suppression) => Ok((
            StatusCode::CREATED,
            JsonResponse(SuppressionAdded {
                success: true,
                suppression,
            }),
        )),
        None => Err(ApiError::Conflict {
            code: "SUPPRESSION_EXISTS",
            message: format!("{email} is already suppressed for {domain}"),
        }),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/suppressions/{domain}/{email}",
    tag = "suppressions",
    params(("domain" = Domain, Path, description = "Domain name"), ("email" = String, Path, format = Email, max_length = 254, description = "Suppressed address")),
    responses((status = 200, description = "No longer suppressed", body = Unsuppressed), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "NOT_FOUND", body = ErrorBody))
)]
async fn remove(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((domain, email)): Path<(String, String)>,
) -> ApiResult<JsonResponse<Unsuppressed>> {
    let domain = parse_domain(&domain)?;
    let email =
        EmailAddress::parse(&email).map_err(|e| ApiError::validation("email", e.to_string()))?;
    require_permission(&state.db, &p, Permission::ManageDomains, domain.as_str()).await?;
    let done = sqlx::query("delete from suppressions where domain = $1 and email = $2")
        .bind(domain.as_str())
        .bind(email.as_str())
        .execute(&state.db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound(format!(
            "{email} is not suppressed for {domain}"
        )));
    }
    Ok(JsonResponse(Unsuppressed {
        success: true,
        message: format!("{email} is no longer suppressed for {domain}"),
    }))
}
