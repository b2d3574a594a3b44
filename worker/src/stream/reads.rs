//! The blocking reads behind [`super::SendStream::read`]: one `XREADGROUP ... BLOCK` per shard in
//! flight, each spawned on a pooled connection of its own, their entries queued in the order
//! they arrive. A read that answers after the caller stopped waiting (shutdown, or another
//! shard answered first) is kept for the next call, not lost.

use std::collections::VecDeque;
use std::time::Duration;

use deadpool_redis::redis::{self, streams::StreamReadReply};
use shared::jobs::CONSUMER_GROUP;
use shared::redis::RedisPool;
use tokio::sync::mpsc;

use super::{Entry, entry};
use crate::error::{Error, Result};

/// Blocking reads in flight and what they brought that nobody has taken yet.
pub(super) struct Reads {
    in_flight: Vec<bool>,
    ready: VecDeque<Entry>,
    error: Option<Error>,
    tx: mpsc::UnboundedSender<ShardRead>,
    rx: mpsc::UnboundedReceiver<ShardRead>,
}

struct ShardRead {
    shard: u16,
    result: Result<Vec<Entry>>,
}

impl Reads {
    pub(super) fn new(shards: usize) -> Reads {
        let (tx, rx) = mpsc::unbounded_channel();
        Reads {
            in_flight: vec![false; shards],
            ready: VecDeque::new(),
            error: None,
            tx,
            rx,
        }
    }

    /// Up to `count` entries from `keys` (index = shard), waiting up to about `block`. An error of
    /// one shard is returned once nothing else is ready.
    pub(super) async fn next(
        &mut self,
        pool: &RedisPool,
        keys: &[String],
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Entry>> {
        self.absorb_arrived();
        if self.ready.is_empty() && self.error.is_none() {
            let per_shard = count.div_ceil(keys.len()).max(1);
            for (shard, key) in keys.iter().enumerate() {
                if std::mem::replace(&mut self.in_flight[shard], true) {
                    continue;
                }
                let shard = shard as u16;
                let tx = self.tx.clone();
                let (pool, key, consumer) = (pool.clone(), key.clone(), consumer.to_owned());
                tokio::spawn(async move {
                    let result = read_shard(&pool, &key, &consumer, shard, per_shard, block).await;
                    // The receiver lives as long as the stream; once it is gone nobody reads.
                    let _ = tx.send(ShardRead { shard, result });
                });
            }
            while self.ready.is_empty() && self.error.is_none() && self.in_flight.contains(&true) {
                let Some(read) = self.rx.recv().await else {
                    break;
                };
                self.absorb(read);
                self.absorb_arrived();
            }
        }
        if self.ready.is_empty()
            && let Some(e) = self.error.take()
        {
            return Err(e);
        }
        let take = count.max(1).min(self.ready.len());
        Ok(self.ready.drain(..take).collect())
    }

    fn absorb(&mut self, read: ShardRead) {
        self.in_flight[usize::from(read.shard)] = false;
        match read.result {
            Ok(entries) => self.ready.extend(entries),
            Err(e) => self.error = Some(e),
        }
    }

    fn absorb_arrived(&mut self) {
        while let Ok(read) = self.rx.try_recv() {
            self.absorb(read);
        }
    }
}

/// One blocking `XREADGROUP` on one shard, on a connection of its own.
async fn read_shard(
    pool: &RedisPool,
    key: &str,
    consumer: &str,
    shard: u16,
    count: usize,
    block: Duration,
) -> Result<Vec<Entry>> {
    let mut conn = pool.get().await?;
    let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(CONSUMER_GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(block.as_millis() as u64)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(&mut conn)
        .await
        .map_err(Error::redis(format!("XREADGROUP {key}")))?;
    Ok(reply
        .map(|r| {
            r.keys
                .into_iter()
                .flat_map(|k| k.ids)
                .map(|id| entry(shard, id))
                .collect()
        })
        .unwrap_or_default())
}
