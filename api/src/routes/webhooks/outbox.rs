//! What was sent to an endpoint and what is left to send: a test event, the attempts, the dead
//! letters, and replays. The worker does the sending (worker/src/webhooks); these routes only
//! read its records or put deliveries back in its queue.

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::events::{EVENT_COLUMNS, Event};
use utoipa::ToSchema;

use super::load;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::common::{ErrorBody, Page};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/{id}/test", post(send_test))
        .route("/webhooks/{id}/attempts", get(attempts))
        .route("/webhooks/{id}/dead-letters", get(dead_letters))
        .route("/webhooks/{id}/replay", post(replay))
}

/// Most event ids one replay request may name.
const MAX_REPLAY_IDS: usize = 1000;

/// The body of a test event: the envelope of every event, with a `data` of its own.
#[derive(Serialize)]
struct TestEvent {
    #[serde(rename = "type")]
    event_type: &'static str,
    #[serde(serialize_with = "crate::time::serialize")]
    timestamp: DateTime<Utc>,
    data: TestData,
}

#[derive(Serialize)]
struct TestData {
    webhook: i64,
    message: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct TestQueued {
    success: bool,
    /// The request's id in `GET /webhooks/{id}/attempts`.
    request_id: i64,
    /// The `webhook-id` header it is sent with (`test_<request_id>`).
    #[schema(example = "test_42")]
    msg_id: String,
}

/// `POST /webhooks/{id}/test`: queue a `webhook.test` event for the endpoint, sent by the
/// worker within a second or so and retried like any other; its attempts show how it went.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id")),
    responses((status = 202, description = "Queued; see the attempts for the answer", body = TestQueued), (status = 404, description = "NOT_FOUND: no such endpoint (or not yours)", body = ErrorBody))
)]
pub async fn send_test(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, JsonResponse<TestQueued>)> {
    load(&state, &p, id).await?;
    let body = serde_json::to_string(&TestEvent {
        event_type: "webhook.test",
        timestamp: Utc::now(),
        data: TestData {
            webhook: id,
            message: "A test event from the Mail API",
        },
    })
    .map_err(|e| ApiError::Internal(e.into()))?;
    let request_id: i64 = sqlx::query_scalar(
        "with n as (select nextval(pg_get_serial_sequence('webhook_requests', 'id')) as id)
         insert into webhook_requests (id, endpoint_id, webhook_id, body, event_count)
         select n.id, $1, 'test_' || n.id, $2, 0 from n
         returning id",
    )
    .bind(id)
    .bind(body)
    .fetch_one(&state.db)
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        JsonResponse(TestQueued {
            success: true,
            request_id,
            msg_id: format!("test_{request_id}"),
        }),
    ))
}

/// One request to the endpoint and what came back.
#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct Attempt {
    pub id: i64,
    pub request_id: i64,
    /// The `webhook-id` header the request carried: `evt_<event id>`, `batch_<id>` or
    /// `test_<id>`.
    pub msg_id: String,
    /// Events in the request (0 for a test event).
    pub event_count: i32,
    #[serde(serialize_with = "crate::time::serialize")]
    pub attempted_at: DateTime<Utc>,
    /// The HTTP status answered; `null` when none came (see `error`).
    #[schema(required = true)]
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    /// The first 1 KiB of the answer's body.
    #[schema(required = true)]
    pub response: Option<String>,
    /// Why no answer counted: a timeout, a refused connection, a refused address.
    #[schema(required = true)]
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptList {
    success: bool,
    total: i64,
    /// Newest first.
    attempts: Vec<Attempt>,
}

/// `GET /webhooks/{id}/attempts`: every attempt to this endpoint, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/attempts",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id"), Page),
    responses((status = 200, description = "A page of attempts, newest first", body = AttemptList), (status = 404, description = "NOT_FOUND: no such endpoint (or not yours)", body = ErrorBody))
)]
pub async fn attempts(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
) -> ApiResult<JsonResponse<AttemptList>> {
    let (limit, offset) = page.resolve()?;
    load(&state, &p, id).await?;
    let total: i64 =
        sqlx::query_scalar("select count(*) from webhook_attempts where endpoint_id = $1")
            .bind(id)
            .fetch_one(&state.db)
            .await?;
    let attempts = sqlx::query_as(
        "select a.id, a.request_id, r.webhook_id as msg_id, r.event_count, a.attempted_at, a.status_code,
                a.latency_ms, a.response_excerpt as response, a.error
           from webhook_attempts a join webhook_requests r on r.id = a.request_id
          where a.endpoint_id = $1
          order by a.id desc limit $2 offset $3",
    )
    .bind(id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db)
    .await?;
    Ok(JsonResponse(AttemptList {
        success: true,
        total,
        attempts,
    }))
}

/// An event whose last retry failed.
#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct DeadLetter {
    /// The event, as it was sent.
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub event: Event,
    /// When its last attempt failed.
    #[serde(serialize_with = "crate::time::serialize")]
    pub dead_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct DeadLetterList {
    success: bool,
    total: i64,
    dead_letters: Vec<DeadLetter>,
}

/// `GET /webhooks/{id}/dead-letters`: events this endpoint never took, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{id}/dead-letters",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id"), Page),
    responses((status = 200, description = "A page of dead letters, oldest first", body = DeadLetterList), (status = 404, description = "NOT_FOUND: no such endpoint (or not yours)", body = ErrorBody))
)]
pub async fn dead_letters(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
    Query(page): Query<Page>,
) -> ApiResult<JsonResponse<DeadLetterList>> {
    let (limit, offset) = page.resolve()?;
    load(&state, &p, id).await?;
    let total: i64 = sqlx::query_scalar(
        "select count(*) from webhook_deliveries where endpoint_id = $1 and state = 'dead'",
    )
    .bind(id)
    .fetch_one(&state.db)
    .await?;
    let dead_letters = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {EVENT_COLUMNS}, d.finished_at as dead_at
           from webhook_deliveries d
           join delivery_events e on e.id = d.event_id
           left join recipients r on r.id = e.recipient_id
          where d.endpoint_id = $1 and d.state = 'dead'
          order by d.id limit $2 offset $3"
    )))
    .bind(id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&state.db)
    .await?;
    Ok(JsonResponse(DeadLetterList {
        success: true,
        total,
        dead_letters,
    }))
}

/// What to send again; exactly one of the three forms.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// These events (ids as in the feed and in dead letters), at most 1000.
    #[serde(default)]
    #[schema(max_items = 1000)]
    event_ids: Option<Vec<i64>>,
    /// `true`: every dead letter of the endpoint.
    #[serde(default)]
    dead_letters: Option<bool>,
    /// With `to`: every event already sent or dead-lettered to this endpoint that occurred in
    /// `[from, to)`.
    #[serde(default)]
    from: Option<DateTime<Utc>>,
    #[serde(default)]
    to: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct Replayed {
    success: bool,
    /// Events queued again. Each keeps its id (`webhook-id: evt_<id>`), so receivers that
    /// already have it can drop it.
    replayed: i64,
}

/// `POST /webhooks/{id}/replay`: send events again, in their per-message order. Events still
/// waiting to be sent are left as they are.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{id}/replay",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Webhook id")),
    request_body = Replay,
    responses((status = 200, description = "Queued again", body = Replayed), (status = 400, description = "VALIDATION_ERROR: not exactly one of `event_ids`, `dead_letters: true`, `from` and `to`", body = ErrorBody), (status = 404, description = "NOT_FOUND: no such endpoint (or not yours)", body = ErrorBody))
)]
pub async fn replay(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<i64>,
    Json(req): Json<Replay>,
) -> ApiResult<JsonResponse<Replayed>> {
    let which = match (req.event_ids, req.dead_letters, req.from, req.to) {
        (Some(ids), None | Some(false), None, None) if !ids.is_empty() => {
            if ids.len() > MAX_REPLAY_IDS {
                return Err(ApiError::validation(
                    "event_ids",
                    format!("at most {MAX_REPLAY_IDS} ids"),
                ));
            }
            Which::Ids(ids)
        }
        (None, Some(true), None, None) => Which::Dead,
        (None, None | Some(false), Some(from), Some(to)) if from < to => Which::Range(from, to),
        _ => {
            return Err(ApiError::validation(
                "event_ids",
                "give exactly one of: a non-empty `event_ids`, `dead_letters: true`, or `from` before `to`",
            ));
        }
    };
    load(&state, &p, id).await?;
    let (ids, dead_only, from, to) = match which {
        Which::Ids(ids) => (Some(ids), false, None, None),
        Which::Dead => (None, true, None, None),
        Which::Range(f, t) => (None, false, Some(f), Some(t)),
    };
    let replayed = sqlx::query(
        "update webhook_deliveries d
            set state = 'pending', request_id = null, finished_at = null
           from delivery_events e
          where e.id = d.event_id and d.endpoint_id = $1 and d.state <> 'pending'
            and ($2::bigint[] is null or d.event_id = any($2))
            and (not $3 or d.state = 'dead')
            and ($4::timestamptz is null or (e.occurred_at >= $4 and e.occurred_at < $5))",
    )
    .bind(id)
    .bind(ids)
    .bind(dead_only)
    .bind(from)
    .bind(to)
    .execute(&state.db)
    .await?
    .rows_affected();
    Ok(JsonResponse(Replayed {
        success: true,
        replayed: replayed as i64,
    }))
}

enum Which {
    Ids(Vec<i64>),
    Dead,
    Range(DateTime<Utc>, DateTime<Utc>),
}
