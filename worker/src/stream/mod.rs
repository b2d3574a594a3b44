//! The send stream as the worker sees it: one consumer group on each shard key, entries read
//! with `XREADGROUP`, acknowledged with `XACK` on their own shard only after their outcome is
//! committed, and entries of dead consumers taken over with `XAUTOCLAIM`.
//!
//! With `MAILAPI_SEND_STREAM_SHARDS` = N the stream is N keys (`Keys::send_stream_shard`), each
//! in its own Cluster slot, and every worker reads all of them. Keys in different slots cannot
//! be read by one `XREADGROUP`, so [`SendStream::read`] keeps one blocking read per shard in
//! flight, each on its own pooled connection, and hands out what they bring in the order it
//! arrived: every shard gets one read per round, so none is starved. A read that answers after
//! the caller stopped waiting is kept for the next call, not lost.
//!
//! Shards above N (after N was lowered) are not read: their entries' messages stay `pending` in
//! Postgres and the reconciler puts them on a live shard after `MAILAPI_RECONCILE_AFTER_SECS`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use deadpool_redis::redis::{self, streams::StreamAutoClaimReply};
use shared::jobs::{
    CONSUMER_GROUP, FIELD_MESSAGE_ID, FIELD_TRACEPARENT, Keys, STREAM_MAX_LEN, SendJob, shard_for,
};
use shared::redis::RedisPool;
use tokio::sync::Mutex;

use self::reads::Reads;

use crate::context::WorkerContext;
use crate::error::{Error, Result};

mod reads;

/// Where an entry lives: its shard and its id there. Acknowledge it with [`SendStream::ack`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryId {
    pub shard: u16,
    pub id: String,
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.shard, self.id)
    }
}

/// One stream entry. `job` is `None` for an entry we cannot read (it is acknowledged and
/// dropped: Postgres, not the stream, holds the message).
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: EntryId,
    pub job: Option<SendJob>,
}

pub(crate) fn entry(shard: u16, id: redis::streams::StreamId) -> Entry {
    let message_id = id
        .get::<String>(FIELD_MESSAGE_ID)
        .and_then(|s| uuid::Uuid::parse_str(&s).ok());
    let job = message_id.map(|message_id| SendJob {
        message_id,
        traceparent: id.get::<String>(FIELD_TRACEPARENT),
    });
    Entry {
        id: EntryId { shard, id: id.id },
        job,
    }
}

/// Cheap to clone; clones share the reads in flight.
#[derive(Clone)]
pub struct SendStream {
    inner: Arc<Inner>,
}

struct Inner {
    pool: RedisPool,
    /// The shard keys read; index = shard.
    keys: Vec<String>,
    names: Keys,
    consumer: String,
    reads: Mutex<Reads>,
    /// The shard `autoclaim` starts at; it moves on every call so each shard goes first in turn.
    next_autoclaim: AtomicUsize,
}

impl SendStream {
    /// The stream of `keys` with `shards` shards, read as `consumer`.
    pub fn new(pool: RedisPool, names: &Keys, shards: u16, consumer: String) -> Self {
        let keys: Vec<String> = (0..shards.max(1))
            .map(|s| names.send_stream_shard(s))
            .collect();
        let reads = Reads::new(keys.len());
        Self {
            inner: Arc::new(Inner {
                pool,
                keys,
                names: names.clone(),
                consumer,
                reads: Mutex::new(reads),
                next_autoclaim: AtomicUsize::new(0),
            }),
        }
    }

    /// The stream as this worker's settings describe it.
    pub fn for_worker(ctx: &WorkerContext) -> Self {
        Self::new(
            ctx.redis.clone(),
            &ctx.keys,
            ctx.settings.send_stream_shards,
            ctx.settings.worker.consumer_name.clone(),
        )
    }

    fn shards(&self) -> impl Iterator<Item = (u16, &str)> {
        self.inner
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (i as u16, k.as_str()))
    }

    /// Creates each shard's stream and group if missing. Starting at `0` means entries added
    /// before any worker existed are read too.
    pub async fn ensure_group(&self) -> Result<()> {
        let mut conn = self.inner.pool.get().await?;
        for (_, key) in self.shards() {
            let result: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(key)
                .arg(CONSUMER_GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match result {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => {
                    return Err(Error::redis(format!("XGROUP CREATE {key}"))(e));
                }
            }
        }
        Ok(())
    }

    /// New entries for this consumer (up to `count`), waiting up to about `block` for some to
    /// arrive on any shard. An error of one shard is returned once nothing else is ready.
    pub async fn read(&self, count: usize, block: Duration) -> Result<Vec<Entry>> {
        let inner = &*self.inner;
        let mut reads = inner.reads.lock().await;
        reads
            .next(&inner.pool, &inner.keys, &inner.consumer, count, block)
            .await
    }

    /// Takes over entries other consumers have held longer than `min_idle` without
    /// acknowledging them (their worker died or hangs), up to `count` over all shards.
    pub async fn autoclaim(&self, min_idle: Duration, count: usize) -> Result<Vec<Entry>> {
        let n = self.inner.keys.len();
        let first = self.inner.next_autoclaim.fetch_add(1, Ordering::Relaxed) % n;
        let mut conn = self.inner.pool.get().await?;
        let mut claimed = Vec::new();
        let mut failure = None;
        for i in 0..n {
            if claimed.len() >= count {
                break;
            }
            let shard = ((first + i) % n) as u16;
            let key = &self.inner.keys[usize::from(shard)];
            let reply: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
                .arg(key)
                .arg(CONSUMER_GROUP)
                .arg(&self.inner.consumer)
                .arg(min_idle.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(count - claimed.len())
                .query_async(&mut conn)
                .await;
            match reply {
                Ok(reply) => claimed.extend(reply.claimed.into_iter().map(|id| entry(shard, id))),
                Err(e) => failure = Some(Error::redis(format!("XAUTOCLAIM {key}"))(e)),
            }
        }
        match failure {
            Some(e) if claimed.is_empty() => Err(e),
            _ => Ok(claimed),
        }
    }

    /// Acknowledges entries, each on its own shard.
    pub async fn ack(&self, ids: &[EntryId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut by_shard: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
        for id in ids {
            by_shard.entry(id.shard).or_default().push(&id.id);
        }
        let mut conn = self.inner.pool.get().await?;
        let mut acked = 0;
        for (shard, ids) in by_shard {
            let key = self.inner.names.send_stream_shard(shard);
            let n: i64 = redis::cmd("XACK")
                .arg(&key)
                .arg(CONSUMER_GROUP)
                .arg(ids)
                .query_async(&mut conn)
                .await
                .map_err(Error::redis(format!("XACK {key}")))?;
            acked += n;
        }
        // The drain rate the API sheds load by. XACK counts only entries that were pending, so
        // a repeated acknowledgement (a retried batch) is not counted twice. Best effort: a lost
        // increment makes one sample of the rate a little low, nothing more.
        if acked > 0 {
            let key = self.inner.names.drained();
            if let Err(e) = redis::cmd("INCRBY")
                .arg(&key)
                .arg(acked)
                .query_async::<i64>(&mut conn)
                .await
            {
                tracing::debug!(error = %e, "could not count drained entries");
            }
        }
        Ok(())
    }

    /// Adds jobs (the reconciler's re-enqueue), each on its message's shard, pipelined per
    /// shard (one pipeline must stay within one Cluster slot).
    pub async fn add(&self, jobs: &[SendJob]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let shards = self.inner.keys.len() as u16;
        let mut by_shard: BTreeMap<u16, Vec<&SendJob>> = BTreeMap::new();
        for job in jobs {
            by_shard
                .entry(shard_for(job.message_id, shards))
                .or_default()
                .push(job);
        }
        let mut conn = self.inner.pool.get().await?;
        for (shard, jobs) in by_shard {
            let key = &self.inner.keys[usize::from(shard)];
            let mut pipe = redis::pipe();
            for job in jobs {
                pipe.cmd("XADD")
                    .arg(key)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(STREAM_MAX_LEN)
                    .arg("*")
                    .arg(job.fields())
                    .ignore();
            }
            let _: () = pipe
                .query_async(&mut conn)
                .await
                .map_err(Error::redis(format!("XADD {key}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `XREADGROUP` hands back for an entry `XADD` wrote with `job.fields()`.
    fn written_and_read(job: &SendJob) -> Entry {
        let map = job
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), redis::Value::BulkString(v.into_bytes())))
            .collect();
        entry(
            0,
            redis::streams::StreamId {
                id: "1-0".to_owned(),
                map,
                ..Default::default()
            },
        )
    }

    #[test]
    fn the_traceparent_travels_in_the_entry() {
        let job = SendJob {
            message_id: uuid::Uuid::now_v7(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        };
        assert_eq!(written_and_read(&job).job, Some(job));
    }

    #[test]
    fn without_tracing_the_entry_has_no_traceparent() {
        let job = SendJob {
            message_id: uuid::Uuid::now_v7(),
            traceparent: None,
        };
        assert!(job.fields().iter().all(|(k, _)| *k != FIELD_TRACEPARENT));
        assert_eq!(written_and_read(&job).job, Some(job));
    }
}
