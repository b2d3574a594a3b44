//! The event as every reader shows it: `GET /mail/{id}/events`, the pull feed, webhooks. One
//! struct and one `select`, so the three cannot drift apart.

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::events::EventType;
use uuid::Uuid;

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
    /// Global and increasing in commit order within the feed; a webhook's `webhook-id` is built
    /// from it, so a repeat of the same event carries the same id.
    pub id: i64,
    /// The registry's name of the event (`message.accepted`, `recipient.delivered`...); `null`
    /// for internal steps that are shown here but never published (a submission retry).
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    #[schema(required = true)]
    pub event_type: Option<EventType>,
    /// The event's number among its message's published events: 1, 2, 3... without gaps, so a
    /// receiver can order them and drop a repeat; `null` when `type` is.
    #[schema(required = true, minimum = 1)]
    pub seq: Option<i32>,
    pub message_id: Uuid,
    /// What happened, in the delivery log's words: `accepted`, `submitted`, `sent`, `bounced`...
    pub event: String,
    /// The status it led to.
    #[schema(required = true)]
    pub status: Option<String>,
    /// The recipient it concerns; `null` for the message as a whole.
    #[schema(required = true)]
    pub recipient: Option<String>,
    #[schema(required = true)]
    pub dsn_code: Option<String>,
    #[schema(required = true)]
    pub smtp_response: Option<String>,
    pub source: EventSource,
    /// The raw evidence: the MTA's log line, the bounce report's fields.
    #[schema(required = true)]
    pub evidence: Option<String>,
    #[serde(serialize_with = "crate::time::serialize")]
    pub occurred_at: DateTime<Utc>,
}

/// The columns of [`Event`], from `delivery_events e left join recipients r`.
pub const EVENT_COLUMNS: &str = "e.id, e.type, e.seq, e.message_id, e.event, e.status, \
     r.email as recipient, e.dsn_code, e.smtp_response, e.source, e.evidence, e.occurred_at";
