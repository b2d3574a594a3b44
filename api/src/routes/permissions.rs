//! `/permissions`: per-domain grants to a mailbox (the spec's permission table). Admins grant
//! and revoke; a mailbox's own token may list its grants.

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::address::EmailAddress;

use super::domains::parse_domain;
use crate::access::{Permission, require_admin, require_self_or_admin};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::docs::bodies;
use crate::routes::docs::spec::ErrorBody;
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

#[derive(Deserialize, utoipa::ToSchema)]
struct BulkGrant {
    email: Option<String>,
    domain: Option<String>,
    permissions: Option<Vec<String>>,
}

/// `POST /permissions/bulk` (admin): 201 with what was `granted` and what was `skipped` because
/// the mailbox already held it, in the order requested.
#[utoipa::path(
    post,
    path = "/api/v1/permissions/bulk",
    tag = "permissions",
    request_body = BulkGrant,
    responses((status = 201, description = "{success, granted, skipped}", body = bodies::BulkGranted), (status = 403, description = "ACCESS_DENIED: admin only", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND or NOT_FOUND (domain)", body = ErrorBody))
)]
async fn bulk_grant(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<BulkGrant>,
) -> ApiResult<impl IntoResponse> {
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

    let as_text: Vec<&str> = wanted.iter().map(|p| p.as_str()).collect();
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
    let (granted, skipped): (Vec<&str>, Vec<&str>) = as_text
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
        JsonResponse(json!({
            "success": true,
            "message": message,
            "granted": granted,
            "skipped": skipped,
        })),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    email: Option<String>,
}

#[derive(Serialize, sqlx::FromRow)]
struct Grant {
    id: i64,
    domain: String,
    permission: String,
    #[serde(with = "crate::time")]
    created_at: DateTime<Utc>,
}

/// `GET /permissions?email=`: admin, or the mailbox's own token.
#[utoipa::path(
    get,
    path = "/api/v1/permissions",
    tag = "permissions",
    params(ListQuery),
    responses((status = 200, description = "{success, email, permissions}", body = bodies::GrantList), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MAILBOX_NOT_FOUND", body = ErrorBody))
)]
async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
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
    Ok(JsonResponse(json!({
        "success": true,
        "email": email,
        "total": grants.len(),
        "permissions": grants,
    })))
}

/// `DELETE /permissions/{id}` (admin).
#[utoipa::path(
    delete,
    path = "/api/v1/permissions/{id}",
    tag = "permissions",
    params(("id" = i64, Path, description = "Grant id")),
    responses((status = 200, description = "{success, message, id}", body = bodies::GrantRevoked), (status = 403, description = "ACCESS_DENIED: admin only", body = ErrorBody), (status = 404, description = "NOT_FOUND", body = ErrorBody))
)]
async fn revoke(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
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
    Ok(JsonResponse(json!({
        "success": true,
        "message": format!("Revoked {permission} on {domain} from {email}"),
        "id": id,
        "email": email,
        "domain": domain,
        "permission": permission,
    })))
}
