//! Changing `MAILAPI_SEND_STREAM_SHARDS` loses nothing (local Redis and Postfix from
//! `deploy/infra-up.sh`). Lowered: entries left on shards the workers no longer read are
//! recovered by the reconciler, which re-adds their messages to a live shard. Raised: shard 0
//! is the unsharded key, so what was queued before is still read.

use std::time::Duration;

use super::flows;
use deadpool_redis::redis;
use testkit::TestApp;

const MESSAGES: usize = 30;

async fn stream_lengths(app: &TestApp, shards: u16) -> Vec<u64> {
    let client = redis::Client::open(testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = shared::jobs::Keys::new(&app.prefix);
    let mut lengths = Vec::new();
    for shard in 0..shards {
        let len: u64 = redis::cmd("XLEN")
            .arg(keys.send_stream_shard(shard))
            .query_async(&mut conn)
            .await
            .unwrap();
        lengths.push(len);
    }
    lengths
}

/// Accepts `MESSAGES` with the API on `api_shards`, then lets one worker on `worker_shards`
/// (reconciling after two seconds) submit them all.
async fn accept_then_submit(api_shards: &str, worker_shards: u16) -> Vec<u64> {
    let mut overrides = vec![("MAILAPI_SEND_STREAM_SHARDS", api_shards)];
    overrides.extend(flows::HIGH_LIMITS);
    let app = TestApp::spawn(&overrides).await;
    let (domain, admin) = flows::sender(&app).await;
    for i in 0..MESSAGES {
        flows::send_one(&app, &admin, &domain, i).await;
    }
    let lengths = stream_lengths(&app, 3).await;

    let mut settings = app.settings.clone();
    settings.send_stream_shards = worker_shards;
    settings.worker.consumer_name = "resharded-worker".into();
    settings.worker.metrics_listen = None;
    settings.worker.reconcile_after = Duration::from_secs(2);
    let stop = testkit::Worker::start(settings).stop;
    flows::wait_all_submitted(&app, MESSAGES, Duration::from_secs(90)).await;
    stop.cancel();
    lengths
}

#[tokio::test]
async fn lowering_the_shard_count_loses_nothing() {
    let lengths = accept_then_submit("3", 1).await;
    assert!(
        lengths[1] + lengths[2] > 0,
        "some entries sat on shards the worker does not read: {lengths:?}"
    );
}

#[tokio::test]
async fn raising_the_shard_count_reads_what_was_queued() {
    let lengths = accept_then_submit("1", 3).await;
    assert_eq!(lengths, [MESSAGES as u64, 0, 0]);
}
