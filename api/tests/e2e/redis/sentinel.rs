//! The API and two workers on a Sentinel-watched master (one replica, three sentinels, started
//! by the test) while `SENTINEL FAILOVER` moves the master mid-run: every accepted message is
//! submitted (the reconciler covers entries written to the old master and lost when it became
//! a replica), and afterwards the API writes to the new master, the rate limit counts there
//! and a revoked token is refused. Needs redis-server (`deploy/infra-up.sh`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::flows::{self, HIGH_LIMITS};
use deadpool_redis::redis;
use testkit::TestApp;
use testkit::redis::sentinel::SentinelSet;
use testkit::redis::{node, wait_for};

const MESSAGES: usize = 150;

#[tokio::test]
async fn a_failover_mid_run_loses_nothing_and_is_followed() {
    let set = SentinelSet::start().await;
    let url = set.url();
    let mut overrides = vec![
        ("MAILAPI_REDIS_URL", url.as_str()),
        // A wake-up lost with the old master is re-added two seconds after it was due.
        ("MAILAPI_RECONCILE_AFTER_SECS", "2"),
    ];
    overrides.extend(HIGH_LIMITS);
    let app = Arc::new(TestApp::spawn(&overrides).await);
    let (domain, admin) = flows::sender(&app).await;
    let stops = [
        app.start_named_worker("sentinel-worker-1").stop,
        app.start_named_worker("sentinel-worker-2").stop,
    ];

    let sent = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (app, admin, domain, sent) = (app.clone(), admin.clone(), domain.clone(), sent.clone());
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                flows::send_one(&app, &admin, &domain, i).await;
                sent.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    wait_for("a third of the sends", Duration::from_secs(60), || {
        let sent = sent.clone();
        async move { sent.load(Ordering::SeqCst) >= MESSAGES / 3 }
    })
    .await;
    assert_eq!(set.current_master().await, Some(set.master));
    set.failover().await;
    wait_for(
        "the sentinels to name the replica as master",
        Duration::from_secs(30),
        || async { set.current_master().await == Some(set.replica) },
    )
    .await;
    // The API follows at once (the sentinels announce the switch), not only once the old
    // master, which still takes writes, is demoted: entries land on the new master.
    let key = shared::jobs::Keys::new(&app.prefix).send_stream();
    let mut extra = 0;
    wait_for(
        "an entry accepted after the switch on the new master",
        Duration::from_secs(5),
        || {
            extra += 1;
            let (app, admin, domain, key) =
                (app.clone(), admin.clone(), domain.clone(), key.clone());
            let replica = set.replica;
            async move {
                let id = flows::send_one(&app, &admin, &domain, MESSAGES + extra).await;
                entry_on(replica, &key, &id).await
            }
        },
    )
    .await;
    sender.await.unwrap();
    flows::wait_all_submitted(&app, MESSAGES + extra, Duration::from_secs(120)).await;

    // Sentinel demotes the old master a few seconds later (and closes its clients then).
    wait_for(
        "the old master to become a replica",
        Duration::from_secs(60),
        || async {
            let Ok(mut conn) = node(set.master).await else {
                return false;
            };
            redis::cmd("ROLE")
                .query_async::<redis::Role>(&mut conn)
                .await
                .is_ok_and(|r| matches!(r, redis::Role::Replica { .. }))
        },
    )
    .await;

    // A message accepted now has its entry on the new master before the 202 (the reconciler,
    // which would also add it, waits two seconds), and it is submitted.
    let id = flows::send_one(&app, &admin, &domain, 0).await;
    assert!(
        entry_on(set.replica, &key, &id).await,
        "the API wrote the entry of {id} to the new master"
    );
    flows::wait_all_submitted(&app, MESSAGES + extra + 1, Duration::from_secs(60)).await;

    // The API that lived through the failover counts requests in Redis again (its fallback,
    // while Redis is unreachable, reports nothing remaining).
    flows::limiter_counts_in_redis(&app, &admin).await;
    flows::rate_limit_counts_in_redis(&app, 10).await;
    flows::revoked_token_is_refused(&app, &admin).await;
    let ready = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    for stop in stops {
        stop.cancel();
    }
}

/// Whether the newest entries of `key` on the node at `port` include message `id`'s.
async fn entry_on(port: u16, key: &str, id: &str) -> bool {
    let Ok(mut conn) = node(port).await else {
        return false;
    };
    let newest: redis::RedisResult<redis::streams::StreamRangeReply> = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(50)
        .query_async(&mut conn)
        .await;
    newest.is_ok_and(|r| {
        r.ids
            .iter()
            .any(|e| e.get::<String>(shared::jobs::FIELD_MESSAGE_ID).as_deref() == Some(id))
    })
}
