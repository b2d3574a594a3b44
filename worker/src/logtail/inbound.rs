//! Mail the MTA received for our domains (delivered over LMTP, or refused at RCPT on port 25),
//! recorded as `inbound_events` rows for the inbound statistics.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// An inbound event's `status` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InboundStatus {
    /// Delivered to a mailbox.
    Accepted,
    /// Refused at RCPT by the public SMTP service.
    Rejected,
}

impl InboundStatus {
    fn as_str(self) -> &'static str {
        match self {
            InboundStatus::Accepted => "accepted",
            InboundStatus::Rejected => "rejected",
        }
    }
}

fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// One batch's inbound events, column by column for one `unnest` insert.
#[derive(Default)]
pub(super) struct InboundRows {
    domain: Vec<String>,
    recipient: Vec<String>,
    sender: Vec<Option<String>>,
    sender_domain: Vec<Option<String>>,
    status: Vec<&'static str>,
    queue_id: Vec<Option<String>>,
    evidence: Vec<String>,
    occurred_at: Vec<DateTime<Utc>>,
}

impl InboundRows {
    pub(super) fn push(
        &mut self,
        recipient: &str,
        sender: Option<&str>,
        status: InboundStatus,
        queue_id: Option<&str>,
        line: &str,
        at: DateTime<Utc>,
    ) {
        let Some(domain) = domain_of(recipient) else {
            return;
        };
        let sender = sender.filter(|s| !s.is_empty());
        self.domain.push(domain);
        self.recipient.push(recipient.to_lowercase());
        self.sender.push(sender.map(str::to_lowercase));
        self.sender_domain.push(sender.and_then(domain_of));
        self.status.push(status.as_str());
        self.queue_id.push(queue_id.map(str::to_owned));
        self.evidence.push(line.to_owned());
        self.occurred_at.push(at);
    }

    pub(super) async fn insert(&self, conn: &mut PgConnection) -> sqlx::Result<usize> {
        if self.domain.is_empty() {
            return Ok(0);
        }
        sqlx::query(
            "insert into inbound_events
                 (domain, recipient, sender, sender_domain, status, queue_id, evidence, occurred_at)
             select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::timestamptz[])",
        )
        .bind(&self.domain)
        .bind(&self.recipient)
        .bind(&self.sender)
        .bind(&self.sender_domain)
        .bind(&self.status)
        .bind(&self.queue_id)
        .bind(&self.evidence)
        .bind(&self.occurred_at)
        .execute(conn)
        .await?;
        Ok(self.domain.len())
    }
}
