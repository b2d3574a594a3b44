//! `/api/v1/webhooks`: the endpoints a sender registers to be told of every event
//! (docs/WEBHOOKS.md). This file manages them; `outbox` lists and replays what was sent. The
//! worker sends (worker/src/webhooks).
//!
//! Who sees an endpoint: an admin token, every one; a user token, those it made for its own
//! mail, and those of a domain it holds `manage_domains` on. Anything else answers exactly as an
//! id that does not exist.

pub mod input;
pub mod outbox;

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::secretbox::SecretBox;
use utoipa::ToSchema;

use self::input::{CreateWebhook, UpdateWebhook, Validated};
use crate::access::{Permission, require_domain};
use crate::auth::{Auth, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::common::{ErrorBody, Page};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(show).patch(update).delete(remove))
        .route("/webhooks/{id}/rotate", post(rotate))
        .merge(outbox::router())
}

/// A registered endpoint, as every answer shows it (the secret only at creation and rotation).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    /// Registry names (`recipient.delivered`...) or `*` for every type.
    pub events: Vec<String>,
    /// Set: the events of mail sent from this domain. `null`: the creating token's own mail
    /// (all mail for an admin token).
    #[schema(required = true)]
    pub domain: Option<String>,
    /// False after the owner turned it off or a receiver answered 410 Gone.
    pub enabled: bool,
    /// Skips intermediate deferrals (`recipient.deferred`).
    pub final_only: bool,
    /// Events per request, 1-100; above 1 the body is a JSON array.
    #[schema(minimum = 1, maximum = 100)]
    pub batch_size: i32,
    /// Why it was disabled (`410 Gone`, or by its owner); `null` while enabled.
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    /// Until when the secret replaced by the last rotation still signs; `null` when none does.
    #[serde(serialize_with = "crate::time::option::serialize")]
    #[schema(required = true)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::time::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// The columns of [`Webhook`] from `webhook_endpoints w`.
const COLUMNS: &str = "w.id, w.url, w.events, w.domain, w.enabled, w.final_only, w.batch_size, \
     w.disabled_reason, case when w.previous_secret_expires_at > now() \
     then w.previous_secret_expires_at end as previous_secret_expires_at, w.created_at, w.updated_at";

/// Which endpoints a token sees: `$1` is it an admin, `$2` its mailbox, `$3` that mailbox's id.
const VISIBLE: &str = "($1 or w.scope_email = $2 or (w.domain is not null and exists (
        select 1 from permissions g join domains d on d.id = g.domain_id
         where g.mailbox_id = $3 and d.domain = w.domain and g.permission = 'manage_domains')))";

/// An endpoint with its signing secret: shown once, at creation or rotation.
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    webhook: Webhook,
    /// `whsec_` and base64: the key of the `webhook-signature` HMAC. Shown only here.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    success: bool,
    webhook: WebhookWithSecret,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookAnswer {
    success: bool,
    webhook: Webhook,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    success: bool,
    /// Every endpoint the token sees, not only this page's.
    total: i64,
    webhooks: Vec<Webhook>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDeleted {
    success: bool,
    #[schema(example = "Webhook 7 deleted")]
    message: String,
    id: i64,
}

/// The box secrets are sealed in; without `MAILAPI_SECRET_KEY` webhooks cannot be registered.
pub(crate) fn secret_box(state: &AppState) -> ApiResult<SecretBox> {
    let key = state.settings.webhooks.secret_key.as_ref().ok_or_else(|| {
        ApiError::Unavailable(anyhow::anyhow!(
            "MAILAPI_SECRET_KEY is not set: webhooks are off"
        ))
    })?;
    SecretBox::new(key).map_err(|e| ApiError::Internal(e.into()))
}

fn visibility(p: &Principal) -> (bool, Option<&str>, Option<i64>) {
    (p.is_admin(), p.email(), p.mailbox.as_ref().map(|m| m.id))
}

/// The endpoint `id` if the token may see it; `NOT_FOUND` otherwise, as for a missing one.
pub(crate) async fn load(state: &AppState, p: &Principal, id: i64) -> ApiResult<Webhook> {
    let (admin, email, mailbox) = visibility(p);
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from webhook_endpoints w where {VISIBLE} and w.id = $4"
    )))
    .bind(admin)
    .bind(email)
    .bind(mailbox)
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(not_found)
}

pub(crate) fn not_found() -> ApiError {
    ApiError::NotFound("Webhook not found".into())
}

/// `POST /webhooks`: register an endpoint; its secret is in the answer, and only there.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Registered; `secret` is shown only here", body = WebhookCreated),
        (status = 400, description = "VALIDATION_ERROR: a bad URL (or one resolving to an internal address), an unknown event type, a batch_size outside 1-100", body = ErrorBody),
        (status = 403, description = "ACCESS_DENIED: `domain` needs an admin token or `manage_domains` on it", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: no such domain", body = ErrorBody),
        (status = 503, description = "SERVICE_UNAVAILABLE: MAILAPI_SECRET_KEY is not set on this server", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Json(req): Json<CreateWebhook>,
) -> ApiResult<(StatusCode, JsonResponse<WebhookCreated>)> {
    let sealer = secret_box(&state)?;
    let v: Validated = req.validate(&state.settings.webhooks).await?;
    let domain = match &v.domain {
        Some(d) => Some(
            require_domain(&state.db, &p, Permission::ManageDomains, d.as_str())
                .await?
                .domain,
        ),
        None => None,
    };
    let (scope_all, scope_email, scope_token) = match (&domain, p.is_admin()) {
        (Some(_), _) => (false, None, None),
        (None, true) => (true, None, None),
        (None, false) => (
            false,
            Some(p.email().ok_or_else(not_found)?.to_owned()),
            Some(p.token_id),
        ),
    };
    let secret = shared::webhook::new_secret();
    let sealed = sealer
        .seal(secret.as_bytes())
        .map_err(|e| ApiError::Internal(e.into()))?;
    let webhook: Webhook = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into webhook_endpoints as w (scope_all, scope_email, scope_token_id, domain, url,
             events, enabled, final_only, batch_size, secret_ciphertext)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         returning {COLUMNS}"
    )))
    .bind(scope_all)
    .bind(scope_email)
    .bind(scope_token)
    .bind(domain)
    .bind(v.url.as_str())
    .bind(&v.events)
    .bind(v.enabled.unwrap_or(true))
    .bind(v.final_only.unwrap_or(false))
    .bind(v.batch_size.unwrap_or(1))
    .bind(sealed)
    .fetch_one(&state.db)
    .await?;
    Ok((
        StatusCode::CREATED,
        JsonResponse(WebhookCreated {
            success: true,
            webhook: WebhookWithSecret { webhook, secret },
        }),
    ))
}

/// `GET /webhooks`: the endpoints this token sees, by id.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "webhooks",
    params(Page),
    responses((status = 200, description = "A page of endpoints, by id", body = WebhookList))
)]
pub async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(page): Query<Page>,
) -> ApiResult<JsonResponse<WebhookList>> {
    let (limit, offset) = page.resolve()?;
    let (admin, email, mailbox) = visibility(&p);
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from webhook_endpoints w where {VISIBLE}"
    )))
    .bind(admin)
    .bind(email)
    .bind(mailbox)
    .fetch_one(&state.db)
    .await?;
    let webhooks = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from webhook_endpoints w where {VISIBLE}
          order by w.id limit $4 offset $5"
    )))
    .bind(admin)
    .bind(email)
    .bind(mailbox)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db)
    .await?;
    Ok(JsonResponse(WebhookList {
        success: true,
        total,
        webhooks,
    }))
}

/// `GET /webhooks/{id}`: one endpoint, without its secret.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id")),
    responses((status = 200, description = "The endpoint", body = WebhookAnswer), (status = 404, description = "NOT_FOUND: no such endpoint (or not yours)", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
) -> ApiResult<JsonResponse<WebhookAnswer>> {
    let webhook = load(&state, &p, id).await?;
    Ok(JsonResponse(WebhookAnswer {
        success: true,
        webhook,
    }))
}

/// `PATCH /webhooks/{id}`: change the URL, the events, `enabled`, `final_only`, `batch_size`.
/// Enabling an endpoint clears why it was disabled and closes its breaker.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id")),
    request_body = UpdateWebhook,
    responses((status = 200, description = "The endpoint as it is now", body = WebhookAnswer), (status = 400, description = "VALIDATION_ERROR", body = ErrorBody), (status = 404, description = "NOT_FOUND: no such endpoint (or not yours)", body = ErrorBody))
)]
pub async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
    Json(req): Json<UpdateWebhook>,
) -> ApiResult<JsonResponse<WebhookAnswer>> {
    let v = req.validate(&state.settings.webhooks).await?;
    load(&state, &p, id).await?;
    let webhook: Webhook = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update webhook_endpoints w
            set url = coalesce($2, w.url),
                events = coalesce($3, w.events),
                final_only = coalesce($4, w.final_only),
                batch_size = coalesce($5, w.batch_size),
                enabled = coalesce($6, w.enabled),
                disabled_reason = case when $6 then null
                                       when $6 = false and w.enabled then 'disabled by its owner'
                                       else w.disabled_reason end,
                failures_in_a_row = case when $6 then 0 else w.failures_in_a_row end,
                paused_until = case when $6 then null else w.paused_until end,
                updated_at = now()
          where w.id = $1
          returning {COLUMNS}"
    )))
    .bind(id)
    .bind(v.url.as_ref().map(|u| u.as_str()))
    .bind(v.events)
    .bind(v.final_only)
    .bind(v.batch_size)
    .bind(v.enabled)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(not_found)?;
    Ok(JsonResponse(WebhookAnswer {
        success: true,
        webhook,
    }))
}

/// `DELETE /webhooks/{id}`: the endpoint and everything not yet sent to it.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id")),
    responses((status = 200, description = "Deleted", body = WebhookDeleted), (status = 404, description = "NOT_FOUND: no such endpoint (or not yours)", body = ErrorBody))
)]
pub async fn remove(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
) -> ApiResult<JsonResponse<WebhookDeleted>> {
    load(&state, &p, id).await?;
    sqlx::query("delete from webhook_endpoints where id = $1")
        .bind(id)
        .execute(&state.db)
        .await?;
    Ok(JsonResponse(WebhookDeleted {
        success: true,
        message: format!("Webhook {id} deleted"),
        id,
    }))
}

/// `POST /webhooks/{id}/rotate`: a new secret. The one it replaces keeps signing beside it for
/// `MAILAPI_WEBHOOK_SECRET_OVERLAP_SECS` (both signatures in `webhook-signature`), so receivers
/// can switch without losing a request.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/rotate",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id")),
    responses((status = 200, description = "The new secret, shown only here", body = WebhookCreated), (status = 404, description = "NOT_FOUND: no such endpoint (or not yours)", body = ErrorBody), (status = 503, description = "SERVICE_UNAVAILABLE: MAILAPI_SECRET_KEY is not set on this server", body = ErrorBody))
)]
pub async fn rotate(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
) -> ApiResult<JsonResponse<WebhookCreated>> {
    let sealer = secret_box(&state)?;
    load(&state, &p, id).await?;
    let secret = shared::webhook::new_secret();
    let sealed = sealer
        .seal(secret.as_bytes())
        .map_err(|e| ApiError::Internal(e.into()))?;
    let overlap = state.settings.webhooks.secret_overlap.as_secs_f64();
    let webhook: Webhook = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update webhook_endpoints w
            set previous_secret_ciphertext = w.secret_ciphertext,
                previous_secret_expires_at = now() + make_interval(secs => $3),
                secret_ciphertext = $2,
                updated_at = now()
          where w.id = $1
          returning {COLUMNS}"
    )))
    .bind(id)
    .bind(sealed)
    .bind(overlap)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(not_found)?;
    Ok(JsonResponse(WebhookCreated {
        success: true,
        webhook: WebhookWithSecret { webhook, secret },
    }))
}
