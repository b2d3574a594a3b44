//! A worker SIGKILLed while webhooks are in flight loses no event.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use testkit::{Proc, worker_command};

use super::{
    RECIPIENTS, assert_seq_order, endpoint_with_receiver, event_ids, events_in_postgres, send,
    setup,
};
use crate::WORKER_BIN;

/// Several SIGKILLs of a worker while deliveries are pending: the receiver ends with exactly
/// the events in Postgres. Repeats come only from requests whose answer the worker had not
/// recorded when it died: in flight, or answered in the last few tens of milliseconds (the
/// recorder writes in batches). They are counted, and bounded per kill by what one worker can
/// have sent and not recorded: its 8 slots for the endpoint and the 8 requests claimed ahead.
#[tokio::test]
async fn sigkilled_workers_lose_no_event() {
    const MESSAGES: usize = 100;
    const KILLS: usize = 4;
    let (app, admin) = setup(&[]).await;
    // The receiver answers after 100 ms, so requests are in flight at every kill.
    let (_, receiver) = endpoint_with_receiver(&app, &admin, "slow=0.1", json!({})).await;
    for i in 0..MESSAGES {
        send(&app, &admin, i).await;
    }
    let spawn = |n: usize| {
        Proc(
            worker_command(Path::new(WORKER_BIN), &format!("hooks-{n}"), 3)
                .env("MAILAPI_DATABASE_URL", &app.database_url)
                .env("MAILAPI_KEY_PREFIX", &app.prefix)
                .env("MAILAPI_WEBHOOK_TIMEOUT_SECS", "2")
                .env("MAILAPI_WEBHOOK_CONCURRENCY", "8")
                .env("MAILAPI_WORKER_METRICS_LISTEN", "off")
                .spawn()
                .expect("start mailapi-worker"),
        )
    };
    for n in 0..KILLS {
        let mut worker = spawn(n);
        tokio::time::sleep(Duration::from_millis(700 + 200 * n as u64)).await;
        worker.kill();
    }
    let expected = MESSAGES * (1 + RECIPIENTS);
    let _last = spawn(KILLS);
    let got = receiver
        .wait_for(Duration::from_secs(90), "every event", |r| {
            event_ids(r).iter().collect::<HashSet<_>>().len() >= expected
        })
        .await;
    // Let anything still in flight land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = if receiver.received().len() > got.len() {
        receiver.received()
    } else {
        got
    };
    assert!(got.iter().all(|r| r.verified));
    let ids = event_ids(&got);
    let unique: HashSet<i64> = ids.iter().copied().collect();
    let in_pg: HashSet<i64> = events_in_postgres(&app)
        .await
        .values()
        .flatten()
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(
        unique, in_pg,
        "lost = 0: the receiver has every event in Postgres"
    );
    let repeats = ids.len() - unique.len();
    println!("{} events, {KILLS} kills, {repeats} repeats", unique.len());
    assert!(
        repeats <= KILLS * 16,
        "repeats ({repeats}) only from requests sent and not yet recorded at a kill (at most 16 each)"
    );
    assert_seq_order(&got);
    let pending: i64 =
        sqlx::query_scalar("select count(*) from webhook_deliveries where state <> 'delivered'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(pending, 0);
}
