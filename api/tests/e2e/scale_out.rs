//! Scale-out with the real stack: two API processes and three workers share a 5,000-message load;
//! two workers are stopped mid-run. Every accepted message reaches the sink exactly once, none is
//! left pending, and each worker submitted a share.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use testkit::{TestApp, sink_counts};
use tokio_util::sync::CancellationToken;

const MESSAGES: usize = 5000;

#[tokio::test]
async fn three_workers_two_apis_lose_and_duplicate_nothing() {
    let sink_dir = std::path::PathBuf::from(
        std::env::var("MAILAPI_SINK_DIR")
            .expect("MAILAPI_SINK_DIR (source /etc/mailapi/mailapi.env)"),
    );
    let since = SystemTime::now() - Duration::from_secs(1);
    let limits = [
        ("MAILAPI_RATE_LIMIT_PER_MINUTE", "1000000"),
        ("MAILAPI_RATE_LIMIT_PER_HOUR", "1000000"),
    ];
    let a = Arc::new(TestApp::spawn(&limits).await);
    let b = Arc::new(a.replica_with(&limits).await);
    let domain = format!(
        "scale-{}.test",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    a.domain(&domain, true).await;
    let token = a.admin_token().await;
    let stops: Vec<CancellationToken> = (1..=3)
        .map(|n| a.start_named_worker(&format!("scale-worker-{n}")).stop)
        .collect();

    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..16 {
        let (app, next, token, domain) = (
            if c % 2 == 0 { a.clone() } else { b.clone() },
            next.clone(),
            token.clone(),
            domain.clone(),
        );
        clients.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= MESSAGES {
                    return;
                }
                let body = json!({"from": format!("s@{domain}"), "to": [format!("r{i}@sink-ok.test")],
                                  "subject": format!("scale {i}"), "body": {"text": "scale-out"}});
                let resp = app.post_json("/mail/send", &token, &body).await;
                assert_eq!(resp.status(), 202, "send {i}");
            }
        }));
    }
    // Stop two of the three workers once a third of the load is accepted.
    while next.load(Ordering::SeqCst) < MESSAGES / 3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stops[1].cancel();
    stops[2].cancel();
    for c in clients {
        c.await.unwrap();
    }

    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let left: i64 =
            sqlx::query_scalar("select count(*) from messages where status = 'pending'")
                .fetch_one(&a.db)
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} messages still pending");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut counts = HashMap::new();
    while Instant::now() < deadline {
        counts = sink_counts(&sink_dir, since, &domain);
        if counts.len() >= MESSAGES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stops[0].cancel();
    let dupes: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(
        counts.len(),
        MESSAGES,
        "every accepted message reached the sink"
    );
    assert!(dupes.is_empty(), "sent twice: {dupes:?}");

    let shares: Vec<(String, i64)> = sqlx::query_as(
        "select substring(evidence from '\\(worker ([^)]+)\\)') as worker, count(*)
           from delivery_events where event = 'submitted' group by 1 order by 1",
    )
    .fetch_all(&a.db)
    .await
    .unwrap();
    eprintln!("submissions per worker: {shares:?}");
    assert_eq!(shares.len(), 3, "each worker submitted a share: {shares:?}");
    assert_eq!(shares.iter().map(|(_, n)| n).sum::<i64>(), MESSAGES as i64);
}
