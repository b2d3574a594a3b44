//! `/permissions`: per-domain grants to a mailbox (the spec's permission table). Admins grant
//! and revoke; a mailbox's own token may list its grants.

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::address::EmailAddress;
use utoipa::ToSchema;

use crate::access::{Permission, require_admin, require_self_or_admin};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::common::parse_domain;
use crate::routes::common::{Domain, ErrorBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/permissions/bulk", post(bulk_grant))
        .route("/permissions", get(list))
        .route("/permissions/{id}", delete(revoke))
}

fn parse_email(raw: &str) -> ApiResult<EmailAddress> {
    EmailAddress::parse(raw.trim()).map_err(|e| {
        ApiError::invalid(
            "INVALID_EMAIL",
            Some("email".to_owned()),
            format!("Email {e}"),
        )
    })
}

/// A permission of the spec's table.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Only its schema is used: requests and answers carry the names as text.
pub enum PermissionName {
    ManageUsers,
    ManageDomains,
    ViewMailbox,
    ViewStats,
    SendMail,
}

/// Every field optional at the serde level so a missing one is reported by name.
#[derive(Deserialize, ToSchema)]
struct BulkGrant {
    #[schema(required = true, nullable = false, format = Email, max_length = 254)]
    email: Option<String>,
    #[schema(required = true, value_type = Domain)]
    domain: Option<String>,
    /// Names from the permission table; a name listed twice is granted once.
    #[schema(required = true, nullable = false, min_items = 1, value_type = Option<Vec<PermissionName>>)]
    permissions: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct BulkGranted {
    success: bool,
    #[schema(example = "Granted 4 permissions, skipped 1 already existing")]
    message: String,
    /// Granted now, in the order requested.
    #[schema(value_type = Vec<PermissionName>)]
    granted: Vec<&'static str>,
    /// Already held, in the order requested.
    #[schema(value_type = Vec<PermissionName>)]
    skipped: Vec<&'static str>,
}

/// `POST /permissions/bulk` (admin): 201 with what was `granted` and what was `skipped` because
/// the mailbox already held it, in the order requested.
#[utoipa::path(
    post,
    path = "/api/v1/permissions/bulk",
    tag = "permissions",
    request_body = BulkGrant,
    responses((status = 201, description = "What was granted and what was already held", body = BulkGranted), (status = 403, description = "ACCESS_DENIED: admin only", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND or NOT_FOUND (domain)", body = ErrorBody))
)]
async fn bulk_grant(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<BulkGrant>,
) -> ApiResult<(StatusCode, JsonResponse<BulkGranted>)> {
    require_admin(&p)?;
    let email = parse_email(
        req.email
            .as_deref()
            .ok_or_else(|| ApiError::validation("email", "is required"))?,
    )?;
    let domain = parse_domain(
        req.domain
            .as_deref()
            .ok_or_else(|| ApiError::validation("domain", "is required"))?,
    )?;
    let names = req
        .permissions
        .ok_or_else(|| ApiError::validation("permissions", "is required"))?;
    if names.is_empty() {
        return Err(ApiError::validation(
            "permissions",
            "must name at least one permission",
        ));
    }
    let mut wanted: Vec<Permission> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let perm = Permission::parse(name).ok_or_else(|| {
            ApiError::validation(
                format!("permissions[{i}]"),
                format!(
                    "`{name}` is not one of {}",
                    Permission::ALL.map(Permission::as_str).join(", ")
                ),
            )
        })?;
        if !wanted.contains(&perm) {
            wanted.push(perm);
        }
    }
    let mailbox_id: i64 = sqlx::query_scalar("select id from mailboxes where email = $1")
        .bind(email.as_str())
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::MailboxNotFound)?;
    let domain_id: i64 = sqlx::query_scalar("select id from domains where domain = $1")
        .bind(domain.as_str())
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Domain {domain} not found")))?;

    let as_text: Vec<&'static str> = wanted.iter().map(|p| p.as_str()).collect();
    let inserted: Vec<String> = sqlx::query_scalar(
        "insert into permissions (mailbox_id, domain_id, permission)
         select $1, $2, unnest($3::text[])
         on conflict on constraint permissions_unique_grant do nothing
         returning permission",
    )
    .bind(mailbox_id)
    .bind(domain_id)
    .bind(&as_text)
    .fetch_all(&state.db)
    .await?;
    let (granted, skipped): (Vec<&'static str>, Vec<&'static str>) = as_text
        .iter()
        .partition(|p| inserted.iter().any(|i| i == *p));
    let message = format!(
        "Granted {} permission{}, skipped {} already existing",
        granted.len(),
        if granted.len() == 1 { "" } else { "s" },
        skipped.len()
    );
    Ok((
        StatusCode::CREATED,
        JsonResponse(BulkGranted {
            success: true,
            message,
            granted,
            skipped,
        }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The mailbox whose grants to list.
    #[param(required = true, format = Email, max_length = 254)]
    email: Option<String>,
}

#[derive(Serialize, sqlx::FromRow, ToSchema)]
pub struct Grant {
    id: i64,
    domain: String,
    #[schema(value_type = PermissionName)]
    permission: String,
    #[serde(with = "crate::time")]
    created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct GrantList {
    success: bool,
    #[schema(value_type = String, format = Email)]
    email: EmailAddress,
    total: usize,
    permissions: Vec<Grant>,
}

#[derive(Serialize, ToSchema)]
pub struct GrantRevoked {
    success: bool,
    message: String,
    id: i64,
    #[schema(format = Email)]
    email: String,
    domain: String,
    #[schema(value_type = PermissionName)]
    permission: String,
}

/// `GET /permissions?email=`: admin, or the mailbox's own token.
#[utoipa::path(
    get,
    path = "/api/v1/permissions",
    tag = "permissions",
    params(ListQuery),
    responses((status = 200, description = "The mailbox's grants, by domain", body = GrantList), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND", body = ErrorBody))
)]
async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<JsonResponse<GrantList>> {
    let email = parse_email(
        q.email
            .as_deref()
            .ok_or_else(|| ApiError::validation("email", "is required"))?,
    )?;
    require_self_or_admin(&p, email.as_str())?;
    let mailbox: Option<i64> = sqlx::query_scalar("select id from mailboxes where email = $1")
        .bind(email.as_str())
        .fetch_optional(&state.db)
        .await?;
    let mailbox = mailbox.ok_or(ApiError::MailboxNotFound)?;
    let grants: Vec<Grant> = sqlx::query_as(
        "select g.id, d.domain, g.permission, g.created_at
           from permissions g join domains d on d.id = g.domain_id
          where g.mailbox_id = $1 order by d.domain, g.permission",
    )
    .bind(mailbox)
    .fetch_all(&state.db)
    .await?;
    Ok(JsonResponse(GrantList {
        success: true,
        email,
        total: grants.len(),
        permissions: grants,
    }))
}

/// `DELETE /permissions/{id}` (admin).
#[utoipa::path(
    delete,
    path = "/api/v1/permissions/{id}",
    tag = "permissions",
    params(("id" = i64, Path, description = "Grant id")),
    responses((status = 200, description = "Revoked", body = GrantRevoked), (status = 403, description = "ACCESS_DENIED: admin only", body = ErrorBody), (status = 404, description = "NOT_FOUND", body = ErrorBody))
)]
async fn revoke(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
) -> ApiResult<JsonResponse<GrantRevoked>> {
    require_admin(&p)?;
    let gone: Option<(String, String, String)> = sqlx::query_as(
        "delete from permissions g using mailboxes m, domains d
          where g.id = $1 and m.id = g.mailbox_id and d.id = g.domain_id
          returning m.email, d.domain, g.permission",
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await?;
    let (email, domain, permission) =
        gone.ok_or_else(|| ApiError::NotFound("Permission not found".into()))?;
    Ok(JsonResponse(GrantRevoked {
        success: true,
        message: format!("Revoked {permission} on {domain} from {email}"),
        id,
        email,
        domain,
        permission,
    }))
}
