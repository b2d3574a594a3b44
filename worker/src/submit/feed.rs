//! Feeding the send step from the stream: read entries (and take over those a dead consumer
//! left), claim one read's messages in one statement, run each claimed one through
//! [`Submitter`] with bounded concurrency, and acknowledge entries in batches once their outcome
//! is committed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use shared::batch::Batcher;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{MAX_BATCH, READ_BLOCK, Submitter, with_retries};
use crate::claim;
use crate::context::WorkerContext;
use crate::error::Result;
use crate::stream::{Entry, EntryId, SendStream};
use crate::tracing_ctx;

/// Reads the stream until `shutdown`, processing entries with at most `concurrency` in flight,
/// and takes over entries dead consumers left behind. In-flight submissions finish before it
/// returns; their entries are acknowledged once their outcome is committed.
pub async fn run(ctx: WorkerContext, shutdown: CancellationToken) -> Result<()> {
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
                    if e.is_missing_group() {
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
) -> Result<()> {
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
                // The semaphore is never closed; were it, the loop is stopping anyway.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return Ok(());
                };
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
