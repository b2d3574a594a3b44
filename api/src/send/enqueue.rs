//! The stream entry that wakes a worker. It is only a hint: if this `XADD` fails after the
//! commit, the message is still stored as `pending` and the workers' reconciler adds it again
//! once `MAILAPI_RECONCILE_AFTER_SECS` have passed, so the client's 202 stays true.

use deadpool_redis::redis;
use shared::jobs::{STREAM_MAX_LEN, SendJob};

use crate::state::AppState;

pub async fn enqueue(state: &AppState, job: &SendJob) {
    let mut conn = state.redis.clone();
    let stream = state.keys.send_stream();
    let result: redis::RedisResult<String> = redis::cmd("XADD")
        .arg(&stream)
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_MAX_LEN)
        .arg("*")
        .arg(job.fields())
        .query_async(&mut conn)
        .await;
    if let Err(e) = result {
        tracing::warn!(message_id = %job.message_id, error = %e,
            "could not add the send job to the stream; the reconciler will re-add it");
    }
}
