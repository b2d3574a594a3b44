//! The worker: consumes the send stream, submits messages to the MTA over SMTP, and turns the
//! MTA's delivery log and bounce reports into per-recipient status.
//!
//! Layout: [`context`] holds shared handles and [`error`] the one error type, which decides
//! what is worth retrying; [`stream`] wraps the send stream's consumer groups (one per shard);
//! [`submit`] is the send loop (claim in Postgres, build, sign, submit, record) with
//! [`claim`] holding its SQL, [`smtp`] the pooled transport and the sorting of SMTP outcomes,
//! and [`dkim`] the DKIM signer and the per-domain keys it signs with; [`reconcile`] re-enqueues due messages the stream
//! lost. [`logtail`] follows the MTA's log (parsed by [`logline`]) into recipient statuses, and
//! [`bounces`] reads bounce reports (parsed by [`dsn`]) from the bounce mailbox; [`metrics`]
//! serves `/metrics` and samples the stream; [`tracing_ctx`] makes the submission and delivery
//! spans that continue each message's trace.

pub mod bounces;
pub mod claim;
pub mod context;
pub mod dkim;
pub mod dsn;
pub mod error;
pub mod fault;
pub mod logline;
pub mod logtail;
pub mod metrics;
pub mod reconcile;
pub mod smtp;
pub mod stream;
pub mod submit;
pub mod tracing_ctx;
pub mod webhooks;

use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;
pub use crate::error::{Error, Result};

/// Runs every worker task until `shutdown` is cancelled, then lets in-flight work finish.
/// A task that fails stops the others: the process exits non-zero and its supervisor restarts it.
pub async fn run_until_stopped(ctx: WorkerContext, shutdown: CancellationToken) -> Result<()> {
    let mut tasks: tokio::task::JoinSet<Result<()>> = tokio::task::JoinSet::new();
    tasks.spawn(submit::feed::run(ctx.clone(), shutdown.clone()));
    tasks.spawn(reconcile::run(ctx.clone(), shutdown.clone()));
    tasks.spawn(logtail::run(ctx.clone(), shutdown.clone()));
    tasks.spawn(bounces::run(ctx.clone(), shutdown.clone()));
    tasks.spawn(metrics::serve(ctx.clone(), shutdown.clone()));
    tasks.spawn(webhooks::run(ctx.clone(), shutdown.clone()));
    let mut result = Ok(());
    while let Some(res) = tasks.join_next().await {
        let res = res.map_err(Error::from).and_then(|r| r);
        if let Err(e) = res {
            tracing::error!(error = format!("{e:#}"), "worker task failed; stopping");
            shutdown.cancel();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    // Every task has returned, so no span is still open.
    ctx.tracer.shutdown().await;
    result
}
