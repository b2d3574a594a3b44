//! Webhooks: every published event pushed to the endpoints that want it, signed (Standard
//! Webhooks), in per-message order, retried, and dead-lettered rather than lost
//! (docs/WEBHOOKS.md). Four parts, each its own task, apart from SMTP submission so a slow
//! receiver never slows sending:
//!
//! 1. [`fanout`] reads the event feed in commit order and makes a delivery per endpoint and
//!    event, in the same statement that moves its cursor;
//! 2. [`assemble`] puts ready deliveries into requests (one event, or a batch), fixing each
//!    request's body and `webhook-id` for good;
//! 3. [`send`] leases due requests and POSTs them, signed at the time of the attempt;
//! 4. [`record`] writes the answers and decides retries, dead letters, 410s and the breaker.
//!
//! Postgres holds every step, so any number of workers share the work and a killed one loses
//! nothing: its leases expire and its requests are sent again.

pub mod assemble;
pub mod client;
pub mod fanout;
pub mod record;
pub mod send;

use std::time::Duration;

use shared::metrics as m;
use shared::secretbox::SecretBox;
use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;
use crate::error::{Error, Result};

/// How long the sender waits when a round found nothing to do.
const IDLE: Duration = Duration::from_millis(50);
/// How often the pending gauges are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Runs the four parts until `shutdown`. Without `MAILAPI_SECRET_KEY` nothing can be signed (and
/// the API registers no endpoint): the worker then only says so.
pub async fn run(ctx: WorkerContext, shutdown: CancellationToken) -> Result<()> {
    let Some(key) = ctx.settings.webhooks.secret_key.clone() else {
        tracing::warn!("MAILAPI_SECRET_KEY is not set: webhooks are not delivered");
        return Ok(());
    };
    let sealer = SecretBox::new(&key).map_err(|e| Error::Config(e.to_string()))?;
    let client = client::Client::new(&ctx.settings.webhooks)
        .map_err(|e| Error::Config(format!("webhook HTTP client: {e}")))?;
    let (done_tx, done_rx) = tokio::sync::mpsc::channel(send::MAX_IN_FLIGHT * 2);
    let recorder = tokio::spawn(record::run(ctx.clone(), done_rx));
    let fan = tokio::spawn(fanout::run(ctx.clone(), shutdown.clone()));
    tokio::spawn(sample(ctx.clone(), shutdown.clone()));
    let sender = send::Sender::new(ctx.clone(), client, sealer, done_tx);
    let mut backoff = Backoff::default();
    while !shutdown.is_cancelled() {
        let wait = match round(&sender, &ctx).await {
            Ok(true) => {
                backoff.reset();
                Duration::ZERO
            }
            Ok(false) => {
                backoff.reset();
                IDLE
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "webhook round failed; retrying");
                backoff.after_failure()
            }
            Err(e) => return Err(e),
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Requests still in flight finish (15 s at most) and are recorded before the worker stops.
    drop(sender);
    let _ = recorder.await;
    fan.await??;
    Ok(())
}

/// Assembles and sends once; whether there was anything to do.
async fn round(sender: &send::Sender, ctx: &WorkerContext) -> Result<bool> {
    let assembled = assemble::step(ctx).await?;
    let started = sender.step().await?;
    Ok(assembled > 0 || started > 0)
}

/// The gauges: deliveries pending, and the oldest one's age per endpoint.
async fn sample(ctx: WorkerContext, shutdown: CancellationToken) {
    let mut seen: Vec<String> = Vec::new();
    loop {
        let rows: std::result::Result<Vec<(i64, i64, f64)>, _> = sqlx::query_as(
            "select endpoint_id, count(*),
                    extract(epoch from now() - min(created_at))::float8
               from webhook_deliveries where state = 'pending' group by endpoint_id",
        )
        .fetch_all(&ctx.db)
        .await;
        if let Ok(rows) = rows {
            let total: i64 = rows.iter().map(|r| r.1).sum();
            metrics::gauge!(m::WEBHOOK_PENDING).set(total as f64);
            let now: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
            for gone in seen.iter().filter(|e| !now.contains(e)) {
                metrics::gauge!(m::WEBHOOK_OLDEST, "endpoint" => gone.clone()).set(0.0);
            }
            for (endpoint, _, age) in &rows {
                metrics::gauge!(m::WEBHOOK_OLDEST, "endpoint" => endpoint.to_string()).set(*age);
            }
            seen = now;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}

/// Waits after failed rounds: 100 ms doubling to 5 s.
#[derive(Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn after_failure(&mut self) -> Duration {
        let wait = Duration::from_millis(100) * 2u32.pow(self.failures.min(6));
        self.failures += 1;
        wait.min(Duration::from_secs(5))
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}
