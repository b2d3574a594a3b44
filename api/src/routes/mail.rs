//! `POST /mail/send`, `GET /mail/{message_id}/status`, `GET /mail/sent`.

use axum::Json as JsonResponse;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::jobs::SendJob;
use shared::outgoing::rfc_message_id;
use uuid::Uuid;

use crate::access::{may_send_as, require_message_access};
use crate::auth::{Auth, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query, parse_json};
use crate::routes::docs::bodies;
use crate::routes::docs::spec::ErrorBody;
use crate::routes::tokens::Page;
use crate::send::accept::{Accept, Failure};
use crate::send::enqueue::enqueue;
use crate::send::idempotency::{self, IdempotencyKey, Previous};
use crate::send::request::SendRequest;
use crate::send::store::{self, NewMessage};
use crate::send::wait::{self, Settled};
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/mail/send", post(send))
        .route("/mail/sent", get(sent))
        .route("/mail/{message_id}/status", get(status))
}

/// Room left for the headers the worker adds (DKIM-Signature, Received) when comparing a
/// message's size with the MTA's limit.
const HEADER_ALLOWANCE: usize = 4096;

/// `POST /mail/send`: 202 once the message is committed to Postgres.
#[utoipa::path(
    post,
    path = "/api/v1/mail/send",
    tag = "mail",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h instead of sending again"),
        ("Prefer" = Option<String>, Header, description = "RFC 7240. `wait=N` holds the answer until the MTA has queued the message (at most N seconds, capped at 30): the answer then has `status: submitted` and the MTA's `queue_id`, with `Preference-Applied: wait=N`. A permanent refusal at submission answers 500 `SEND_FAILED` with the MTA's reply; when the time runs out the answer is the usual `pending` one. Malformed or unknown preferences are ignored."),
    ),
    request_body = SendRequest,
    responses((status = 202, description = "Accepted: {success, message_id, status, queue_id, recipient_count}. `status` is `pending` and `queue_id` null unless the request waited (`Prefer: wait`)", body = bodies::Accepted), (status = 403, description = "DOMAIN_NOT_ALLOWED or SENDER_NOT_AUTHORIZED", body = ErrorBody), (status = 422, description = "IDEMPOTENCY_KEY_REUSED with another body", body = ErrorBody), (status = 500, description = "SEND_FAILED (only with `Prefer: wait`): the MTA refused the message; `message` has its reply and `message_id` the stored message", body = ErrorBody))
)]
async fn send(
    State(state): State<AppState>,
    Auth(p): Auth,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let key = IdempotencyKey::from_headers(&headers, &body)?;
    let wait = wait::requested(&headers);
    let request: SendRequest = parse_json(&body)?;
    let message = request.validate(state.settings.limits.max_recipients)?;

    let from = &message.from.email;
    let from_domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    if !state
        .active_domains
        .is_active(&state.db, from_domain)
        .await?
    {
        return Err(ApiError::DomainNotAllowed(format!(
            "Sender domain {from_domain} is not an active domain of this server"
        )));
    }
    if !may_send_as(&state.db, &p, from).await? {
        return Err(ApiError::SenderNotAuthorized(format!(
            "This token cannot send as {from}"
        )));
    }

    let id = Uuid::now_v7();
    let rfc_id = rfc_message_id(id, from_domain);
    let mime = message
        .build(&rfc_id, Utc::now())
        .map_err(|e| ApiError::validation("body", e.to_string()))?;
    let size = mime.formatted().len();
    let limit = state.settings.smtp.max_message_bytes;
    if size + HEADER_ALLOWANCE > limit {
        return Err(ApiError::invalid(
            "MESSAGE_TOO_LARGE",
            Some("attachments".to_owned()),
            format!(
                "The encoded message would be {size} bytes; the mail server accepts at most {} bytes",
                limit.saturating_sub(HEADER_ALLOWANCE)
            ),
        ));
    }

    let recipient_count = message.recipients().count();
    // The request span's, so the worker and the log follower continue this request's trace.
    let traceparent = state.tracer.current_traceparent();
    let new = NewMessage {
        id,
        token_id: p.token_id,
        rfc_message_id: rfc_id,
        message,
        size_bytes: size,
        traceparent: traceparent.clone(),
    };
    let status = match &key {
        // Without a key the message joins the next group commit, which also adds its stream
        // entry (send::accept).
        None => {
            let span = state
                .tracer
                .is_enabled()
                .then(opentelemetry::Context::current);
            state
                .accepter
                .accept(Accept { message: new, span })
                .await
                .map_err(|f| match f {
                    Failure::Unavailable(e) => ApiError::Unavailable(anyhow::anyhow!(e)),
                    Failure::Internal(e) => ApiError::Internal(anyhow::anyhow!(e)),
                })?
        }
        Some(key) => {
            let mut tx = state.db.begin().await?;
            if let Previous::Replay(stored) = idempotency::check(&mut tx, key, p.token_id).await? {
                tx.rollback().await?;
                return replay(&state, stored, wait).await;
            }
            let status = state
                .tracer
                .in_span(
                    store::INSERT_SPAN,
                    store::span_attributes,
                    store::insert_messages(&mut tx, &[&new]),
                )
                .await?
                .remove(0);
            let response = store::accepted_response(id, &status, None, recipient_count);
            let expires = Utc::now()
                + chrono::Duration::from_std(state.settings.limits.idempotency_ttl)
                    .unwrap_or(chrono::Duration::hours(24));
            store::insert_idempotency(&mut tx, key, p.token_id, id, &response, expires).await?;
            tx.commit().await?;
            if status == "pending" {
                enqueue(
                    &state,
                    &SendJob {
                        message_id: id,
                        traceparent,
                    },
                )
                .await;
            }
            status
        }
    };
    metrics::counter!(shared::metrics::MESSAGES_ACCEPTED).increment(1);
    answer(&state, id, status, recipient_count, wait).await
}

/// The 202, at once or (with `Prefer: wait`) once the message is submitted; see [`wait`].
async fn answer(
    state: &AppState,
    id: Uuid,
    status: String,
    recipient_count: usize,
    wait: Option<Duration>,
) -> ApiResult<Response> {
    let Some(wait) = wait else {
        let body = store::accepted_response(id, &status, None, recipient_count);
        return Ok((StatusCode::ACCEPTED, JsonResponse(body)).into_response());
    };
    // Only a message waiting for the MTA is worth waiting for.
    let (status, queue_id) = if status == "pending" {
        match wait::until_submitted(state, id, wait).await {
            Ok(Settled::Status { status, queue_id }) => (status, queue_id),
            Ok(Settled::Failed { reply }) => {
                let e = ApiError::SendFailed {
                    message_id: id,
                    reply,
                };
                return Ok(with_applied(e.into_response(), wait));
            }
            Err(e) => return Err(e),
        }
    } else {
        (status, None)
    };
    let body = store::accepted_response(id, &status, queue_id.as_deref(), recipient_count);
    let response = (StatusCode::ACCEPTED, JsonResponse(body)).into_response();
    Ok(with_applied(response, wait))
}

/// The stored answer of an earlier request with the same `Idempotency-Key`; with
/// `Prefer: wait`, brought up to date the same way a first answer would be.
async fn replay(state: &AppState, stored: Value, wait: Option<Duration>) -> ApiResult<Response> {
    let id = stored["message_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok());
    let (Some(id), Some(wait)) = (id, wait) else {
        return Ok((StatusCode::ACCEPTED, JsonResponse(stored)).into_response());
    };
    let status = stored["status"].as_str().unwrap_or("pending").to_owned();
    let count = stored["recipient_count"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_default();
    answer(state, id, status, count, Some(wait)).await
}

fn with_applied(mut response: Response, wait: Duration) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [wait::applied(wait), wait::vary()] {
        headers.insert(name, value);
    }
    response
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    status: String,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    queue_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RecipientRow {
    email: String,
    kind: String,
    status: String,
    dsn_code: Option<String>,
    smtp_response: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
}

/// `GET /mail/{message_id}/status`. A message the token may not see is `MESSAGE_NOT_FOUND`,
/// exactly like an id that does not exist (also a malformed id).
#[utoipa::path(
    get,
    path = "/api/v1/mail/{message_id}/status",
    tag = "mail",
    params(("message_id" = String, Path, description = "Message id (UUID)")),
    responses((status = 200, description = "{success, message_id, status, recipients, ...}", body = bodies::MessageStatus), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MESSAGE_NOT_FOUND", body = ErrorBody))
)]
async fn status(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(raw_id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = Uuid::parse_str(&raw_id).map_err(|_| ApiError::MessageNotFound)?;
    require_message_access(&state.db, &p, id).await?;
    let m: MessageRow = sqlx::query_as(
        "select status, created_at, submitted_at, queue_id from messages where id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::MessageNotFound)?;
    let recipients: Vec<RecipientRow> = sqlx::query_as(
        "select email, kind, status, dsn_code, smtp_response, delivered_at
           from recipients where message_id = $1 order by id",
    )
    .bind(id)
    .fetch_all(&state.db)
    .await?;
    let recipients: Vec<Value> = recipients
        .into_iter()
        .map(|r| {
            json!({
                "email": r.email,
                "type": r.kind,
                "status": r.status,
                "dsn_code": r.dsn_code,
                "smtp_response": r.smtp_response,
                "delivered_at": r.delivered_at.map(|t| time::format(&t)),
            })
        })
        .collect();
    Ok(JsonResponse(json!({
        "success": true,
        "message_id": id,
        "status": m.status,
        "queue_id": m.queue_id,
        "created_at": time::format(&m.created_at),
        "submitted_at": m.submitted_at.map(|t| time::format(&t)),
        "recipients": recipients,
    })))
}

#[derive(sqlx::FromRow)]
struct SentRow {
    id: Uuid,
    from_email: String,
    to_emails: Vec<String>,
    subject: String,
    status: String,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
}

/// `GET /mail/sent`: newest first. Admin tokens see every message; a user token sees messages
/// sent from its mailbox or with itself (the same rule as the status endpoint).
#[utoipa::path(
    get,
    path = "/api/v1/mail/sent",
    tag = "mail",
    params(Page),
    responses((status = 200, description = "{success, total, messages}", body = bodies::SentList))
)]
async fn sent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(page): Query<Page>,
) -> ApiResult<impl IntoResponse> {
    let (limit, offset) = page.resolve()?;
    let (scope_email, scope_token) = scope(&p);
    let filter = "($1::text is null or m.from_email = $1 or m.token_id = $2)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from messages m where {filter}"
    )))
    .bind(&scope_email)
    .bind(scope_token)
    .fetch_one(&state.db)
    .await?;
    let rows: Vec<SentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select m.id, m.from_email, m.subject, m.status, m.created_at, m.submitted_at,
                coalesce(array(select r.email from recipients r
                                where r.message_id = m.id and r.kind = 'to' order by r.id),
                         '{{}}') as to_emails
           from messages m
          where {filter}
          order by m.created_at desc, m.id desc
          limit $3 offset $4"
    )))
    .bind(scope_email)
    .bind(scope_token)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db)
    .await?;
    let messages: Vec<Value> = rows
        .into_iter()
        .map(|m| {
            json!({
                "message_id": m.id,
                "from": m.from_email,
                "to": m.to_emails,
                "subject": m.subject,
                "status": m.status,
                "created_at": time::format(&m.created_at),
                "submitted_at": m.submitted_at.map(|t| time::format(&t)),
            })
        })
        .collect();
    Ok(JsonResponse(
        json!({ "success": true, "total": total, "messages": messages }),
    ))
}

/// `(None, _)` for admins (everything); otherwise the mailbox and the token a user sees.
fn scope(p: &Principal) -> (Option<String>, i64) {
    if p.is_admin() {
        (None, p.token_id)
    } else {
        (Some(p.email().unwrap_or_default().to_owned()), p.token_id)
    }
}
