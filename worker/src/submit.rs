//! The send loop: read the stream, claim each message in Postgres, build and sign its MIME,
//! submit it over SMTP, record the outcome, and only then acknowledge the entry.
//!
//! [`Submitter::process`] is the step function (one job, one outcome). [`feed::run`] feeds the
//! same steps from the stream with bounded concurrency, but claims everything one read brought
//! in one statement, records `submitted` outcomes and acknowledges entries in batches (see
//! [`shared::batch`]), and stops reading on shutdown while in-flight submissions finish.

use std::time::Duration;

use rand::Rng;
use shared::batch::Batcher;
use shared::jobs::SendJob;
use uuid::Uuid;

use crate::claim::{self, Claimed, LogVerdict, SubmittedRecord};
use crate::context::WorkerContext;
use crate::dkim::DkimKeys;
use crate::error::{Error, Result};
use crate::smtp::{Smtp, SubmitFailure};
use crate::tracing_ctx;

pub mod feed;

/// What happened to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The MTA queued it (now, or an earlier attempt that the delivery log proves).
    Submitted,
    /// Transient failure; the reconciler re-adds it when the retry is due.
    RetryScheduled,
    /// Failed for good.
    Failed,
    /// Nothing to do: already handled, held by another worker, or not due.
    Skipped,
    /// An earlier attempt may have reached the MTA and the log has not told us yet.
    AwaitingLog,
}

pub struct Submitter {
    ctx: WorkerContext,
    smtp: Smtp,
    dkim: DkimKeys,
    /// Writes `submitted` outcomes, many per statement.
    recorder: Batcher<SubmittedRecord>,
}

/// Most outcomes one statement records (and most entries one `XACK` acknowledges).
const MAX_BATCH: usize = 256;

/// Attempts at a batched write before its callers see the error (a deadlock with the log
/// follower's roll-up, or a connection dropped mid-statement; the writes are idempotent).
const BATCH_ATTEMPTS: u32 = 3;

/// How long one `XREADGROUP` blocks. Must stay well under the Redis client's response timeout
/// (500 ms by default in redis-rs): Redis checks blocked clients' timeouts only on its cron tick
/// (10 Hz by default), so a 400 ms block could answer after 500 ms and end in a timeout error.
const READ_BLOCK: Duration = Duration::from_millis(200);

/// How long to wait for the log follower before looking again.
const LOG_RECHECK: Duration = Duration::from_secs(5);

impl Submitter {
    /// Must be called inside the Tokio runtime (it starts the batch writer).
    pub fn new(ctx: WorkerContext) -> Self {
        let smtp = Smtp::new(&ctx.settings.smtp);
        let db = ctx.db.clone();
        let worker = ctx.settings.worker.consumer_name.clone();
        let recorder = Batcher::spawn(MAX_BATCH, 1, move |records: Vec<SubmittedRecord>| {
            let db = db.clone();
            let worker = worker.clone();
            async move {
                with_retries(|| claim::record_submitted_many(&db, &worker, &records)).await?;
                Ok(vec![(); records.len()])
            }
        });
        Self {
            ctx,
            smtp,
            dkim: DkimKeys::default(),
            recorder,
        }
    }

    fn worker(&self) -> &str {
        &self.ctx.settings.worker.consumer_name
    }

    /// Handles one job to an outcome that is committed in Postgres.
    pub async fn process(&self, job: &SendJob) -> Result<Outcome> {
        let hold = self.ctx.settings.claim_duration();
        let claimed =
            claim::claim_many(&self.ctx.db, &[job.message_id], self.worker(), hold).await?;
        match claimed.into_iter().next() {
            Some(c) => self.process_claim(c).await,
            None => Ok(Outcome::Skipped),
        }
    }

    /// Takes a message this worker has just claimed to a committed outcome.
    async fn process_claim(&self, c: Result<Claimed, (Uuid, String)>) -> Result<Outcome> {
        let db = &self.ctx.db;
        let c = match c {
            Ok(c) => c,
            Err((id, reason)) => {
                claim::record_failed(db, id, self.worker(), &reason, None).await?;
                return Ok(Outcome::Failed);
            }
        };
        if let Some(started) = c.previous_send_started {
            match claim::check_log(db, &c.rfc_message_id, started).await? {
                LogVerdict::Queued(queue_id) => {
                    tracing::warn!(message_id = %c.id, %queue_id,
                        "an earlier attempt reached the MTA; recording it instead of sending again");
                    tracing_ctx::record_queue_id(&self.ctx.tracer, Some(&queue_id));
                    self.recorder
                        .run(SubmittedRecord {
                            id: c.id,
                            queue_id: Some(queue_id),
                            reply: "queued by an earlier attempt (found in the MTA log)".into(),
                        })
                        .await
                        .map_err(Error::batch)?;
                    return Ok(Outcome::Submitted);
                }
                LogVerdict::Unknown => {
                    claim::release(db, &c, self.worker(), LOG_RECHECK).await?;
                    return Ok(Outcome::AwaitingLog);
                }
                LogVerdict::NotQueued => {}
            }
        }
        match self.prepare(&c).await {
            Ok((envelope, bytes)) => self.submit(&c, &envelope, &bytes).await,
            // Postgres not answering for the DKIM key is no fault of the message: its claim
            // runs out and it is tried again.
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                let reason = format!("message could not be built: {e:#}");
                claim::record_failed(db, c.id, self.worker(), &reason, None).await?;
                Ok(Outcome::Failed)
            }
        }
    }

    /// The signed bytes and the VERP envelope (`bounces+<message>@<bounce domain>`).
    async fn prepare(&self, c: &Claimed) -> Result<(lettre::address::Envelope, Vec<u8>)> {
        if c.recipients.is_empty() {
            return Err(Error::Unsendable("no recipient left to send to".into()));
        }
        let unsendable = |e: &dyn std::fmt::Display| Error::Unsendable(e.to_string());
        let mut bytes = c
            .message
            .build(&c.rfc_message_id, c.created_at)
            .map_err(|e| unsendable(&e))?
            .formatted();
        // Signed last, over exactly the bytes that are submitted. Inline on the runtime thread
        // (about 1 ms of CPU, most of it RSA): the blocking pool would add a thread hand-off per
        // message and save no CPU.
        if let Some(dkim) = self.dkim.for_domain(&self.ctx.db, &c.from_domain).await? {
            bytes = dkim.sign(&bytes).map_err(|e| unsendable(&e))?;
        }
        let return_path = format!(
            "bounces+{}@{}",
            c.id.simple(),
            self.ctx.settings.bounce_domain
        );
        let envelope = c
            .message
            .envelope(&return_path, Some(&c.recipients))
            .map_err(|e| unsendable(&e))?;
        Ok((envelope, bytes))
    }

    async fn submit(
        &self,
        c: &Claimed,
        envelope: &lettre::address::Envelope,
        bytes: &[u8],
    ) -> Result<Outcome> {
        let db = &self.ctx.db;
        let started = std::time::Instant::now();
        crate::fault::reached(crate::fault::Step::BeforeSmtp);
        let result = tracing_ctx::smtp(&self.ctx.tracer, self.smtp.submit(envelope, bytes)).await;
        let outcome = match &result {
            Ok(_) => "accepted",
            Err(SubmitFailure::Transient(_)) => "transient",
            Err(SubmitFailure::Permanent { .. }) => "permanent",
            Err(SubmitFailure::Ambiguous(_)) => "ambiguous",
        };
        metrics::counter!(shared::metrics::SMTP_SUBMISSIONS, "outcome" => outcome).increment(1);
        metrics::histogram!(shared::metrics::SMTP_DURATION).record(started.elapsed().as_secs_f64());
        tracing::debug!(message_id = %c.id, elapsed_ms = started.elapsed().as_millis() as u64, ok = result.is_ok(), "smtp submission");
        match result {
            Ok(accepted) => {
                crate::fault::reached(crate::fault::Step::After250);
                tracing_ctx::record_queue_id(&self.ctx.tracer, accepted.queue_id.as_deref());
                self.recorder
                    .run(SubmittedRecord {
                        id: c.id,
                        queue_id: accepted.queue_id,
                        reply: accepted.reply,
                    })
                    .await
                    .map_err(Error::batch)?;
                crate::fault::reached(crate::fault::Step::AfterCommit);
                Ok(Outcome::Submitted)
            }
            Err(SubmitFailure::Permanent { reply, dsn }) => {
                claim::record_failed(db, c.id, self.worker(), &reply, dsn.as_deref()).await?;
                Ok(Outcome::Failed)
            }
            Err(failure) => {
                let schedule = &self.ctx.settings.worker.retry_schedule;
                let done = usize::try_from(c.attempts).unwrap_or(usize::MAX);
                let maybe_queued = matches!(failure, SubmitFailure::Ambiguous(_));
                match schedule.get(done.saturating_sub(1)) {
                    Some(delay) => {
                        let delay = with_jitter(*delay);
                        tracing::info!(message_id = %c.id, attempt = c.attempts, error = failure.text(), retry_in_s = delay.as_secs(), "transient SMTP failure");
                        claim::record_retry(
                            db,
                            c.id,
                            self.worker(),
                            delay,
                            failure.text(),
                            maybe_queued,
                        )
                        .await?;
                        Ok(Outcome::RetryScheduled)
                    }
                    None => {
                        let reason = format!(
                            "gave up after {} attempts; last error: {}",
                            c.attempts,
                            failure.text()
                        );
                        claim::record_failed(db, c.id, self.worker(), &reason, None).await?;
                        Ok(Outcome::Failed)
                    }
                }
            }
        }
    }
}

/// Runs an idempotent batched write up to [`BATCH_ATTEMPTS`] times.
async fn with_retries<F, Fut>(mut write: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < BATCH_ATTEMPTS => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    attempt,
                    "batched write failed; retrying"
                );
                tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// ±20 % so that messages failing together do not retry in lockstep.
fn with_jitter(d: Duration) -> Duration {
    let factor = rand::rng().random_range(0.8..1.2);
    d.mul_f64(factor)
}
