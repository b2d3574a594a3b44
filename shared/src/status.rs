//! The statuses a message and its recipients go through, as types from the edge inward: parsed
//! once when read from Postgres (where they stay checked text, so that a later migration can
//! add a state inside the same transaction that uses it) and serialized as the spec's words.

use serde::{Deserialize, Serialize};

/// A sent message's status (the spec's "Status Values").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema, sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum MessageStatus {
    /// Created, not yet handed to the mail server.
    Pending,
    /// Handed to the mail server, which gave it a queue id.
    Submitted,
    /// Every recipient delivered.
    Sent,
    /// Some recipients delivered, some failed.
    Partial,
    /// Every recipient failed.
    Bounced,
    /// Submission failed (or every recipient is suppressed).
    Failed,
}

impl MessageStatus {
    /// The stored (and serialized) form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Submitted => "submitted",
            Self::Sent => "sent",
            Self::Partial => "partial",
            Self::Bounced => "bounced",
            Self::Failed => "failed",
        }
    }

    /// The status as stored in `messages.status` (which a check constraint limits to these).
    pub fn parse(stored: &str) -> Option<Self> {
        Some(match stored {
            "pending" => Self::Pending,
            "submitted" => Self::Submitted,
            "sent" => Self::Sent,
            "partial" => Self::Partial,
            "bounced" => Self::Bounced,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// One recipient's delivery status.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema, sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum RecipientStatus {
    /// Not yet tried.
    Pending,
    /// The receiving server asked to try again later.
    Deferred,
    /// Delivered.
    Sent,
    /// Refused by the receiving server, or reported back as undeliverable.
    Bounced,
    /// Given up on before reaching a receiving server.
    Failed,
    /// On the sending domain's suppression list: never handed to the mail server.
    Suppressed,
}

impl RecipientStatus {
    /// The stored (and serialized) form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Deferred => "deferred",
            Self::Sent => "sent",
            Self::Bounced => "bounced",
            Self::Failed => "failed",
            Self::Suppressed => "suppressed",
        }
    }

    /// Still waiting for an outcome (`pending`, `deferred`).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Deferred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_spec_words_in_json_and_in_postgres() {
        assert_eq!(
            MessageStatus::parse("pending"),
            Some(MessageStatus::Pending)
        );
        assert_eq!(MessageStatus::parse("queued"), None);
        assert_eq!(
            serde_json::to_value(MessageStatus::Submitted).unwrap(),
            serde_json::json!("submitted")
        );
        for s in [
            RecipientStatus::Pending,
            RecipientStatus::Deferred,
            RecipientStatus::Sent,
            RecipientStatus::Bounced,
            RecipientStatus::Failed,
            RecipientStatus::Suppressed,
        ] {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
    }
}
