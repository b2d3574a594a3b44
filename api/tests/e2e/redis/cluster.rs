//! The API and two workers on a three-master Redis Cluster started by the test, with the send
//! stream in three shards: entries spread over the three keys (three slots), every accepted
//! message is submitted, both workers take a share, the stream gauges carry the shard, the
//! rate limit counts in the Cluster, and a revoked token is refused. Needs redis-server and
//! redis-cli (`deploy/infra-up.sh`) besides the usual stack.

use std::collections::HashMap;
use std::time::Duration;

use super::flows::{self, HIGH_LIMITS};
use deadpool_redis::redis;
use shared::redis::{RedisConn, Topology};
use testkit::TestApp;
use testkit::free_port;
use testkit::redis::cluster::Cluster;
use testkit::redis::wait_for;

const MESSAGES: usize = 90;
const SENDERS: usize = 6;

#[tokio::test]
async fn cluster_with_three_shards_spreads_and_submits_everything() {
    let cluster = Cluster::start().await;
    let url = cluster.url();
    let mut overrides = vec![
        ("MAILAPI_REDIS_URL", url.as_str()),
        ("MAILAPI_SEND_STREAM_SHARDS", "3"),
    ];
    overrides.extend(HIGH_LIMITS);
    let app = std::sync::Arc::new(TestApp::spawn(&overrides).await);
    let (domain, admin) = flows::sender(&app).await;

    let metrics_addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let mut first = app.settings.clone();
    first.worker.consumer_name = "cluster-worker-1".into();
    first.worker.metrics_listen = Some(metrics_addr);
    let stops = [
        testkit::Worker::start(first).stop,
        app.start_named_worker("cluster-worker-2").stop,
    ];

    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (app, admin, domain) = (app.clone(), admin.clone(), domain.clone());
        senders.push(tokio::spawn(async move {
            for i in (s..MESSAGES).step_by(SENDERS) {
                flows::send_one(&app, &admin, &domain, i).await;
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    flows::wait_all_submitted(&app, MESSAGES, Duration::from_secs(120)).await;

    // Every shard key got entries, and the three keys hash to three different slots.
    let mut conn = RedisConn::connect(&Topology::parse(&url).unwrap(), Duration::from_secs(2))
        .await
        .expect("connect to the test Cluster");
    let keys = shared::jobs::Keys::new(&app.prefix);
    let mut lengths = Vec::new();
    let mut slots = Vec::new();
    for shard in 0..3 {
        let key = keys.send_stream_shard(shard);
        let len: usize = redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        lengths.push(len);
        slots.push(slot);
    }
    assert!(
        lengths.iter().all(|&n| n > 0),
        "entries per shard {lengths:?}"
    );
    assert!(lengths.iter().sum::<usize>() >= MESSAGES, "{lengths:?}");
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), 3, "the shards share a slot");

    let shares = flows::submissions_per_worker(&app).await;
    assert_eq!(shares.len(), 2, "both workers submitted: {shares:?}");
    assert_eq!(shares.iter().map(|(_, n)| n).sum::<i64>(), MESSAGES as i64);

    // The gauges report each shard; once every outcome is acknowledged nothing is pending.
    let http = reqwest::Client::new();
    let metrics_url = format!("http://{metrics_addr}/metrics");
    wait_for(
        "per-shard stream gauges with nothing pending",
        Duration::from_secs(30),
        || {
            let (http, metrics_url) = (http.clone(), metrics_url.clone());
            async move {
                let Ok(resp) = http.get(&metrics_url).send().await else {
                    return false;
                };
                let text = resp.text().await.unwrap_or_default();
                let gauges = gauges(&text);
                (0..3).all(|shard| {
                    let length = gauges.get(&("mailapi_stream_length".into(), shard));
                    let pending = gauges.get(&("mailapi_stream_pending_entries".into(), shard));
                    length.is_some_and(|n| *n > 0.0) && pending == Some(&0.0)
                })
            }
        },
    )
    .await;

    flows::rate_limit_counts_in_redis(&app, 10).await;
    flows::revoked_token_is_refused(&app, &admin).await;
    for stop in stops {
        stop.cancel();
    }
}

/// `name{shard="i"} value` lines of the stream gauges, by name and shard.
fn gauges(text: &str) -> HashMap<(String, u16), f64> {
    text.lines()
        .filter(|l| l.starts_with("mailapi_stream_"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = series.split_once('{')?;
            let shard = labels.split("shard=\"").nth(1)?.split('"').next()?;
            Some(((name.to_owned(), shard.parse().ok()?), value.parse().ok()?))
        })
        .collect()
}
