//! The reconciler: puts back on the stream every message that is due but has no live stream
//! entry (the API's `XADD` failed, Redis lost the stream, a retry became due, or a worker died
//! holding a claim). `for update skip locked` lets every worker run it without two of them
//! re-adding the same message.

use std::time::Duration;

use shared::jobs::SendJob;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::WorkerContext;
use crate::error::Result;
use crate::stream::SendStream;

const BATCH: i64 = 500;
const TICK: Duration = Duration::from_secs(1);

/// One pass; returns how many messages were re-added.
pub async fn reconcile_once(ctx: &WorkerContext, stream: &SendStream) -> Result<usize> {
    let rows: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "update messages set enqueued_at = now()
          where id in (
                select id from messages
                 where status = 'pending' and next_attempt_at <= now()
                   and (claimed_until is null or claimed_until < now())
                   and (enqueued_at is null or enqueued_at < now() - make_interval(secs => $1))
                 order by next_attempt_at
                 limit $2
                 for update skip locked)
         returning id, traceparent",
    )
    .bind(ctx.settings.worker.reconcile_after.as_secs_f64())
    .bind(BATCH)
    .fetch_all(&ctx.db)
    .await?;
    // The stored traceparent keeps a retried message in the trace of the request that accepted
    // it (it is null when the API ran with tracing off).
    let jobs: Vec<SendJob> = rows
        .into_iter()
        .map(|(message_id, traceparent)| SendJob {
            message_id,
            traceparent,
        })
        .collect();
    // If this fails the rows keep their new enqueued_at and are retried after
    // MAILAPI_RECONCILE_AFTER_SECS: nothing is lost, only delayed.
    stream.add(&jobs).await?;
    Ok(jobs.len())
}

pub async fn run(ctx: WorkerContext, shutdown: CancellationToken) -> Result<()> {
    let stream = SendStream::for_worker(&ctx);
    loop {
        match reconcile_once(&ctx, &stream).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "re-enqueued due messages"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "reconciler pass failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}
