//! The recorder: writes what each attempt got, many attempts per transaction, and decides what
//! follows. A 2xx delivers the request's events; a 410 disables the endpoint (the request waits
//! for it to be enabled again); anything else is retried on `MAILAPI_WEBHOOK_RETRY_SCHEDULE_SECS`
//! with jitter, and after the last retry the events are dead letters. Failures in a row open the
//! endpoint's breaker: it is paused, longer each time, and probed one request at a time.
//!
//! A write that fails is tried again with the same answers; if the worker dies first, the
//! requests' leases expire and they are sent again (docs/WEBHOOKS.md, "Duplicates").

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use shared::metrics as m;
use tokio::sync::mpsc;

use super::Wake;
use super::client::{Answer, Outcome};
use crate::context::WorkerContext;
use crate::error::Result;

/// Answers written per transaction.
const BATCH: usize = 500;

/// One finished attempt.
pub struct Done {
    pub request_id: i64,
    pub endpoint_id: i64,
    /// Attempts made before this one.
    pub attempts_before: i32,
    pub event_count: i32,
    pub first_event_at: Option<DateTime<Utc>>,
    pub answer: Answer,
    /// When the answer came.
    pub at: DateTime<Utc>,
}

/// Runs until every sender is gone, writing what arrives.
pub async fn run(ctx: WorkerContext, mut rx: mpsc::Receiver<Done>, wake: Arc<Wake>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut backoff = super::Backoff::default();
        loop {
            match write(&ctx, &batch).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, answers = batch.len(), "cannot record webhook attempts; retrying");
                    tokio::time::sleep(backoff.after_failure()).await;
                }
            }
        }
        observe(&batch);
        batch.clear();
        // Settled deliveries free their messages' next events.
        wake.assemble.notify_one();
    }
}

fn observe(batch: &[Done]) {
    let now = Utc::now();
    for d in batch {
        let outcome = match d.answer.outcome() {
            Outcome::Success => "success",
            Outcome::Gone => "gone",
            Outcome::Failure if d.answer.refused => "refused",
            Outcome::Failure => "failure",
        };
        metrics::counter!(m::WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(1);
        if d.answer.outcome() == Outcome::Success
            && let Some(first) = d.first_event_at
        {
            let seconds = (now - first).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!(m::WEBHOOK_LATENCY).record(seconds);
        }
    }
}

/// The columns of one transaction's writes.
#[derive(Default)]
struct Columns {
    request: Vec<i64>,
    endpoint: Vec<i64>,
    at: Vec<DateTime<Utc>>,
    status: Vec<Option<i32>>,
    latency_ms: Vec<i32>,
    excerpt: Vec<Option<String>>,
    error: Vec<Option<String>>,
    /// Per request: its new state (`pending`, `delivered`, `dead`) and next attempt.
    state: Vec<&'static str>,
    next_at: Vec<DateTime<Utc>>,
    /// Per request: how its endpoint's failure count moves (0: success resets it).
    failed: Vec<bool>,
    gone: Vec<bool>,
}

async fn write(ctx: &WorkerContext, batch: &[Done]) -> Result<()> {
    let schedule = &ctx.settings.webhooks.retry_schedule;
    let mut c = Columns::default();
    let mut dead_events = 0u64;
    for d in batch {
        let outcome = d.answer.outcome();
        let attempts = d.attempts_before + 1;
        let (state, next_at) = match outcome {
            Outcome::Success => ("delivered", d.at),
            // Waits, unspent, for the endpoint to be enabled again.
            Outcome::Gone => ("pending", d.at),
            Outcome::Failure => match schedule.get(usize::try_from(attempts - 1).unwrap_or(0)) {
                Some(wait) => ("pending", d.at + jittered(*wait)),
                None => {
                    dead_events += u64::try_from(d.event_count).unwrap_or(0);
                    ("dead", d.at)
                }
            },
        };
        c.request.push(d.request_id);
        c.endpoint.push(d.endpoint_id);
        c.at.push(d.at);
        c.status.push(d.answer.status.map(i32::from));
        c.latency_ms
            .push(i32::try_from(d.answer.latency.as_millis()).unwrap_or(i32::MAX));
        c.excerpt.push(d.answer.excerpt.clone());
        c.error.push(d.answer.error.clone());
        c.state.push(state);
        c.next_at.push(next_at);
        c.failed.push(outcome == Outcome::Failure);
        c.gone.push(outcome == Outcome::Gone);
    }
    let mut tx = ctx.db.begin().await?;
    sqlx::query(
        "insert into webhook_attempts (request_id, endpoint_id, attempted_at, status_code,
             latency_ms, response_excerpt, error)
         select * from unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::int[],
                              $5::int[], $6::text[], $7::text[])",
    )
    .bind(&c.request)
    .bind(&c.endpoint)
    .bind(&c.at)
    .bind(&c.status)
    .bind(&c.latency_ms)
    .bind(&c.excerpt)
    .bind(&c.error)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "update webhook_requests r
            set attempts = r.attempts + case when u.gone then 0 else 1 end,
                state = u.state, next_attempt_at = u.next_at, leased_until = null,
                finished_at = case when u.state = 'pending' then null else now() end
           from unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::bool[])
                as u(id, state, next_at, gone)
          where r.id = u.id",
    )
    .bind(&c.request)
    .bind(&c.state)
    .bind(&c.next_at)
    .bind(&c.gone)
    .execute(&mut *tx)
    .await?;
    // By state, with `= any(...)`: an index lookup per request (a join with `unnest` was planned
    // as a scan of every delivery, the hottest statement at 1,000 events/s).
    for state in ["delivered", "dead"] {
        let ids: Vec<i64> = c
            .request
            .iter()
            .zip(&c.state)
            .filter(|(_, s)| **s == state)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        sqlx::query(
            "update webhook_deliveries set state = $2, finished_at = now()
              where request_id = any($1) and state = 'pending'",
        )
        .bind(&ids)
        .bind(state)
        .execute(&mut *tx)
        .await?;
    }
    endpoints(ctx, &mut tx, &c).await?;
    tx.commit().await?;
    if dead_events > 0 {
        metrics::counter!(m::WEBHOOK_DEAD).increment(dead_events);
    }
    Ok(())
}

/// The endpoints' side: a success closes the breaker, failures count toward opening it (each
/// failure past the threshold doubles the pause, up to 5 minutes), a 410 disables.
async fn endpoints(ctx: &WorkerContext, tx: &mut sqlx::PgConnection, c: &Columns) -> Result<()> {
    let threshold = i32::try_from(ctx.settings.webhooks.breaker_failures).unwrap_or(i32::MAX);
    sqlx::query(
        "update webhook_endpoints w
            set failures_in_a_row = case when u.ok > 0 then 0 else w.failures_in_a_row + u.failed end,
                paused_until = case
                    when u.ok > 0 then null
                    when w.failures_in_a_row + u.failed >= $2
                    then now() + make_interval(secs => least(300, 5 * power(2, least(
                             w.failures_in_a_row + u.failed - $2, 6))))
                    else w.paused_until end,
                enabled = w.enabled and u.gone = 0,
                disabled_reason = case when u.gone > 0 and w.enabled
                    then 'the receiver answered 410 Gone at ' || to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                    else w.disabled_reason end,
                updated_at = case when u.gone > 0 then now() else w.updated_at end
           from (select endpoint,
                        count(*) filter (where not failed and not gone) as ok,
                        count(*) filter (where failed)::int as failed,
                        count(*) filter (where gone) as gone
                   from unnest($1::bigint[], $3::bool[], $4::bool[]) as x(endpoint, failed, gone)
                  group by endpoint) u
          where w.id = u.endpoint
            and (u.ok > 0 and (w.failures_in_a_row > 0 or w.paused_until is not null)
                 or u.failed > 0 or u.gone > 0)",
    )
    .bind(&c.endpoint)
    .bind(threshold)
    .bind(&c.failed)
    .bind(&c.gone)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// `wait` give or take 20 %, so endpoints that failed together do not retry together.
fn jittered(wait: Duration) -> chrono::Duration {
    let factor = rand::rng().random_range(0.8..1.2);
    chrono::Duration::milliseconds((wait.as_millis() as f64 * factor) as i64)
}
