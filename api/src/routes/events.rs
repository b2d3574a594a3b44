//! `GET /mail/{message_id}/events`: a message's delivery timeline, every status change with its
//! evidence (the SMTP reply, the MTA's log line, the bounce report's fields). Same access rule as
//! the status endpoint: a message the token may not see is `MESSAGE_NOT_FOUND`.

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::access::require_message_access;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::routes::common::ErrorBody;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/mail/{message_id}/events", get(events))
}

/// Who recorded an event.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum EventSource {
    /// The API, when it accepted the message.
    Api,
    /// The worker, from the SMTP submission.
    Worker,
    /// The MTA's delivery log.
    Log,
    /// A bounce report (DSN) that came back.
    Dsn,
}

/// One status change of a message or of one of its recipients, with its evidence.
#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Event {
    id: i64,
    /// What happened: `accepted`, `submitted`, `delivered`, `bounced`...
    event: String,
    /// The status it led to.
    #[schema(required = true)]
    status: Option<String>,
    /// The recipient it concerns; `null` for the message as a whole.
    #[schema(required = true)]
    recipient: Option<String>,
    #[schema(required = true)]
    dsn_code: Option<String>,
    #[schema(required = true)]
    smtp_response: Option<String>,
    source: EventSource,
    /// The raw evidence: the MTA's log line, the bounce report's fields.
    #[schema(required = true)]
    evidence: Option<String>,
    #[serde(serialize_with = "crate::time::serialize")]
    occurred_at: DateTime<Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventList {
    success: bool,
    message_id: Uuid,
    total: usize,
    events: Vec<Event>,
}

#[utoipa::path(
    get,
    path = "/api/v1/mail/{message_id}/events",
    tag = "mail",
    params(("message_id" = String, Path, format = Uuid, description = "Message id (UUID)")),
    responses((status = 200, description = "The message's events, oldest first", body = EventList), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MESSAGE_NOT_FOUND", body = ErrorBody))
)]
async fn events(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(raw_id): Path<String>,
) -> ApiResult<JsonResponse<EventList>> {
    let id = Uuid::parse_str(&raw_id).map_err(|_| ApiError::MessageNotFound)?;
    require_message_access(&state.db, &p, id).await?;
    let events: Vec<Event> = sqlx::query_as(
        "select e.id, e.event, e.status, r.email as recipient, e.dsn_code, e.smtp_response,
                e.source, e.evidence, e.occurred_at
           from delivery_events e
           left join recipients r on r.id = e.recipient_id
          where e.message_id = $1
          order by e.id",
    )
    .bind(id)
    .fetch_all(&state.db)
    .await?;
    Ok(JsonResponse(EventList {
        success: true,
        message_id: id,
        total: events.len(),
        events,
    }))
}
