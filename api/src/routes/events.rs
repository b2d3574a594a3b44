//! `GET /mail/{message_id}/events`: a message's delivery timeline, every status change with its
//! evidence (the SMTP reply, the MTA's log line, the bounce report's fields). Same access rule as
//! the status endpoint: a message the token may not see is `MESSAGE_NOT_FOUND`.

use axum::Json as JsonResponse;
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::access::require_message_access;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::routes::docs::bodies;
use crate::routes::docs::spec::ErrorBody;
use crate::state::AppState;
use crate::time;

pub fn router() -> Router<AppState> {
    Router::new().route("/mail/{message_id}/events", get(events))
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    event: String,
    status: Option<String>,
    recipient: Option<String>,
    dsn_code: Option<String>,
    smtp_response: Option<String>,
    source: String,
    evidence: Option<String>,
    occurred_at: DateTime<Utc>,
}

#[utoipa::path(
    get,
    path = "/api/v1/mail/{message_id}/events",
    tag = "mail",
    params(("message_id" = String, Path, description = "Message id (UUID)")),
    responses((status = 200, description = "{success, message_id, events}", body = bodies::EventList), (status = 403, description = "ACCESS_DENIED: the token may not do this", body = ErrorBody), (status = 404, description = "MESSAGE_NOT_FOUND", body = ErrorBody))
)]
async fn events(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(raw_id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = Uuid::parse_str(&raw_id).map_err(|_| ApiError::MessageNotFound)?;
    require_message_access(&state.db, &p, id).await?;
    let rows: Vec<EventRow> = sqlx::query_as(
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
    let events: Vec<Value> = rows
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "event": e.event,
                "status": e.status,
                "recipient": e.recipient,
                "dsn_code": e.dsn_code,
                "smtp_response": e.smtp_response,
                "source": e.source,
                "evidence": e.evidence,
                "occurred_at": time::format(&e.occurred_at),
            })
        })
        .collect();
    Ok(JsonResponse(json!({
        "success": true,
        "message_id": id,
        "total": events.len(),
        "events": events,
    })))
}
