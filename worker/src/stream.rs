//! The send stream as the worker sees it: one consumer group, entries read with
//! `XREADGROUP`, acknowledged with `XACK` only after their outcome is committed, and entries of
//! dead consumers taken over with `XAUTOCLAIM`.

use std::time::Duration;

use deadpool_redis::redis::{self, streams::StreamAutoClaimReply, streams::StreamReadReply};
use shared::jobs::{CONSUMER_GROUP, FIELD_MESSAGE_ID, FIELD_TRACEPARENT, STREAM_MAX_LEN, SendJob};

/// One stream entry. `job` is `None` for an entry we cannot read (it is acknowledged and
/// dropped: Postgres, not the stream, holds the message).
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub job: Option<SendJob>,
}

#[derive(Clone)]
pub struct SendStream {
    pool: deadpool_redis::Pool,
    key: String,
    consumer: String,
}

fn entry(id: redis::streams::StreamId) -> Entry {
    let message_id = id
        .get::<String>(FIELD_MESSAGE_ID)
        .and_then(|s| uuid::Uuid::parse_str(&s).ok());
    let job = message_id.map(|message_id| SendJob {
        message_id,
        traceparent: id.get::<String>(FIELD_TRACEPARENT),
    });
    Entry { id: id.id, job }
}

impl SendStream {
    pub fn new(pool: deadpool_redis::Pool, key: String, consumer: String) -> Self {
        Self {
            pool,
            key,
            consumer,
        }
    }

    async fn conn(&self) -> anyhow::Result<deadpool_redis::Connection> {
        Ok(self.pool.get().await?)
    }

    /// Creates the stream and the group if missing. Starting at `0` means entries added before
    /// any worker existed are read too.
    pub async fn ensure_group(&self) -> anyhow::Result<()> {
        let mut conn = self.conn().await?;
        let result: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(CONSUMER_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match result {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// New entries for this consumer, waiting up to `block` for some to arrive.
    pub async fn read(&self, count: usize, block: Duration) -> anyhow::Result<Vec<Entry>> {
        let mut conn = self.conn().await?;
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(CONSUMER_GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        Ok(reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).map(entry).collect())
            .unwrap_or_default())
    }

    /// Takes over entries other consumers have held longer than `min_idle` without
    /// acknowledging them (their worker died or hangs).
    pub async fn autoclaim(&self, min_idle: Duration, count: usize) -> anyhow::Result<Vec<Entry>> {
        let mut conn = self.conn().await?;
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(CONSUMER_GROUP)
            .arg(&self.consumer)
            .arg(min_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        Ok(reply.claimed.into_iter().map(entry).collect())
    }

    pub async fn ack(&self, ids: &[String]) -> anyhow::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let _: i64 = redis::cmd("XACK")
            .arg(&self.key)
            .arg(CONSUMER_GROUP)
            .arg(ids)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Adds jobs (the reconciler's re-enqueue), pipelined.
    pub async fn add(&self, jobs: &[SendJob]) -> anyhow::Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        for job in jobs {
            pipe.cmd("XADD")
                .arg(&self.key)
                .arg("MAXLEN")
                .arg("~")
                .arg(STREAM_MAX_LEN)
                .arg("*")
                .arg(job.fields())
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await?;
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
        entry(redis::streams::StreamId {
            id: "1-0".to_owned(),
            map,
            ..Default::default()
        })
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
