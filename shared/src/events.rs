//! The event registry: the names senders are told events by, in the pull feed
//! (`GET /api/v1/events`), in `GET /mail/{id}/events` and in webhooks. One list, so a new kind of
//! event is added here and in the `type` expression of `delivery_events` (see the migration
//! `20261207000100_event_registry.sql`), never invented by one reader.
//!
//! Types no writer emits yet (`message.scheduled`, `recipient.complained`...) are the ones later
//! features emit; a webhook endpoint may subscribe to them already.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::delivery::EventSource;

/// What an event says happened.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema, sqlx::Type,
)]
#[sqlx(type_name = "text")]
pub enum EventType {
    /// Stored, and queued unless every recipient is suppressed.
    #[serde(rename = "message.accepted")]
    #[sqlx(rename = "message.accepted")]
    MessageAccepted,
    /// The mail server queued it (`queue_id` known).
    #[serde(rename = "message.submitted")]
    #[sqlx(rename = "message.submitted")]
    MessageSubmitted,
    /// Set to be sent later.
    #[serde(rename = "message.scheduled")]
    #[sqlx(rename = "message.scheduled")]
    MessageScheduled,
    /// Withdrawn before it was sent.
    #[serde(rename = "message.cancelled")]
    #[sqlx(rename = "message.cancelled")]
    MessageCancelled,
    /// Not sent before its deadline.
    #[serde(rename = "message.expired")]
    #[sqlx(rename = "message.expired")]
    MessageExpired,
    /// Held back for review.
    #[serde(rename = "message.held")]
    #[sqlx(rename = "message.held")]
    MessageHeld,
    /// The receiving server accepted it for this recipient.
    #[serde(rename = "recipient.delivered")]
    #[sqlx(rename = "recipient.delivered")]
    RecipientDelivered,
    /// The receiving server asked to try again later.
    #[serde(rename = "recipient.deferred")]
    #[sqlx(rename = "recipient.deferred")]
    RecipientDeferred,
    /// Refused, or reported back as undeliverable.
    #[serde(rename = "recipient.bounced")]
    #[sqlx(rename = "recipient.bounced")]
    RecipientBounced,
    /// Given up on before reaching a receiving server.
    #[serde(rename = "recipient.failed")]
    #[sqlx(rename = "recipient.failed")]
    RecipientFailed,
    /// On the sending domain's suppression list: never handed to the mail server.
    #[serde(rename = "recipient.suppressed")]
    #[sqlx(rename = "recipient.suppressed")]
    RecipientSuppressed,
    /// The recipient unsubscribed.
    #[serde(rename = "recipient.unsubscribed")]
    #[sqlx(rename = "recipient.unsubscribed")]
    RecipientUnsubscribed,
    /// The recipient reported it as spam.
    #[serde(rename = "recipient.complained")]
    #[sqlx(rename = "recipient.complained")]
    RecipientComplained,
    /// Mail arrived for one of our mailboxes.
    #[serde(rename = "mail.received")]
    #[sqlx(rename = "mail.received")]
    MailReceived,
}

impl EventType {
    /// Every type, in the registry's order.
    pub const ALL: [EventType; 14] = [
        EventType::MessageAccepted,
        EventType::MessageSubmitted,
        EventType::MessageScheduled,
        EventType::MessageCancelled,
        EventType::MessageExpired,
        EventType::MessageHeld,
        EventType::RecipientDelivered,
        EventType::RecipientDeferred,
        EventType::RecipientBounced,
        EventType::RecipientFailed,
        EventType::RecipientSuppressed,
        EventType::RecipientUnsubscribed,
        EventType::RecipientComplained,
        EventType::MailReceived,
    ];

    /// The registry's name (`message.accepted`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageAccepted => "message.accepted",
            EventType::MessageSubmitted => "message.submitted",
            EventType::MessageScheduled => "message.scheduled",
            EventType::MessageCancelled => "message.cancelled",
            EventType::MessageExpired => "message.expired",
            EventType::MessageHeld => "message.held",
            EventType::RecipientDelivered => "recipient.delivered",
            EventType::RecipientDeferred => "recipient.deferred",
            EventType::RecipientBounced => "recipient.bounced",
            EventType::RecipientFailed => "recipient.failed",
            EventType::RecipientSuppressed => "recipient.suppressed",
            EventType::RecipientUnsubscribed => "recipient.unsubscribed",
            EventType::RecipientComplained => "recipient.complained",
            EventType::MailReceived => "mail.received",
        }
    }

    /// The type named `name`, if the registry has it.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// One status change of a message or of one of its recipients, with its evidence: what
/// `GET /mail/{id}/events`, the pull feed and webhooks all show. One struct and one `select`
/// ([`EVENT_COLUMNS`]), so the three cannot drift apart.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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

/// What a webhook carries for one event (the Standard Webhooks payload layout): its type, when
/// it happened, and the event as the feed shows it. A batch is a JSON array of these.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    #[serde(rename = "type")]
    pub event_type: &'a str,
    #[serde(serialize_with = "crate::time::serialize")]
    pub timestamp: DateTime<Utc>,
    pub data: &'a Event,
}

impl Event {
    /// The webhook payload of this event; `None` for an unpublished step (no `type`).
    pub fn envelope(&self) -> Option<Envelope<'_>> {
        Some(Envelope {
            event_type: self.event_type?.as_str(),
            timestamp: self.occurred_at,
            data: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_named_the_same_in_json_and_in_its_parser() {
        for t in EventType::ALL {
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::json!(t.as_str())
            );
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("message.sent"), None);
    }
}
