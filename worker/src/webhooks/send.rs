//! Sending: claims due requests (a lease, so two workers never send one at once), signs each
//! afresh and POSTs it, within a per-endpoint bound (`MAILAPI_WEBHOOK_CONCURRENCY` in flight,
//! as many again claimed ahead) and a global one. The answers go to the recorder
//! (`record.rs`), which writes them many at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use shared::secretbox::SecretBox;
use tokio::sync::mpsc;

use super::Wake;
use super::client::{Answer, Client};
use super::record::Done;
use crate::context::WorkerContext;
use crate::error::Result;

/// Requests in flight from one worker, all endpoints together.
pub const MAX_IN_FLIGHT: usize = 512;
/// How long a claimed request is ours: twice the request timeout and 5 s more, for the
/// recorder's write. A worker killed mid-request leaves it to expire, and the request goes again.
fn lease_secs(ctx: &WorkerContext) -> f64 {
    ctx.settings.webhooks.request_timeout.as_secs_f64() * 2.0 + 5.0
}

#[derive(sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub endpoint_id: i64,
    pub webhook_id: String,
    pub body: String,
    pub attempts: i32,
    pub event_count: i32,
    pub first_event_at: Option<DateTime<Utc>>,
    pub url: String,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub failures_in_a_row: i32,
}

/// Requests of one endpoint held by this worker: being sent, and claimed ahead to send as soon
/// as a slot frees (no database round trip between two requests of a busy endpoint).
#[derive(Default)]
struct Held {
    in_flight: usize,
    queued: VecDeque<Claimed>,
}

#[derive(Default)]
struct State {
    endpoints: HashMap<i64, Held>,
    in_flight: usize,
}

pub struct Sender {
    ctx: WorkerContext,
    client: Client,
    sealer: SecretBox,
    state: Mutex<State>,
    done: mpsc::Sender<Done>,
    wake: Arc<Wake>,
}

impl Sender {
    pub fn new(
        ctx: WorkerContext,
        client: Client,
        sealer: SecretBox,
        done: mpsc::Sender<Done>,
        wake: Arc<Wake>,
    ) -> Self {
        Self {
            ctx,
            client,
            sealer,
            state: Mutex::new(State::default()),
            done,
            wake,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests in flight to one endpoint at most; as many more may wait claimed.
    fn per_endpoint(&self) -> usize {
        self.ctx.settings.webhooks.concurrency_per_endpoint
    }

    /// Claims what is due and starts sending it. `true` when it got as many as it asked for
    /// (more may be due at once); otherwise a finished request or new requests wake it.
    pub async fn step(self: &Arc<Self>) -> Result<bool> {
        let cap = self.per_endpoint();
        let (asked, busy) = {
            let state = self.state();
            let room = MAX_IN_FLIGHT.saturating_sub(state.in_flight);
            let busy: Vec<(i64, i32)> = state
                .endpoints
                .iter()
                .map(|(id, held)| {
                    let free = (2 * cap).saturating_sub(held.in_flight + held.queued.len());
                    (*id, i32::try_from(free).unwrap_or(0))
                })
                .collect();
            (room.min(1000), busy)
        };
        if asked == 0 {
            return Ok(false);
        }
        let claimed = claim(&self.ctx, asked as i64, &busy).await?;
        let full = claimed.len() >= asked;
        let threshold =
            i32::try_from(self.ctx.settings.webhooks.breaker_failures).unwrap_or(i32::MAX);
        let mut release = Vec::new();
        let mut start = Vec::new();
        {
            let mut guard = self.state();
            let state = &mut *guard;
            for req in claimed {
                let total = state.in_flight;
                let held = state.endpoints.entry(req.endpoint_id).or_default();
                // An open breaker lets one probe through at a time, and nothing waits.
                let probing = req.failures_in_a_row >= threshold;
                if probing && (held.in_flight > 0 || !held.queued.is_empty()) {
                    release.push(req.id);
                } else if held.in_flight < cap && total < MAX_IN_FLIGHT {
                    held.in_flight += 1;
                    state.in_flight += 1;
                    start.push(req);
                } else if !probing && held.queued.len() < cap {
                    held.queued.push_back(req);
                } else {
                    release.push(req.id);
                }
            }
        }
        for req in start {
            tokio::spawn(drive(self.clone(), req));
        }
        self.release(&release).await?;
        Ok(full && release.is_empty())
    }

    /// The next request to send for `endpoint` after one finished, or `None` (the slot is
    /// given back).
    fn next_for(&self, endpoint: i64) -> Option<Claimed> {
        let mut guard = self.state();
        let state = &mut *guard;
        let held = state.endpoints.get_mut(&endpoint)?;
        if let Some(next) = held.queued.pop_front() {
            return Some(next);
        }
        held.in_flight = held.in_flight.saturating_sub(1);
        if held.in_flight == 0 {
            state.endpoints.remove(&endpoint);
        }
        state.in_flight = state.in_flight.saturating_sub(1);
        None
    }

    /// Gives requests back at once, instead of at their lease's end.
    async fn release(&self, ids: &[i64]) -> Result<()> {
        if !ids.is_empty() {
            sqlx::query("update webhook_requests set leased_until = null where id = any($1)")
                .bind(ids)
                .execute(&self.ctx.db)
                .await?;
        }
        Ok(())
    }

    /// At shutdown: what was claimed ahead and not started goes back for another worker.
    pub async fn release_queued(&self) -> Result<()> {
        let ids: Vec<i64> = {
            let mut state = self.state();
            state
                .endpoints
                .values_mut()
                .flat_map(|held| held.queued.drain(..).map(|r| r.id))
                .collect()
        };
        self.release(&ids).await
    }
}

/// Sends `first`, then whatever its endpoint has queued, one after the other on this slot.
async fn drive(sender: Arc<Sender>, first: Claimed) {
    let mut next = Some(first);
    while let Some(req) = next {
        let endpoint = req.endpoint_id;
        let answer = attempt(&sender, &req).await;
        let finished = Done {
            request_id: req.id,
            endpoint_id: req.endpoint_id,
            attempts_before: req.attempts,
            event_count: req.event_count,
            first_event_at: req.first_event_at,
            answer,
            at: Utc::now(),
        };
        // The recorder only stops at shutdown; the lease then expires and the request goes
        // again.
        let _ = sender.done.send(finished).await;
        next = sender.next_for(endpoint);
    }
    // A slot is free: the sender may claim more.
    sender.wake.send.notify_one();
}

/// One signed POST of `req`.
async fn attempt(sender: &Sender, req: &Claimed) -> Answer {
    match keys(&sender.sealer, req) {
        Ok(keys) => {
            let timestamp = Utc::now().timestamp();
            let signature = shared::webhook::signature_header(
                &keys,
                &req.webhook_id,
                timestamp,
                req.body.as_bytes(),
            );
            let headers = [
                ("webhook-id", req.webhook_id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature),
            ];
            sender
                .client
                .post(&req.url, &headers, req.body.clone())
                .await
        }
        Err(error) => Answer::refused(error),
    }
}

/// Due requests of enabled endpoints whose breaker is not pausing them, leased to us: per
/// endpoint at most as many as this worker has room for (`busy`: the endpoints it holds
/// requests of, and their room; others have twice `MAILAPI_WEBHOOK_CONCURRENCY`), and one at a
/// time for an endpoint whose breaker is open. Taken per endpoint, so a backlog at one slow
/// receiver is neither scanned nor leased and given back on every round.
async fn claim(ctx: &WorkerContext, limit: i64, busy: &[(i64, i32)]) -> Result<Vec<Claimed>> {
    let settings = &ctx.settings.webhooks;
    // In flight and claimed ahead, per endpoint.
    let per_endpoint = i32::try_from(settings.concurrency_per_endpoint * 2).unwrap_or(i32::MAX);
    let threshold = i32::try_from(settings.breaker_failures).unwrap_or(i32::MAX);
    let (busy_ids, busy_free): (Vec<i64>, Vec<i32>) = busy.iter().copied().unzip();
    Ok(sqlx::query_as(
        "with endpoint as (
            select w.id,
                   case when w.failures_in_a_row >= $6
                        then case when coalesce(b.free, $5) = $5 then 1 else 0 end
                        else coalesce(b.free, $5) end as room
              from webhook_endpoints w
              left join unnest($3::bigint[], $4::int[]) as b(endpoint_id, free)
                on b.endpoint_id = w.id
             where w.enabled and (w.paused_until is null or w.paused_until <= now())),
         due as (
            select r.id
              from endpoint e
             cross join lateral (
                   select r.id from webhook_requests r
                    where r.endpoint_id = e.id and r.state = 'pending'
                      and r.next_attempt_at <= now()
                      and (r.leased_until is null or r.leased_until < now())
                    order by r.next_attempt_at, r.id
                    limit e.room
                    for update skip locked) r
             limit $1)
         update webhook_requests r set leased_until = now() + make_interval(secs => $2)
           from due, webhook_endpoints w
          where r.id = due.id and w.id = r.endpoint_id
         returning r.id, r.endpoint_id, r.webhook_id, r.body, r.attempts, r.event_count,
                   r.first_event_at, w.url, w.secret_ciphertext as secret,
                   case when w.previous_secret_expires_at > now()
                        then w.previous_secret_ciphertext end as previous_secret,
                   w.failures_in_a_row",
    )
    .bind(limit)
    .bind(lease_secs(ctx))
    .bind(busy_ids)
    .bind(busy_free)
    .bind(per_endpoint)
    .bind(threshold)
    .fetch_all(&ctx.db)
    .await?)
}

/// The signing keys: the current secret, and the one it replaced while that still signs.
fn keys(sealer: &SecretBox, req: &Claimed) -> std::result::Result<Vec<Vec<u8>>, String> {
    let open = |sealed: &[u8]| -> std::result::Result<Vec<u8>, String> {
        let secret = sealer.open(sealed).map_err(|e| e.to_string())?;
        let secret =
            String::from_utf8(secret).map_err(|_| "a stored secret is not text".to_owned())?;
        shared::webhook::secret_key(&secret)
            .ok_or_else(|| "a stored secret is not whsec_".to_owned())
    };
    let mut keys = vec![open(&req.secret)?];
    if let Some(previous) = &req.previous_secret {
        keys.push(open(previous)?);
    }
    Ok(keys)
}
