//! The stream entry that wakes a worker, on the send stream's shard for its message. It is only
//! a hint: if this `XADD` fails after the commit, the message is still stored as `pending` and the workers' reconciler adds it again
//! once `MAILAPI_RECONCILE_AFTER_SECS` have passed, so the client's 202 stays true.

use deadpool_redis::redis;
use opentelemetry::KeyValue;
use shared::jobs::{STREAM_MAX_LEN, SendJob, shard_for};

use crate::state::AppState;

/// Name of the client span around the `XADD`.
pub const XADD_SPAN: &str = "XADD send stream";

pub async fn enqueue(state: &AppState, job: &SendJob) {
    let mut conn = state.redis.clone();
    // With several shards, the message's id picks one (the workers read them all).
    let shard = shard_for(job.message_id, state.settings.send_stream_shards);
    let stream = state.keys.send_stream_shard(shard);
    let mut cmd = redis::cmd("XADD");
    let xadd = cmd
        .arg(&stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_MAX_LEN)
        .arg("*")
        .arg(job.fields())
        .query_async::<String>(&mut conn);
    let attributes = || {
        vec![
            KeyValue::new("db.system.name", "redis"),
            KeyValue::new("db.operation.name", "XADD"),
        ]
    };
    let result = state.tracer.in_span(XADD_SPAN, attributes, xadd).await;
    if let Err(e) = result {
        tracing::warn!(message_id = %job.message_id, error = %e,
            "could not add the send job to the stream; the reconciler will re-add it");
    }
}
