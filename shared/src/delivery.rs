//! Recipient status writes shared by every component (submit worker, log follower, bounce reader,
//! API): one transition rule, one event row per change, the suppression of hard bounces and the
//! message roll-up.
//!
//! The rule: `deferred` only moves a recipient that is still open (`pending`/`deferred`); a final
//! status (`sent`, `bounced`, `failed`, `suppressed`) is only taken from an open recipient, except
//! `sent -> bounced` (a remote MTA that accepted the message and bounced it later). So a repeat of
//! the same final status (the log line and the bounce report saying the same thing) adds nothing.
//!
//! The batch form exists because the log follower writes hundreds of changes per transaction;
//! the single-change form is that batch with one element, so both follow the same rule.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use crate::status::RecipientStatus;

/// Who observed a change; stored in `delivery_events.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema, sqlx::Type)]
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

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Worker => "worker",
            Self::Log => "log",
            Self::Dsn => "dsn",
            Self::Api => "api",
        }
    }
}

/// One observed change of one recipient, with the evidence that shows it.
#[derive(Debug, Clone)]
pub struct RecipientChange {
    pub recipient_id: i64,
    pub message_id: Uuid,
    pub status: RecipientStatus,
    pub dsn_code: Option<String>,
    pub smtp_response: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub source: EventSource,
    /// The log line, the report's fields or the SMTP reply.
    pub evidence: Option<String>,
}

/// Whether a recipient now in `current` takes `new`. Nothing moves a recipient back to
/// `pending`: that is only ever the initial status.
pub fn transition_allowed(current: RecipientStatus, new: RecipientStatus) -> bool {
    let open = current.is_open();
    match new {
        RecipientStatus::Pending => false,
        RecipientStatus::Deferred => open,
        RecipientStatus::Bounced => open || current == RecipientStatus::Sent,
        RecipientStatus::Sent | RecipientStatus::Failed | RecipientStatus::Suppressed => open,
    }
}

/// A failure that will not go away by retrying: suppress the address for its sending domain.
fn is_hard_bounce(status: RecipientStatus, dsn_code: Option<&str>) -> bool {
    matches!(status, RecipientStatus::Bounced | RecipientStatus::Failed)
        && dsn_code.is_some_and(|c| c.starts_with("5."))
}

#[derive(sqlx::FromRow)]
struct CurrentRow {
    id: i64,
    message_id: Uuid,
    email: String,
    status: RecipientStatus,
    dsn_code: Option<String>,
    smtp_response: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
}

/// Applies one change; `Ok(false)` when the rule refused it (or the recipient is not there).
pub async fn apply_recipient_status(
    conn: &mut sqlx::PgConnection,
    change: &RecipientChange,
) -> Result<bool, sqlx::Error> {
    let applied = apply_recipient_statuses(conn, std::slice::from_ref(change)).await?;
    Ok(applied.first().copied().unwrap_or(false))
}

/// Applies changes in order (later ones see earlier ones) with a fixed number of statements;
/// returns, per change, whether it was applied.
///
/// Locks, until commit, first the messages' rows and then the recipients' rows, each in id
/// order: every writer of a message's status (this, the worker's submission record, its failure
/// record) takes the message's row first, so they serialise without deadlocks, and whichever
/// commits last sees the other's work when it rolls the message up (see [`rollup_messages`]).
/// Call it inside a transaction that also rolls the touched messages up.
pub async fn apply_recipient_statuses(
    conn: &mut sqlx::PgConnection,
    changes: &[RecipientChange],
) -> Result<Vec<bool>, sqlx::Error> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let mut messages: Vec<Uuid> = changes.iter().map(|c| c.message_id).collect();
    messages.sort_unstable();
    messages.dedup();
    sqlx::query("select id from messages where id = any($1) order by id for update")
        .bind(&messages)
        .execute(&mut *conn)
        .await?;
    let mut ids: Vec<i64> = changes.iter().map(|c| c.recipient_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows: Vec<CurrentRow> = sqlx::query_as(
        "select id, message_id, email, status, dsn_code, smtp_response, delivered_at
           from recipients where id = any($1) order by id for update",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut current: HashMap<i64, CurrentRow> = rows.into_iter().map(|r| (r.id, r)).collect();

    let mut applied = Vec::with_capacity(changes.len());
    let mut touched: Vec<i64> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut events = EventColumns::default();
    let mut suppress = SuppressionColumns::default();
    for c in changes {
        let Some(row) = current
            .get_mut(&c.recipient_id)
            .filter(|r| r.message_id == c.message_id)
        else {
            applied.push(false);
            continue;
        };
        if !transition_allowed(row.status, c.status) {
            applied.push(false);
            continue;
        }
        row.status = c.status;
        if c.dsn_code.is_some() {
            row.dsn_code.clone_from(&c.dsn_code);
        }
        if c.smtp_response.is_some() {
            row.smtp_response.clone_from(&c.smtp_response);
        }
        if c.status == RecipientStatus::Sent {
            row.delivered_at = Some(c.occurred_at);
        }
        if seen.insert(row.id) {
            touched.push(row.id);
        }
        events.push(c);
        if is_hard_bounce(c.status, row.dsn_code.as_deref()) {
            suppress.message_id.push(c.message_id);
            suppress.email.push(row.email.to_lowercase());
            suppress.reason.push(
                row.smtp_response
                    .clone()
                    .unwrap_or_else(|| "hard bounce".to_owned()),
            );
            suppress.dsn_code.push(row.dsn_code.clone());
        }
        applied.push(true);
        metrics::counter!(
            crate::metrics::DELIVERIES,
            "status" => c.status.as_str(),
            "source" => c.source.as_str()
        )
        .increment(1);
    }
    if touched.is_empty() {
        return Ok(applied);
    }

    let (mut u_id, mut u_status, mut u_dsn, mut u_resp, mut u_at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for id in &touched {
        if let Some(r) = current.get(id) {
            u_id.push(r.id);
            u_status.push(r.status.as_str());
            u_dsn.push(r.dsn_code.clone());
            u_resp.push(r.smtp_response.clone());
            u_at.push(r.delivered_at);
        }
    }
    sqlx::query(
        "update recipients r
            set status = u.status, dsn_code = u.dsn_code, smtp_response = u.smtp_response,
                delivered_at = u.delivered_at, updated_at = now()
           from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
                as u(id, status, dsn_code, smtp_response, delivered_at)
          where r.id = u.id",
    )
    .bind(&u_id)
    .bind(&u_status)
    .bind(&u_dsn)
    .bind(&u_resp)
    .bind(&u_at)
    .execute(&mut *conn)
    .await?;
    events.insert(conn).await?;
    suppress.insert(conn).await?;
    Ok(applied)
}

#[derive(Default)]
struct EventColumns {
    message_id: Vec<Uuid>,
    recipient_id: Vec<i64>,
    status: Vec<String>,
    dsn_code: Vec<Option<String>>,
    smtp_response: Vec<Option<String>>,
    source: Vec<String>,
    evidence: Vec<Option<String>>,
    occurred_at: Vec<DateTime<Utc>>,
}

impl EventColumns {
    fn push(&mut self, c: &RecipientChange) {
        self.message_id.push(c.message_id);
        self.recipient_id.push(c.recipient_id);
        self.status.push(c.status.as_str().to_owned());
        self.dsn_code.push(c.dsn_code.clone());
        self.smtp_response.push(c.smtp_response.clone());
        self.source.push(c.source.as_str().to_owned());
        self.evidence.push(c.evidence.clone());
        self.occurred_at.push(c.occurred_at);
    }

    async fn insert(&self, conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        // `with ordinality` keeps the events' ids in the order the changes happened, and their
        // `seq`: each message's next numbers, taken from `messages.event_seq` (the caller holds
        // the messages' rows, see `apply_recipient_statuses`).
        sqlx::query(
            "with u as (
                 select * from unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[],
                                      $5::text[], $6::text[], $7::text[], $8::timestamptz[])
                     with ordinality as u(message_id, recipient_id, status, dsn_code,
                                          smtp_response, source, evidence, occurred_at, n)),
             counts as (
                 select message_id, count(*) as k from u group by message_id),
             numbered as (
                 update messages m set event_seq = m.event_seq + c.k
                   from counts c
                  where m.id = c.message_id
                 returning m.id, m.event_seq - c.k as base)
             insert into delivery_events
                 (message_id, recipient_id, event, status, dsn_code, smtp_response, source,
                  evidence, occurred_at, seq)
             select u.message_id, u.recipient_id, u.status, u.status, u.dsn_code, u.smtp_response,
                    u.source, u.evidence, u.occurred_at,
                    numbered.base + row_number() over (partition by u.message_id order by u.n)
               from u join numbered on numbered.id = u.message_id
              order by u.n",
        )
        .bind(&self.message_id)
        .bind(&self.recipient_id)
        .bind(&self.status)
        .bind(&self.dsn_code)
        .bind(&self.smtp_response)
        .bind(&self.source)
        .bind(&self.evidence)
        .bind(&self.occurred_at)
        .execute(conn)
        .await?;
        Ok(())
    }
}

#[derive(Default)]
struct SuppressionColumns {
    message_id: Vec<Uuid>,
    email: Vec<String>,
    reason: Vec<String>,
    dsn_code: Vec<Option<String>>,
}

impl SuppressionColumns {
    async fn insert(&self, conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        if self.email.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "insert into suppressions (domain, email, reason, source, dsn_code, message_id)
             select m.from_domain, u.email, u.reason, 'bounce', u.dsn_code, u.message_id
               from unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
                    as u(message_id, email, reason, dsn_code)
               join messages m on m.id = u.message_id
             on conflict (domain, email) do nothing",
        )
        .bind(&self.message_id)
        .bind(&self.email)
        .bind(&self.reason)
        .bind(&self.dsn_code)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Rolls one message up from its recipients; see [`rollup_messages`].
pub async fn rollup_message(
    conn: &mut sqlx::PgConnection,
    message_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    let done = rollup_messages(conn, &[message_id]).await?;
    Ok(done.into_iter().next().map(|(_, status)| status))
}

/// Recomputes each message's status from its recipients: `sent` (all sent), `bounced` (none
/// sent) or `partial` once none is open, and `completed_at`; `partial` already while some are
/// open if one was delivered and another failed; `submitted` while the MTA still holds some.
/// Returns the messages whose status changed. The whole table is in docs/DELIVERY.md ("Message
/// status").
///
/// A message still `pending` is rolled up too once the MTA has reported on one of its
/// recipients (`sent`, `deferred` or `bounced`): the log can run ahead of the worker's
/// submission record, and then the MTA's word is the truth. The worker's record never moves a
/// message backwards (it only turns `pending` into `submitted`), so whichever of the two writers
/// commits last, the message ends where its recipients are. Both lock the message's row first,
/// so they serialise.
pub async fn rollup_messages(
    conn: &mut sqlx::PgConnection,
    message_ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        // Once one recipient is delivered and another failed the message is `partial`, even
        // while others are still deferred: the spec's "some delivered, some failed" is already
        // true and can no longer become `sent` or `bounced`. Otherwise the message settles
        // only when no recipient is open.
        //
        // Driven from the ids: each message's recipients are counted through the
        // (message_id, email) index in a lateral subquery (an aggregate is never flattened into
        // a join). Grouping all of `recipients` by message_id instead let a planner without
        // fresh statistics hash the whole table on every call, the worst statement of a
        // benchmark. A message without recipients has nothing to roll up from.
        "update messages m
            set status = n.status,
                completed_at = case when a.open = 0 then coalesce(m.completed_at, now()) end,
                updated_at = now()
           from (select distinct id from unnest($1::uuid[]) as u(id)) u
                cross join lateral (
                    select count(*) as total,
                           count(*) filter (where r.status = 'sent') as sent,
                           count(*) filter (where r.status in ('bounced', 'failed')) as failed,
                           count(*) filter (where r.status in ('pending', 'deferred')) as open,
                           count(*) filter (where r.status in ('sent', 'deferred', 'bounced'))
                               as reported
                      from recipients r
                     where r.message_id = u.id) a
                cross join lateral (
                    select case when a.open = 0 and a.sent = a.total then 'sent'
                                when a.open = 0 and a.sent = 0 then 'bounced'
                                when a.open = 0 then 'partial'
                                when a.sent > 0 and a.failed > 0 then 'partial'
                                else 'submitted' end as status) n
          where m.id = u.id
            and a.total > 0
            and (m.status in ('submitted', 'sent', 'partial', 'bounced')
                 or (m.status = 'pending' and a.reported > 0))
            and m.status <> n.status
          returning m.id, m.status",
    )
    .bind(message_ids)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests;
