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

use std::sync::Arc;
use std::time::Duration;

use shared::metrics as m;
use shared::secretbox::SecretBox;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;
use crate::error::{Error, Result};

/// How long a part waits when a round found nothing to do and nothing woke it.
const IDLE: Duration = Duration::from_millis(50);
/// How often the pending gauges are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// How the parts wake each other: the fan-out made deliveries (assemble), the assembler made
/// requests or a request finished (send), the recorder settled deliveries so a message's next
/// event may go (assemble). Without a wake-up each part still looks every [`IDLE`].
#[derive(Default)]
pub struct Wake {
    pub assemble: Notify,
    pub send: Notify,
}

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
    let wake = Arc::new(Wake::default());
    let (done_tx, done_rx) = tokio::sync::mpsc::channel(send::MAX_IN_FLIGHT * 2);
    let recorder = tokio::spawn(record::run(ctx.clone(), done_rx, wake.clone()));
    tokio::spawn(sample(ctx.clone(), shutdown.clone()));
    let fan = {
        let (ctx, wake) = (ctx.clone(), wake.clone());
        repeat("fan-out", shutdown.clone(), None, move || {
            let (ctx, wake) = (ctx.clone(), wake.clone());
            async move { fanout::step(&ctx, &wake).await }
        })
    };
    let assembler = {
        let (ctx, wake) = (ctx.clone(), wake.clone());
        let woken = wake.clone();
        repeat("assembly", shutdown.clone(), Some(woken), move || {
            let (ctx, wake) = (ctx.clone(), wake.clone());
            async move { assemble::step(&ctx, &wake).await }
        })
    };
    let sender = Arc::new(send::Sender::new(
        ctx.clone(),
        client,
        sealer,
        done_tx,
        wake.clone(),
    ));
    let sending = {
        let sender = sender.clone();
        repeat("sending", shutdown.clone(), Some(wake.clone()), move || {
            let sender = sender.clone();
            async move { sender.step().await }
        })
    };
    let result = tokio::try_join!(fan, assembler, sending).map(|_| ());
    if let Err(e) = sender.release_queued().await {
        tracing::warn!(error = %e, "could not give back webhook requests claimed ahead; their leases expire");
    }
    // Requests still in flight finish (15 s at most) and are recorded before the worker stops:
    // the recorder ends when the last sender handle (held by those requests) is gone.
    drop(sender);
    let _ = recorder.await;
    result
}

/// Runs `step` until `shutdown`: again at once while it says there is more, else after a
/// wake-up or [`IDLE`]; transient errors back off.
async fn repeat<F, Fut>(
    what: &'static str,
    shutdown: CancellationToken,
    wake: Option<Arc<Wake>>,
    mut step: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let mut backoff = Backoff::default();
    while !shutdown.is_cancelled() {
        let wait = match step().await {
            Ok(more) => {
                backoff.reset();
                if more {
                    tokio::task::yield_now().await;
                    continue;
                }
                IDLE
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "webhook {what} failed; retrying");
                backoff.after_failure()
            }
            Err(e) => return Err(e),
        };
        let woken = async {
            match (&wake, what) {
                (Some(w), "assembly") => w.assemble.notified().await,
                (Some(w), _) => w.send.notified().await,
                (None, _) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
            _ = woken => {}
        }
    }
    Ok(())
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
