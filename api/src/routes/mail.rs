//! `POST /mail/send`, `GET /mail/{message_id}/status`, `GET /mail/sent`.

use axum::Json as JsonResponse;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::outgoing::rfc_message_id;
use std::time::Duration;
use uuid::Uuid;

use crate::access::{may_send_as, message_scope, require_message_access};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query, parse_json};
use crate::routes::common::{ErrorBody, MessageStatus, Page, RecipientStatus};
use crate::send::accept::{Accept, Keyed, Outcome};
use crate::send::idempotency::IdempotencyKey;
use crate::send::request::SendRequest;
use crate::send::store::{self, NewMessage, SendResponse};
use crate::send::wait::{self, Settled};
use crate::state::AppState;

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
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$", description = "Replays the first response for 24 h instead of sending again (1-255 printable ASCII characters)"),
        ("Prefer" = Option<String>, Header, description = "RFC 7240. `wait=N` holds the answer until the mail server has queued the message (at most N seconds, capped at 30): the answer then has `status: submitted` and the MTA's `queue_id`, with `Preference-Applied: wait=N`. A permanent refusal at submission answers 500 `SEND_FAILED` with the MTA's reply; when the time runs out the answer is the usual `pending` one. Malformed or unknown preferences are ignored."),
    ),
    request_body = SendRequest,
    responses((status = 202, description = "Accepted: stored, and queued unless every recipient is suppressed. `status` is `pending` and `queue_id` null unless the request waited (`Prefer: wait`)", body = SendResponse), (status = 403, description = "DOMAIN_NOT_ALLOWED or SENDER_NOT_AUTHORIZED", body = ErrorBody), (status = 422, description = "IDEMPOTENCY_KEY_REUSED with another body", body = ErrorBody), (status = 500, description = "SEND_FAILED (only with `Prefer: wait`): the mail server refused the message; `message` has its reply and `message_id` the stored message", body = ErrorBody))
)]
async fn send(
    State(state): State<AppState>,
    Auth(p): Auth,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    // First: a refused send must cost as little as possible (an idempotent retry is refused
    // too, and gets its stored answer once the backlog is back under the threshold).
    crate::overload::middleware::check_send(&state)?;
    let key = IdempotencyKey::from_headers(&headers, &body)?;
    let wait = wait::requested(&headers);
    let request: SendRequest = parse_json(&body)?;
    let message = request.validate(state.settings.limits.max_recipients)?;

    let from = message.from.email.as_str();
    let from_domain = message.from.email.domain();
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
    let accept = Accept {
        message: NewMessage {
            id,
            token_id: p.token_id,
            rfc_message_id: rfc_id,
            message,
            size_bytes: size,
            traceparent,
        },
        span: state
            .tracer
            .is_enabled()
            .then(opentelemetry::Context::current),
    };
    let keyed = key.as_ref().map(|key| Keyed {
        key,
        recipient_count,
    });
    let status = match state.accepter.accept(accept, keyed).await? {
        Outcome::Stored(status) => status,
        Outcome::Replayed(stored) => return replay(&state, stored, wait).await,
    };
    metrics::counter!(shared::metrics::MESSAGES_ACCEPTED).increment(1);
    answer(&state, id, status, recipient_count, wait).await
}

/// The 202, at once or (with `Prefer: wait`) once the message is submitted; see [`wait`].
async fn answer(
    state: &AppState,
    id: Uuid,
    status: MessageStatus,
    recipient_count: usize,
    wait: Option<Duration>,
) -> ApiResult<Response> {
    let Some(wait) = wait else {
        let body = store::accepted_response(id, status, None, recipient_count);
        return Ok((StatusCode::ACCEPTED, JsonResponse(body)).into_response());
    };
    // Only a message waiting for the MTA is worth waiting for.
    let (status, queue_id) = if status == MessageStatus::Pending {
        match wait::until_submitted(state, id, wait).await? {
            Settled::Status { status, queue_id } => (status, queue_id),
            Settled::Failed { reply } => {
                let e = ApiError::SendFailed {
                    message_id: id,
                    reply,
                };
                return Ok(with_applied(e.into_response(), wait));
            }
        }
    } else {
        (status, None)
    };
    let body = store::accepted_response(id, status, queue_id.as_deref(), recipient_count);
    let response = (StatusCode::ACCEPTED, JsonResponse(body)).into_response();
    Ok(with_applied(response, wait))
}

/// The stored answer of an earlier request with the same `Idempotency-Key`; with
/// `Prefer: wait`, brought up to date the same way a first answer would be.
async fn replay(
    state: &AppState,
    stored: SendResponse,
    wait: Option<Duration>,
) -> ApiResult<Response> {
    match wait {
        None => Ok((StatusCode::ACCEPTED, JsonResponse(stored)).into_response()),
        Some(wait) => {
            answer(
                state,
                stored.message_id,
                stored.status,
                stored.recipient_count,
                Some(wait),
            )
            .await
        }
    }
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
    status: MessageStatus,
    created_at: DateTime<Utc>,
    submitted_at: Option<DateTime<Utc>>,
    queue_id: Option<String>,
}

/// `to`, `cc` or `bcc`.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum RecipientKind {
    To,
    Cc,
    Bcc,
}

#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RecipientState {
    #[schema(format = Email, example = "recipient@example.com")]
    email: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "kind")]
    kind: RecipientKind,
    status: RecipientStatus,
    /// The DSN status code (`2.0.0`, `5.1.1`...), once known.
    #[schema(required = true, example = "2.0.0")]
    dsn_code: Option<String>,
    /// The receiving server's reply, once known.
    #[schema(required = true)]
    smtp_response: Option<String>,
    #[serde(serialize_with = "crate::time::option::serialize")]
    #[schema(required = true)]
    delivered_at: Option<DateTime<Utc>>,
}

/// `GET /mail/{message_id}/status`: the spec's keys, plus the mail server's `queue_id`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageState {
    success: bool,
    message_id: Uuid,
    status: MessageStatus,
    /// The mail server's queue id, once submitted.
    #[schema(required = true)]
    queue_id: Option<String>,
    #[serde(serialize_with = "crate::time::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::option::serialize")]
    #[schema(required = true)]
    submitted_at: Option<DateTime<Utc>>,
    recipients: Vec<RecipientState>,
}

/// `GET /mail/{message_id}/status`. A message the token may not see is `MESSAGE_NOT_FOUND`,
/// exactly like an id that does not exist (also a malformed id).
#[utoipa::path(
    get,
    path = "/api/v1/mail/{message_id}/status",
    tag = "mail",
    params(("message_id" = String, Path, format = Uuid, description = "Message id (UUID)")),
    responses((status = 200, description = "The message's status and each recipient's", body = MessageState), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MESSAGE_NOT_FOUND", body = ErrorBody))
)]
async fn status(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(raw_id): Path<String>,
) -> ApiResult<JsonResponse<MessageState>> {
    let id = Uuid::parse_str(&raw_id).map_err(|_| ApiError::MessageNotFound)?;
    require_message_access(&state.db, &p, id).await?;
    let m: MessageRow = sqlx::query_as(
        "select status, created_at, submitted_at, queue_id from messages where id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::MessageNotFound)?;
    let recipients: Vec<RecipientState> = sqlx::query_as(
        "select email, kind, status, dsn_code, smtp_response, delivered_at
           from recipients where message_id = $1 order by id",
    )
    .bind(id)
    .fetch_all(&state.db)
    .await?;
    Ok(JsonResponse(MessageState {
        success: true,
        message_id: id,
        status: m.status,
        queue_id: m.queue_id,
        created_at: m.created_at,
        submitted_at: m.submitted_at,
        recipients,
    }))
}

/// One message as `GET /mail/sent` lists it.
#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SentMessage {
    #[sqlx(rename = "id")]
    message_id: Uuid,
    #[sqlx(rename = "from_email")]
    #[schema(format = Email, example = "sender@yourdomain.com")]
    from: String,
    /// The `to` recipients (not cc or bcc).
    #[sqlx(rename = "to_emails")]
    to: Vec<String>,
    subject: String,
    status: MessageStatus,
    #[serde(serialize_with = "crate::time::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::option::serialize")]
    #[schema(required = true)]
    submitted_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SentList {
    success: bool,
    /// Every message the token sees, not only this page's.
    total: i64,
    messages: Vec<SentMessage>,
}

/// `GET /mail/sent`: newest first. Admin tokens see every message; a user token sees messages
/// sent from its mailbox or with itself (the same rule as the status endpoint).
#[utoipa::path(
    get,
    path = "/api/v1/mail/sent",
    tag = "mail",
    params(Page),
    responses((status = 200, description = "A page of sent messages, newest first", body = SentList))
)]
async fn sent(
    State(state): State<AppState>,
    Auth(p): Auth,
    Query(page): Query<Page>,
) -> ApiResult<JsonResponse<SentList>> {
    let (limit, offset) = page.resolve()?;
    let (scope_email, scope_token) = message_scope(&p);
    let filter = "($1::text is null or m.from_email = $1 or m.token_id = $2)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from messages m where {filter}"
    )))
    .bind(&scope_email)
    .bind(scope_token)
    .fetch_one(&state.db)
    .await?;
    let messages: Vec<SentMessage> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
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
    Ok(JsonResponse(SentList {
        success: true,
        total,
        messages,
    }))
}
