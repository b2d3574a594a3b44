//! The sharded send stream against the local Redis (`deploy/infra-up.sh`), each test under a key
//! prefix of its own: no shard is starved by a busy one, entries are acknowledged and reclaimed on
//! their own shard, and re-added jobs go to their message's shard.

use std::time::Duration;

use deadpool_redis::redis;
use shared::jobs::{CONSUMER_GROUP, FIELD_MESSAGE_ID, Keys, SendJob, shard_for};
use shared::redis::{PooledConnection, RedisPool, Topology};
use worker::stream::{Entry, SendStream};

const BLOCK: Duration = Duration::from_millis(100);

struct Setup {
    pool: RedisPool,
    keys: Keys,
}

async fn setup() -> Setup {
    let url = testkit::redis_url();
    let pool = RedisPool::new(&Topology::parse(&url).expect("MAILAPI_REDIS_URL"), 16).unwrap();
    if let Err(e) = pool.get().await {
        panic!("cannot reach Redis at MAILAPI_REDIS_URL ({e}); start it with `deploy/infra-up.sh`");
    }
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    Setup {
        pool,
        keys: Keys::new(&prefix),
    }
}

impl Setup {
    fn stream(&self, shards: u16, consumer: &str) -> SendStream {
        SendStream::new(self.pool.clone(), &self.keys, shards, consumer.to_owned())
    }

    async fn conn(&self) -> PooledConnection {
        self.pool.get().await.unwrap()
    }

    /// Adds `n` entries straight to shard `shard`'s key.
    async fn add_to(&self, shard: u16, n: usize) {
        let mut conn = self.conn().await;
        for _ in 0..n {
            let _: String = redis::cmd("XADD")
                .arg(self.keys.send_stream_shard(shard))
                .arg("*")
                .arg(FIELD_MESSAGE_ID)
                .arg(uuid::Uuid::now_v7().to_string())
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    async fn pending(&self, shard: u16) -> u64 {
        let (count, ..): (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
            .arg(self.keys.send_stream_shard(shard))
            .arg(CONSUMER_GROUP)
            .query_async(&mut self.conn().await)
            .await
            .unwrap();
        count
    }

    async fn len(&self, shard: u16) -> u64 {
        redis::cmd("XLEN")
            .arg(self.keys.send_stream_shard(shard))
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }
}

fn ids(entries: &[Entry]) -> Vec<worker::stream::EntryId> {
    entries.iter().map(|e| e.id.clone()).collect()
}

#[tokio::test]
async fn a_busy_shard_starves_no_other_and_acks_land_on_their_shard() {
    let s = setup().await;
    let stream = s.stream(3, "w1");
    stream.ensure_group().await.unwrap();
    s.add_to(0, 300).await;
    s.add_to(2, 3).await;

    let mut read = Vec::new();
    let mut calls = 0;
    while read.iter().filter(|e: &&Entry| e.id.shard == 2).count() < 3 {
        calls += 1;
        assert!(
            calls <= 3,
            "shard 2 still waits after {calls} reads: {read:?}"
        );
        let entries = stream.read(10, BLOCK).await.unwrap();
        assert!(entries.len() <= 10);
        read.extend(entries);
    }
    assert!(read.iter().all(|e| e.job.is_some()), "{read:?}");

    // Drain the rest, acknowledging as we go: each entry on its own shard.
    stream.ack(&ids(&read)).await.unwrap();
    let mut total = read.len();
    loop {
        let entries = stream.read(50, BLOCK).await.unwrap();
        if entries.is_empty() {
            break;
        }
        total += entries.len();
        stream.ack(&ids(&entries)).await.unwrap();
    }
    assert_eq!(total, 303);
    for shard in 0..3 {
        assert_eq!(s.pending(shard).await, 0, "shard {shard}");
    }
}

#[tokio::test]
async fn entries_of_a_dead_consumer_are_reclaimed_from_every_shard() {
    let s = setup().await;
    let dead = s.stream(3, "dead");
    dead.ensure_group().await.unwrap();
    for shard in 0..3 {
        s.add_to(shard, 2).await;
    }
    let mut held = Vec::new();
    while held.len() < 6 {
        let entries = dead.read(6, BLOCK).await.unwrap();
        assert!(!entries.is_empty(), "entries went missing: {held:?}");
        held.extend(entries);
    }

    let alive = s.stream(3, "alive");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut claimed = alive
        .autoclaim(Duration::from_millis(10), 10)
        .await
        .unwrap();
    claimed.sort_by(|a, b| (a.id.shard, &a.id.id).cmp(&(b.id.shard, &b.id.id)));
    held.sort_by(|a, b| (a.id.shard, &a.id.id).cmp(&(b.id.shard, &b.id.id)));
    assert_eq!(ids(&claimed), ids(&held));
    alive.ack(&ids(&claimed)).await.unwrap();
    for shard in 0..3 {
        assert_eq!(s.pending(shard).await, 0, "shard {shard}");
    }
}

#[tokio::test]
async fn re_added_jobs_go_to_their_messages_shard() {
    let s = setup().await;
    let stream = s.stream(3, "w1");
    let jobs: Vec<SendJob> = (0..60)
        .map(|_| SendJob {
            message_id: uuid::Uuid::now_v7(),
            traceparent: None,
        })
        .collect();
    stream.add(&jobs).await.unwrap();
    for shard in 0..3 {
        let expected = jobs
            .iter()
            .filter(|j| shard_for(j.message_id, 3) == shard)
            .count() as u64;
        assert!(expected > 0);
        assert_eq!(s.len(shard).await, expected, "shard {shard}");
    }
    // One shard: everything on today's key.
    let single = Setup {
        pool: s.pool.clone(),
        keys: Keys::new(&format!("test-{}", uuid::Uuid::new_v4().simple())),
    };
    single.stream(1, "w1").add(&jobs).await.unwrap();
    assert_eq!(single.len(0).await, 60);
    assert_eq!(single.keys.send_stream_shard(0), single.keys.send_stream());
}
