//! Sending: claims due requests (a lease, so two workers never send one at once), signs each
//! afresh and POSTs it on its own task, within a per-endpoint and a global bound. The answers go
//! to the recorder (`record.rs`), which writes them many at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use shared::secretbox::SecretBox;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

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

pub struct Sender {
    ctx: WorkerContext,
    client: Client,
    sealer: Arc<SecretBox>,
    global: Arc<Semaphore>,
    per_endpoint: Mutex<HashMap<i64, Arc<Semaphore>>>,
    done: mpsc::Sender<Done>,
}

impl Sender {
    pub fn new(
        ctx: WorkerContext,
        client: Client,
        sealer: SecretBox,
        done: mpsc::Sender<Done>,
    ) -> Self {
        Self {
            ctx,
            client,
            sealer: Arc::new(sealer),
            global: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            per_endpoint: Mutex::new(HashMap::new()),
            done,
        }
    }

    /// Claims what is due and starts sending it: how many requests were started.
    pub async fn step(&self) -> Result<usize> {
        let room = self.global.available_permits();
        if room == 0 {
            return Ok(0);
        }
        let claimed = claim(&self.ctx, room.min(1000) as i64).await?;
        let mut started = 0;
        let mut release = Vec::new();
        let mut probing = Vec::new();
        let threshold =
            i32::try_from(self.ctx.settings.webhooks.breaker_failures).unwrap_or(i32::MAX);
        for req in claimed {
            let slot = self.endpoint_slot(req.endpoint_id);
            // An open breaker lets one probe through at a time.
            let breaker_open = req.failures_in_a_row >= threshold;
            let capacity = self.ctx.settings.webhooks.concurrency_per_endpoint;
            if breaker_open
                && (probing.contains(&req.endpoint_id) || slot.available_permits() < capacity)
            {
                release.push(req.id);
                continue;
            }
            let (Ok(endpoint), Ok(global)) = (
                slot.try_acquire_owned(),
                self.global.clone().try_acquire_owned(),
            ) else {
                release.push(req.id);
                continue;
            };
            if breaker_open {
                probing.push(req.endpoint_id);
            }
            started += 1;
            tokio::spawn(send_one(
                self.client.clone(),
                self.sealer.clone(),
                req,
                (endpoint, global),
                self.done.clone(),
            ));
        }
        if !release.is_empty() {
            sqlx::query("update webhook_requests set leased_until = null where id = any($1)")
                .bind(&release)
                .execute(&self.ctx.db)
                .await?;
        }
        Ok(started)
    }

    fn endpoint_slot(&self, endpoint: i64) -> Arc<Semaphore> {
        let mut map = self.per_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        let capacity = self.ctx.settings.webhooks.concurrency_per_endpoint;
        map.entry(endpoint)
            .or_insert_with(|| Arc::new(Semaphore::new(capacity)))
            .clone()
    }
}

/// Due requests of enabled endpoints whose breaker is not pausing them, leased to us.
async fn claim(ctx: &WorkerContext, limit: i64) -> Result<Vec<Claimed>> {
    Ok(sqlx::query_as(
        "with due as (
            select r.id from webhook_requests r join webhook_endpoints w on w.id = r.endpoint_id
             where r.state = 'pending' and r.next_attempt_at <= now()
               and (r.leased_until is null or r.leased_until < now())
               and w.enabled and (w.paused_until is null or w.paused_until <= now())
             order by r.next_attempt_at, r.id
             limit $1
             for update of r skip locked)
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
    .fetch_all(&ctx.db)
    .await?)
}

async fn send_one(
    client: Client,
    sealer: Arc<SecretBox>,
    req: Claimed,
    permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    done: mpsc::Sender<Done>,
) {
    let answer = match keys(&sealer, &req) {
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
            client.post(&req.url, &headers, req.body.clone()).await
        }
        Err(error) => Answer {
            status: None,
            latency: std::time::Duration::ZERO,
            excerpt: None,
            error: Some(error),
        },
    };
    drop(permits);
    // The recorder only stops at shutdown; the lease then expires and the request goes again.
    let finished = Done {
        request_id: req.id,
        endpoint_id: req.endpoint_id,
        attempts_before: req.attempts,
        event_count: req.event_count,
        first_event_at: req.first_event_at,
        answer,
        at: Utc::now(),
    };
    let _ = done.send(finished).await;
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
