//! `GET /mail/{message_id}/events`: a message's delivery timeline, every status change with its
//! evidence (the SMTP reply, the MTA's log line, the bounce report's fields). Same access rule as
//! the status endpoint: a message the token may not see is `MESSAGE_NOT_FOUND`.

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use uuid::Uuid;

use crate::access::require_message_access;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::routes::common::ErrorBody;
use crate::routes::common::event::{EVENT_COLUMNS, Event};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/mail/{message_id}/events", get(events))
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
    let events: Vec<Event> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {EVENT_COLUMNS}
           from delivery_events e
           left join recipients r on r.id = e.recipient_id
          where e.message_id = $1
          order by e.id"
    )))
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
