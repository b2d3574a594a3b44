//! The worker's own small HTTP endpoint: `/metrics` (Prometheus) and `/health`, and the gauges
//! only the worker can see: the send stream's length, its consumer group's lag and the entries
//! read but not acknowledged, each per shard (label `shard`, `0` when the stream is one key).

use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use deadpool_redis::redis;
use shared::jobs::CONSUMER_GROUP;
use shared::metrics as m;
use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;
use crate::error::{Error, Result};

const STREAM_POLL: Duration = Duration::from_secs(5);

async fn render() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m::handle().render(),
    )
}

/// Serves until `shutdown`. A port that is taken is logged, not fatal: delivery matters more
/// than its dashboard.
pub async fn serve(ctx: WorkerContext, shutdown: CancellationToken) -> Result<()> {
    let _ = m::handle();
    tokio::spawn(poll_stream(ctx.clone(), shutdown.clone()));
    let Some(addr) = ctx.settings.worker.metrics_listen else {
        return Ok(());
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot serve worker metrics (MAILAPI_WORKER_METRICS_LISTEN)");
            return Ok(());
        }
    };
    tracing::info!(addr = %listener.local_addr()?, "worker metrics on /metrics");
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/health", get(|| async { "ok" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(Error::io("serving worker metrics"))?;
    Ok(())
}

async fn poll_stream(ctx: WorkerContext, shutdown: CancellationToken) {
    loop {
        for shard in 0..ctx.settings.send_stream_shards {
            let key = ctx.keys.send_stream_shard(shard);
            if let Err(e) = sample_stream(&ctx, &key, shard).await {
                tracing::debug!(error = %e, %key, "could not sample the send stream");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(STREAM_POLL) => {}
        }
    }
}

async fn sample_stream(ctx: &WorkerContext, key: &str, shard: u16) -> Result<()> {
    let shard = shard.to_string();
    let mut conn = ctx.redis.get().await?;
    let len: u64 = redis::cmd("XLEN").arg(key).query_async(&mut conn).await?;
    metrics::gauge!(m::STREAM_LENGTH, "shard" => shard.clone()).set(len as f64);
    // XINFO GROUPS answers one map per group; pick ours.
    let groups: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query_async(&mut conn)
        .await?;
    let ours = groups.iter().find(|g| {
        g.get("name")
            .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
            .as_deref()
            == Some(CONSUMER_GROUP)
    });
    if let Some(g) = ours {
        let num = |field: &str| {
            g.get(field)
                .and_then(|v| redis::from_redis_value::<i64>(v.clone()).ok())
                .unwrap_or(0) as f64
        };
        metrics::gauge!(m::STREAM_PENDING, "shard" => shard.clone()).set(num("pending"));
        metrics::gauge!(m::STREAM_LAG, "shard" => shard).set(num("lag"));
    }
    Ok(())
}
