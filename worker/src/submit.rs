//! The send loop: read the stream, claim each message in Postgres, build and sign its MIME,
//! submit it over SMTP, record the outcome, and only then acknowledge the entry.
//!
//! [`Submitter::process`] is the step function (one job, one outcome). [`run`] feeds the same
//! steps from the stream with bounded concurrency, but claims everything one read brought in
//! one statement, records `submitted` outcomes and acknowledges entries in batches (see
//! [`shared::batch`]), and stops reading on shutdown while in-flight submissions finish.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use shared::jobs::SendJob;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::claim::{self, Claimed, LogVerdict, SubmittedRecord};
use crate::context::WorkerContext;
use crate::dkim::DkimKeys;
use crate::smtp::{Smtp, SubmitFailure};
use crate::stream::{Entry, EntryId, SendStream};
use crate::tracing_ctx;
use shared::batch::Batcher;

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
    pub async fn process(&self, job: &SendJob) -> anyhow::Result<Outcome> {
        let hold = self.ctx.settings.claim_duration();
        let claimed =
            claim::claim_many(&self.ctx.db, &[job.message_id], self.worker(), hold).await?;
        match claimed.into_iter().next() {
            Some(c) => self.process_claim(c).await,
            None => Ok(Outcome::Skipped),
        }
    }

    /// Takes a message this worker has just claimed to a committed outcome.
    async fn process_claim(&self, c: Result<Claimed, (Uuid, String)>) -> anyhow::Result<Outcome> {
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
                        .await?;
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
            Err(e) => {
                let reason = format!("message could not be built: {e:#}");
                claim::record_failed(db, c.id, self.worker(), &reason, None).await?;
                Ok(Outcome::Failed)
            }
        }
    }

    /// The signed bytes and the VERP envelope (`bounces+<message>@<bounce domain>`).
    async fn prepare(&self, c: &Claimed) -> anyhow::Result<(lettre::address::Envelope, Vec<u8>)> {
        if c.recipients.is_empty() {
            anyhow::bail!("no recipient left to send to");
        }
        let mut bytes = c
            .message
            .build(&c.rfc_message_id, c.created_at)?
            .formatted();
        // Signed last, over exactly the bytes that are submitted. Inline on the runtime thread
        // (about 1 ms of CPU, most of it RSA): the blocking pool would add a thread hand-off per
        // message and save no CPU.
        if let Some(dkim) = self.dkim.for_domain(&self.ctx.db, &c.from_domain).await? {
            bytes = dkim.sign(&bytes)?;
        }
        let return_path = format!(
            "bounces+{}@{}",
            c.id.simple(),
            self.ctx.settings.bounce_domain
        );
        let envelope = c.message.envelope(&return_path, Some(&c.recipients))?;
        Ok((envelope, bytes))
    }

    async fn submit(
        &self,
        c: &Claimed,
        envelope: &lettre::address::Envelope,
        bytes: &[u8],
    ) -> anyhow::Result<Outcome> {
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
                    .await?;
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
async fn with_retries<F, Fut>(mut write: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
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

/// Reads the stream until `shutdown`, processing entries with at most `concurrency` in flight,
/// and takes over entries dead consumers left behind. In-flight submissions finish before it
/// returns; their entries are acknowledged once their outcome is committed.
pub async fn run(ctx: WorkerContext, shutdown: CancellationToken) -> anyhow::Result<()> {
    let stream = SendStream::for_worker(&ctx);
    stream.ensure_group().await?;
    let concurrency = ctx.settings.worker.concurrency;
    let reclaim_idle = ctx.settings.worker.reclaim_idle;
    let submitter = Arc::new(Submitter::new(ctx));
    let acker = {
        let stream = stream.clone();
        Batcher::spawn(MAX_BATCH, 1, move |batches: Vec<Vec<EntryId>>| {
            let stream = stream.clone();
            async move {
                let n = batches.len();
                let ids: Vec<EntryId> = batches.into_iter().flatten().collect();
                with_retries(|| stream.ack(&ids)).await?;
                Ok(vec![(); n])
            }
        })
    };
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let mut last_autoclaim = tokio::time::Instant::now() - reclaim_idle;

    while !shutdown.is_cancelled() {
        // Wait for capacity first, so entries are only taken when they can start at once.
        let free = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_many_owned(1) => { drop(p); permits.available_permits().max(1) }
        };
        let mut entries: Vec<Entry> = Vec::new();
        if last_autoclaim.elapsed() >= reclaim_idle / 4 {
            last_autoclaim = tokio::time::Instant::now();
            match stream.autoclaim(reclaim_idle, free).await {
                Ok(mut claimed) => {
                    if !claimed.is_empty() {
                        tracing::info!(
                            count = claimed.len(),
                            "took over entries of a stalled consumer"
                        );
                    }
                    entries.append(&mut claimed);
                }
                Err(e) => tracing::warn!(error = %e, "XAUTOCLAIM failed"),
            }
        }
        if entries.is_empty() {
            let read = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = stream.read(free, READ_BLOCK) => r,
            };
            match read {
                Ok(e) => entries = e,
                Err(e) => {
                    // Redis lost its data (restart without persistence, failover): the group is
                    // gone. Recreate it; the reconciler re-adds every pending message.
                    if format!("{e:#}").contains("NOGROUP") {
                        tracing::warn!("the send stream's consumer group is gone; recreating it");
                        if let Err(e) = stream.ensure_group().await {
                            tracing::warn!(error = %e, "could not recreate the consumer group");
                        }
                        continue;
                    }
                    tracing::warn!(error = %e, "reading the send stream failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        if !entries.is_empty() {
            dispatch(&submitter, &acker, &permits, &mut tasks, entries).await?;
        }
        // Reap finished tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    tracing::info!(
        in_flight = tasks.len(),
        "send loop stopping; finishing in-flight submissions"
    );
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Claims the messages of one read in one statement and starts a task for each claimed one.
/// An entry is acknowledged once its message's outcome is committed; entries with nothing to do
/// (unreadable, already handled, held by another worker, not yet due) right away. If the claim
/// itself fails nothing is acknowledged: the entries are taken over after the reclaim idle
/// time, and the reconciler re-adds any message whose entry is lost.
async fn dispatch(
    submitter: &Arc<Submitter>,
    acker: &Batcher<Vec<EntryId>>,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    entries: Vec<Entry>,
) -> anyhow::Result<()> {
    crate::fault::reached(crate::fault::Step::AfterRead);
    // Per message: its entries, and the first entry's traceparent (the parent of its span).
    let mut by_message: HashMap<Uuid, (Vec<EntryId>, Option<String>)> = HashMap::new();
    let mut nothing_to_do = Vec::new();
    for entry in entries {
        match entry.job {
            Some(job) => {
                let (entry_ids, traceparent) = by_message.entry(job.message_id).or_default();
                entry_ids.push(entry.id);
                if traceparent.is_none() {
                    *traceparent = job.traceparent;
                }
            }
            None => nothing_to_do.push(entry.id),
        }
    }
    let ids: Vec<Uuid> = by_message.keys().copied().collect();
    let hold = submitter.ctx.settings.claim_duration();
    // Each message's span starts here: the claim they share is part of every submission.
    let claim_started = std::time::SystemTime::now();
    match claim::claim_many(&submitter.ctx.db, &ids, submitter.worker(), hold).await {
        Ok(claimed) => {
            for c in claimed {
                let id = match &c {
                    Ok(c) => c.id,
                    Err((id, _)) => *id,
                };
                let (entry_ids, traceparent) = by_message.remove(&id).unwrap_or_default();
                let permit = permits.clone().acquire_owned().await?;
                let submitter = submitter.clone();
                let acker = acker.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    let span = tracing_ctx::Submission {
                        message_id: id,
                        traceparent: traceparent.as_deref(),
                        entry_id: entry_ids.first().map(|e| e.id.as_str()),
                        started: claim_started,
                    };
                    let tracer = &submitter.ctx.tracer;
                    match tracing_ctx::submission(tracer, span, submitter.process_claim(c)).await {
                        Ok(outcome) => {
                            tracing::debug!(message_id = %id, ?outcome, "job done");
                            ack(&acker, entry_ids).await;
                        }
                        // Not acknowledged: reclaimed after the idle time (and then skipped or
                        // retried by the claim), or re-added by the reconciler.
                        Err(e) => tracing::error!(error = format!("{e:#}"), message_id = %id,
                            "job failed; left for reclaim"),
                    }
                });
            }
            nothing_to_do.extend(
                by_message
                    .into_values()
                    .flat_map(|(entry_ids, _)| entry_ids),
            );
        }
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                entries = ids.len(),
                "claiming messages failed; entries left for reclaim"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    if !nothing_to_do.is_empty() {
        let acker = acker.clone();
        tasks.spawn(async move { ack(&acker, nothing_to_do).await });
    }
    Ok(())
}

async fn ack(acker: &Batcher<Vec<EntryId>>, entry_ids: Vec<EntryId>) {
    if let Err(e) = acker.run(entry_ids).await {
        // The entries stay pending; they are reclaimed later and then skipped by the claim.
        tracing::warn!(error = format!("{e:#}"), "XACK failed");
    }
}
