//! Redis frozen while the API is under load: accepting does not depend on Redis. Postgres is
//! the record, so every request is answered 202 at the speed of its commit; the rate limit
//! falls back to the per-process limiter and the stream entries to the workers' reconciler,
//! which re-adds every message once Redis answers again, and each is then submitted once.
//!
//! The Redis here is the test's own (`redis-server` on a free port, never the machine's), and
//! it is frozen with SIGSTOP: its connections stay open and nothing answers, so every command
//! would wait for its full timeout. Seen failing against deliberately broken builds: with the
//! breaker never opening (every command waits out its timeout), all 120 sends waited for the
//! timeout; and the build before this test bounded each command by a fixed 2 s, so each request
//! took 4 s or more (the rate limit's script, then the XADD).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::flows::{self, HIGH_LIMITS};
use testkit::TestApp;
use testkit::free_port;
use testkit::redis::Servers;

/// Requests sent while Redis is frozen, and how many at a time.
const SENDS: usize = 120;
const CONCURRENCY: usize = 12;
/// MAILAPI_REDIS_TIMEOUT_MS for the test's API.
const REDIS_TIMEOUT_MS: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_redis_neither_slows_nor_loses_accepted_mail() {
    let mut servers = Servers::new("outage");
    let port = free_port();
    servers.start(port, &[]).await;
    let url = format!("redis://127.0.0.1:{port}");
    let timeout = REDIS_TIMEOUT_MS.to_string();
    let mut overrides = vec![
        ("MAILAPI_REDIS_URL", url.as_str()),
        ("MAILAPI_REDIS_TIMEOUT_MS", timeout.as_str()),
        // Entries the API could not add are re-added two seconds after acceptance.
        ("MAILAPI_RECONCILE_AFTER_SECS", "2"),
    ];
    overrides.extend(HIGH_LIMITS);
    let app = Arc::new(TestApp::spawn(&overrides).await);
    let (domain, admin) = flows::sender(&app).await;
    flows::send_one(&app, &admin, &domain, 0).await;

    servers.signal(port, "STOP");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    for _ in 0..CONCURRENCY {
        let (app, admin, domain, next) = (app.clone(), admin.clone(), domain.clone(), next.clone());
        tasks.spawn(async move {
            let mut took = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i > SENDS {
                    return took;
                }
                let t = Instant::now();
                flows::send_one(&app, &admin, &domain, i).await;
                took.push(t.elapsed());
            }
        });
    }
    let mut took = Vec::new();
    while let Some(r) = tasks.join_next().await {
        took.extend(r.expect("sender task"));
    }
    let elapsed = started.elapsed();
    let slowest = took.iter().max().copied().unwrap_or_default();
    let waited = took
        .iter()
        .filter(|t| **t >= Duration::from_millis(REDIS_TIMEOUT_MS))
        .count();
    eprintln!(
        "{SENDS} sends with Redis frozen in {elapsed:?}: slowest {slowest:?}, {waited} waited for the Redis timeout"
    );
    // No request waits much past the timeout...
    assert!(
        slowest < Duration::from_millis(4 * REDIS_TIMEOUT_MS + 1000),
        "the slowest of {SENDS} sends took {slowest:?} with Redis frozen"
    );
    // ...and only the first wave (the requests already waiting when the first timeout struck)
    // and one probe a second wait for it at all; the others go on without Redis at once.
    assert!(
        waited <= CONCURRENCY + 6,
        "{waited} of {SENDS} sends waited for the Redis timeout"
    );

    // Every accepted message is stored (no worker runs yet).
    let stored: i64 = sqlx::query_scalar("select count(*) from messages where status = 'pending'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored as usize, SENDS + 1);

    // Redis back: the reconciler re-adds them, and each is submitted once.
    servers.signal(port, "CONT");
    let worker = app.start_named_worker("outage-worker").stop;
    flows::wait_all_submitted(&app, SENDS + 1, Duration::from_secs(90)).await;
    let twice: i64 = sqlx::query_scalar(
        "select count(*) from (select message_id from delivery_events where event = 'submitted'
                               group by message_id having count(*) > 1) d",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(twice, 0, "messages submitted more than once");
    worker.cancel();
}
