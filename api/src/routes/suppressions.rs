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
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::address::{DomainName, EmailAddress};
use uuid::Uuid;

use crate::access::{Permission, require_permission};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::docs::bodies;
use crate::routes::docs::spec::ErrorBody;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/suppressions", get(list).post(add))
        .route("/suppressions/{domain}/{email}", delete(remove))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    domain: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Items to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Row {
    domain: String,
    email: String,
    reason: String,
    source: String,
    dsn_code: Option<String>,
    message_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

fn render(r: Row) -> Value {
    json!({
        "domain": r.domain,
        "email": r.email,
        "reason": r.reason,
        "source": r.source,
        "dsn_code": r.dsn_code,
        "message_id": r.message_id,
        "created_at": time::format(&r.created_at),
    })
}

fn parse_domain(raw: &str) -> ApiResult<DomainName> {
    DomainName::parse(raw).map_err(|e| ApiError::validation("domain", e.to_string()))
}

#[utoipa::path(
    get,
    path = "/api/v1/suppressions",
    tag = "suppressions",
    params(ListQuery),
    responses((status = 200, description = "{success, total, suppressions}", body = bodies::SuppressionList), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody))
)]
async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let (limit, offset) = crate::routes::tokens::Page {
        limit: q.limit,
        offset: q.offset,
    }
    .resolve()?;
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
    let rows: Vec<Row> = sqlx::query_as(
        "select domain, email, reason, source, dsn_code, message_id, created_at
           from suppressions where $1::text is null or domain = $1
          order by created_at desc, id desc limit $2 offset $3",
    )
    .bind(&domain)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db)
    .await?;
    Ok(JsonResponse(json!({
        "success": true,
        "total": total,
        "suppressions": rows.into_iter().map(render).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    domain: String,
    email: String,
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/suppressions",
    tag = "suppressions",
    request_body = AddRequest,
    responses((status = 201, description = "{success, suppression}", body = bodies::SuppressionAdded), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 409, description = "SUPPRESSION_EXISTS", body = ErrorBody))
)]
async fn add(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<AddRequest>,
) -> ApiResult<impl IntoResponse> {
    let domain = parse_domain(&req.domain)?;
    let email = EmailAddress::parse(&req.email)
        .map_err(|e| ApiError::validation("email", e.to_string()))?;
    let reason = req.reason.unwrap_or_else(|| "added by hand".to_owned());
    if reason.len() > 1000 || shared::address::has_control_chars(&reason) {
        return Err(ApiError::validation(
            "reason",
            "must be at most 1000 printable characters",
        ));
    }
    require_permission(&state.db, &p, Permission::ManageDomains, domain.as_str()).await?;
    let row: Option<Row> = sqlx::query_as(
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
        Some(r) => {
            let mut body = render(r);
            body["success"] = json!(true);
            Ok((StatusCode::CREATED, JsonResponse(body)))
        }
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
    params(("domain" = String, Path, description = "Domain name"), ("email" = String, Path, description = "Suppressed address")),
    responses((status = 200, description = "{success, message}", body = bodies::Message), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "NOT_FOUND", body = ErrorBody))
)]
async fn remove(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((domain, email)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
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
    Ok(JsonResponse(json!({
        "success": true,
        "message": format!("{email} is no longer suppressed for {domain}"),
    })))
}
