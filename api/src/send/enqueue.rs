//! The stream entry that wakes a worker, on the send stream's shard for its message. It is only
//! a hint: if this `XADD` fails after the commit, the message is still stored as `pending` and the
//! workers' reconciler adds it again once `MAILAPI_RECONCILE_AFTER_SECS` have passed, so the
//! client's 202 stays true.

use deadpool_redis::redis::{self, RedisResult};
use opentelemetry::KeyValue;
use shared::jobs::{Keys, STREAM_MAX_LEN, SendJob, shard_for};
use shared::redis::RedisConn;

/// Name of the client span around the `XADD`.
pub const XADD_SPAN: &str = "XADD send stream";

/// Attributes of that span.
pub fn span_attributes() -> Vec<KeyValue> {
    vec![
        KeyValue::new("db.system.name", "redis"),
        KeyValue::new("db.operation.name", "XADD"),
    ]
}

/// Where send jobs go: the key prefix and the number of shards.
#[derive(Clone)]
pub struct Stream {
    pub keys: Keys,
    pub shards: u16,
}

/// Adds `job` to its shard of the send stream.
pub async fn xadd(redis: &RedisConn, stream: &Stream, job: &SendJob) -> RedisResult<String> {
    let mut conn = redis.clone();
    // With several shards, the message's id picks one (the workers read them all).
    let key = stream
        .keys
        .send_stream_shard(shard_for(job.message_id, stream.shards));
    redis::cmd("XADD")
        .arg(&key)
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_MAX_LEN)
        .arg("*")
        .arg(job.fields())
        .query_async::<String>(&mut conn)
        .await
}
