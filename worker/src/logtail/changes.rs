//! The recipient status changes a log line means, built from the line and the batch's lookups.

use chrono::{DateTime, Utc};
use shared::delivery::{EventSource, RecipientChange, RecipientStatus};
use uuid::Uuid;

use super::owners::Recipients;
use crate::logline::{self, Delivery, DeliveryStatus};

/// A line's change for one recipient, from the log.
fn change(
    recipient_id: i64,
    message_id: Uuid,
    status: RecipientStatus,
    response: String,
    line: &str,
    at: DateTime<Utc>,
) -> RecipientChange {
    RecipientChange {
        recipient_id,
        message_id,
        status,
        dsn_code: None,
        smtp_response: Some(response),
        occurred_at: at,
        source: EventSource::Log,
        evidence: Some(line.to_owned()),
    }
}

/// A recipient refused at RCPT in a transaction the MTA otherwise accepted: Postfix will not try
/// it, so a 5xx is a bounce and anything else a failure.
pub(super) fn reject_change(
    recipients: &Recipients,
    message: Uuid,
    to: &str,
    response: &str,
    line: &str,
    at: DateTime<Utc>,
) -> Option<RecipientChange> {
    let recipient_id = recipients.find(message, to)?;
    let status = if response.starts_with('5') {
        RecipientStatus::Bounced
    } else {
        RecipientStatus::Failed
    };
    Some(RecipientChange {
        dsn_code: logline::enhanced_code(response).map(str::to_owned),
        ..change(recipient_id, message, status, response.to_owned(), line, at)
    })
}

/// A delivery line (sent, deferred, bounced, expired) for one of our recipients.
pub(super) fn delivery_change(
    d: &Delivery<'_>,
    message: Uuid,
    recipients: &Recipients,
    line: &str,
    at: DateTime<Utc>,
) -> Option<RecipientChange> {
    let status = match d.status {
        DeliveryStatus::Sent => RecipientStatus::Sent,
        DeliveryStatus::Deferred => RecipientStatus::Deferred,
        DeliveryStatus::Bounced => RecipientStatus::Bounced,
        DeliveryStatus::Expired => RecipientStatus::Failed,
        DeliveryStatus::Other(_) => return None,
    };
    let recipient_id = recipients
        .find(message, d.orig_to.unwrap_or(d.to))
        .or_else(|| recipients.find(message, d.to))?;
    Some(RecipientChange {
        dsn_code: d.dsn.map(str::to_owned),
        ..change(
            recipient_id,
            message,
            status,
            d.response.to_owned(),
            line,
            at,
        )
    })
}

/// The MTA gave up on a message: every recipient still open has failed (the transition rule
/// skips the final ones).
pub(super) fn expired_changes(
    message: Uuid,
    recipients: &Recipients,
    line: &str,
    at: DateTime<Utc>,
) -> Vec<RecipientChange> {
    let how = if line.contains("force-expired") {
        "force-expired"
    } else {
        "expired"
    };
    let response = format!("{how}: the MTA gave up and returned the message to the sender");
    let ids = recipients.by_message.get(&message).into_iter().flatten();
    ids.map(|id| {
        change(
            *id,
            message,
            RecipientStatus::Failed,
            response.clone(),
            line,
            at,
        )
    })
    .collect()
}
