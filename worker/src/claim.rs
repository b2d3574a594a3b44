//! The Postgres side of sending: claiming a message (the one conditional update that decides
//! which worker sends it), and recording each outcome before the stream entry is acknowledged.

use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::outgoing::OutgoingMessage;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{Error, Result};

/// A message this worker now holds until `claimed_until`.
#[derive(Debug)]
pub struct Claimed {
    pub id: Uuid,
    pub message: OutgoingMessage,
    pub rfc_message_id: String,
    pub created_at: DateTime<Utc>,
    pub from_domain: String,
    pub attempts: i32,
    /// When an earlier attempt's SMTP transaction began without its outcome being recorded:
    /// that attempt may have reached the MTA.
    pub previous_send_started: Option<DateTime<Utc>>,
    /// Envelope recipients (suppressed ones excluded).
    pub recipients: Vec<String>,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: Uuid,
    payload: serde_json::Value,
    rfc_message_id: String,
    created_at: DateTime<Utc>,
    from_domain: String,
    attempts: i32,
    previous_send_started: Option<DateTime<Utc>>,
    recipients: Vec<String>,
}

/// Claims one message; see [`claim_many`]. `None`: nothing to do for it.
pub async fn claim(db: &PgPool, id: Uuid, worker: &str, hold: Duration) -> Result<Option<Claimed>> {
    match claim_many(db, &[id], worker, hold).await?.pop() {
        Some(Ok(c)) => Ok(Some(c)),
        Some(Err((_, reason))) => Err(Error::Unsendable(reason)),
        None => Ok(None),
    }
}

/// Claims, in one statement, every message among `ids` that is pending, due and not held by a
/// live claim (rows another transaction has locked are skipped: that worker is deciding about
/// them). Messages not returned need nothing from this worker. A claimed message whose stored
/// payload cannot be read comes back as `Err((id, reason))` so the caller can fail it.
pub async fn claim_many(
    db: &PgPool,
    ids: &[Uuid],
    worker: &str,
    hold: Duration,
) -> Result<Vec<Result<Claimed, (Uuid, String)>>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<ClaimRow> = sqlx::query_as(
        // The rows are found by primary key alone and filtered after locking. With the
        // conditions in the locking scan, a planner whose statistics lag a fast-growing backlog
        // ANDed the primary key with the whole partial index of pending messages (tens of
        // thousands of entries read per claim, the worker's biggest cost in a benchmark).
        "with locked as (
            select id, status, next_attempt_at, claimed_until, send_started_at from messages
             where id = any($1)
             order by id
             for update skip locked),
         old as (
            select id, send_started_at from locked
             where status = 'pending' and next_attempt_at <= now()
               and (claimed_until is null or claimed_until < now()))
         update messages m
            set claimed_by = $2, claimed_until = now() + make_interval(secs => $3),
                attempts = m.attempts + 1, send_started_at = now(), updated_at = now()
           from old
          where m.id = old.id
         returning m.id, m.payload, m.rfc_message_id, m.created_at, m.from_domain, m.attempts,
                   old.send_started_at as previous_send_started,
                   array(select r.email from recipients r
                          where r.message_id = m.id and r.status <> 'suppressed'
                          order by r.id) as recipients",
    )
    .bind(ids)
    .bind(worker)
    .bind(hold.as_secs_f64())
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let message: OutgoingMessage = serde_json::from_value(row.payload)
                .map_err(|e| (row.id, format!("stored message cannot be read: {e}")))?;
            Ok(Claimed {
                id: row.id,
                message,
                rfc_message_id: row.rfc_message_id,
                created_at: row.created_at,
                from_domain: row.from_domain,
                attempts: row.attempts,
                previous_send_started: row.previous_send_started,
                recipients: row.recipients,
            })
        })
        .collect())
}

/// What the delivery log says about an earlier attempt of a message.
#[derive(Debug)]
pub enum LogVerdict {
    /// The MTA queued it under this id: record that instead of sending again.
    Queued(String),
    /// The follower has read the log past the attempt and did not see it: safe to send.
    NotQueued,
    /// The follower has not caught up yet: look again later.
    Unknown,
}

/// Longest we wait for the log follower before sending anyway (a follower that is down for
/// longer than this reopens the documented duplicate window; see docs/DELIVERY.md).
const MAX_LOG_WAIT: Duration = Duration::from_secs(300);
/// Margin after an attempt began before the follower's progress is trusted to cover it.
const LOG_MARGIN_SECS: i64 = 3;

pub async fn check_log(
    db: &PgPool,
    rfc_message_id: &str,
    attempt_started: DateTime<Utc>,
) -> Result<LogVerdict> {
    let queued: Option<String> = sqlx::query_scalar(
        "select queue_id from mta_queue_entries
          where rfc_message_id = $1 and committed order by created_at limit 1",
    )
    .bind(rfc_message_id)
    .fetch_optional(db)
    .await?;
    if let Some(q) = queued {
        return Ok(LogVerdict::Queued(q));
    }
    // Every log must have been read past the attempt: it went through one of the MTA hosts, and
    // we do not know which. A follower that is down holds retries of interrupted attempts back
    // until MAX_LOG_WAIT.
    //
    // Compared in Postgres, on its clock: `attempt_started` is the database's time, a worker's
    // clock may be off (the checker runs one two minutes ahead), and a follower that has not
    // finished a pass yet holds `-infinity`, which chrono cannot represent.
    let (covered, waited_out): (bool, bool) = sqlx::query_as(
        "select coalesce(min(updated_at) >= $1 + make_interval(secs => $2), false),
                now() - $1 > make_interval(secs => $3)
           from log_positions",
    )
    .bind(attempt_started)
    .bind(LOG_MARGIN_SECS as f64)
    .bind(MAX_LOG_WAIT.as_secs_f64())
    .fetch_one(db)
    .await?;
    Ok(if covered || waited_out {
        LogVerdict::NotQueued
    } else {
        LogVerdict::Unknown
    })
}

/// Gives the claim back without counting an attempt (shutdown, or waiting for the log).
pub async fn release(db: &PgPool, c: &Claimed, worker: &str, retry_in: Duration) -> Result<()> {
    sqlx::query(
        "update messages
            set claimed_by = null, claimed_until = null, attempts = greatest(attempts - 1, 0),
                send_started_at = $3, enqueued_at = null,
                next_attempt_at = now() + make_interval(secs => $4), updated_at = now()
          where id = $1 and claimed_by = $2",
    )
    .bind(c.id)
    .bind(worker)
    .bind(c.previous_send_started)
    .bind(retry_in.as_secs_f64())
    .execute(db)
    .await?;
    Ok(())
}

/// One message the MTA queued, waiting to be recorded as `submitted`.
#[derive(Debug, Clone)]
pub struct SubmittedRecord {
    pub id: Uuid,
    pub queue_id: Option<String>,
    /// The MTA's reply (or how we know it was queued).
    pub reply: String,
}

/// Records one `submitted` outcome; see [`record_submitted_many`].
pub async fn record_submitted(
    db: &PgPool,
    id: Uuid,
    worker: &str,
    queue_id: Option<&str>,
    reply: &str,
) -> Result<()> {
    let record = SubmittedRecord {
        id,
        queue_id: queue_id.map(str::to_owned),
        reply: reply.to_owned(),
    };
    record_submitted_many(db, worker, std::slice::from_ref(&record)).await
}

/// Records several `submitted` outcomes of `worker` in one statement (one round trip, one
/// commit, one run of the statistics triggers): each message's status, queue id and event.
/// A message whose claim `worker` no longer holds is left alone. Idempotent: writing the same
/// records again changes nothing, so a batch whose commit went unanswered can be retried.
pub async fn record_submitted_many(
    db: &PgPool,
    worker: &str,
    records: &[SubmittedRecord],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = records.iter().map(|r| r.id).collect();
    let queue_ids: Vec<Option<&str>> = records.iter().map(|r| r.queue_id.as_deref()).collect();
    let replies: Vec<&str> = records.iter().map(|r| r.reply.as_str()).collect();
    let evidence: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "queue id {} (worker {worker})",
                r.queue_id.as_deref().unwrap_or("unknown")
            )
        })
        .collect();
    // Rows are locked in id order, as the log follower and the bounce reader lock them, so that
    // two batches touching the same messages cannot deadlock.
    sqlx::query(
        "with v as (
             select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
                 as v(id, queue_id, reply, evidence)),
         locked as (
             select id from messages
              where id = any($1) and claimed_by = $5 order by id for update),
         m as (
             update messages
                set status = case when status = 'pending' then 'submitted' else status end,
                    queue_id = coalesce(v.queue_id, messages.queue_id),
                    submitted_at = coalesce(submitted_at, now()),
                    claimed_by = null, claimed_until = null, send_started_at = null,
                    last_error = null, updated_at = now(), event_seq = event_seq + 1
               from v, locked
              where messages.id = v.id and locked.id = v.id
             returning messages.id, v.reply, v.evidence, messages.event_seq),
         e as (
             insert into delivery_events (message_id, event, status, smtp_response, source,
                                          evidence, seq)
             select id, 'submitted', 'submitted', reply, 'worker', evidence, event_seq from m),
         -- Wakes `Prefer: wait` requests at commit (shared::notify).
         n as (
             select count(pg_notify($6, id::text)) as sent from m)
         select m.id from m, n",
    )
    .bind(&ids)
    .bind(&queue_ids)
    .bind(&replies)
    .bind(&evidence)
    .bind(worker)
    .bind(shared::notify::MESSAGE_STATUS_CHANNEL)
    .execute(db)
    .await?;
    // The delivery log can run ahead of this record (Postfix may deliver and log a message
    // before this commits): the follower has then rolled the still `pending` message up from
    // its recipients already, and the `case` above keeps that status. See
    // shared::delivery::rollup_messages.
    Ok(())
}

/// A transient failure: try again after `delay`. `maybe_queued` keeps the attempt's start so the
/// next attempt checks the delivery log first.
pub async fn record_retry(
    db: &PgPool,
    id: Uuid,
    worker: &str,
    delay: Duration,
    error: &str,
    maybe_queued: bool,
) -> Result<()> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "update messages
            set claimed_by = null, claimed_until = null, enqueued_at = null,
                send_started_at = case when $5 then send_started_at end,
                next_attempt_at = now() + make_interval(secs => $3), last_error = $4,
                updated_at = now()
          where id = $1 and claimed_by = $2",
    )
    .bind(id)
    .bind(worker)
    .bind(delay.as_secs_f64())
    .bind(error)
    .bind(maybe_queued)
    .execute(&mut *tx)
    .await?;
    // Not a registry event (no `type`, no `seq`): shown by GET /mail/{id}/events, not published.
    sqlx::query(
        "insert into delivery_events (message_id, event, status, smtp_response, source, evidence)
         values ($1, 'retry', 'pending', $2, 'worker', $3)",
    )
    .bind(id)
    .bind(error)
    .bind(format!("next attempt in {} s", delay.as_secs()))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Submission failed for good (5xx, retries exhausted, or a message that cannot be built): the
/// message and every recipient still pending are `failed`, with the reason.
pub async fn record_failed(
    db: &PgPool,
    id: Uuid,
    worker: &str,
    reason: &str,
    dsn: Option<&str>,
) -> Result<()> {
    let mut tx = db.begin().await?;
    let updated = sqlx::query(
        "update messages
            set status = 'failed', claimed_by = null, claimed_until = null, send_started_at = null,
                last_error = $3, completed_at = now(), updated_at = now()
          where id = $1 and claimed_by = $2",
    )
    .bind(id)
    .bind(worker)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        // Each recipient's `recipient.failed` takes the message's next numbers; the message's
        // own `failed` row is not a registry event (no `seq`).
        sqlx::query(
            "with failed as (
                update recipients set status = 'failed', dsn_code = $3, smtp_response = $2,
                       updated_at = now()
                 where message_id = $1 and status = 'pending'
                returning id),
             numbered as (
                select id, row_number() over (order by id) as n from failed),
             seq as (
                update messages set event_seq = event_seq + (select count(*) from failed)
                 where id = $1
                returning event_seq - (select count(*) from failed) as base)
             insert into delivery_events (message_id, recipient_id, event, status, dsn_code,
                                          smtp_response, source, seq)
             select $1, numbered.id, 'failed', 'failed', $3, $2, 'worker', seq.base + numbered.n
               from numbered, seq
             union all
             select $1, null, 'failed', 'failed', $3, $2, 'worker', null",
        )
        .bind(id)
        .bind(reason)
        .bind(dsn)
        .execute(&mut *tx)
        .await?;
        // Wakes `Prefer: wait` requests at commit (shared::notify).
        sqlx::query("select pg_notify($1, $2::text)")
            .bind(shared::notify::MESSAGE_STATUS_CHANNEL)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
