//! Crash safety with the real stack: 1,000 messages while the worker process is killed with
//! SIGKILL several times and restarted. Every message must reach the accept-all sink exactly
//! once and none may be left pending. Needs `deploy/infra-up.sh` (Postfix submission on 587,
//! the sink on 2525 writing one file per message into MAILAPI_SINK_DIR).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use testkit::{Proc, env, fresh_database, sink_counts, worker_command};

use crate::WORKER_BIN;

const MESSAGES: usize = 1000;

/// A worker process, killed (SIGKILL) when dropped so that a failing test leaves none behind.
fn spawn_worker(db_url: &str, prefix: &str, n: u32) -> Proc {
    Proc(
        worker_command(Path::new(WORKER_BIN), &format!("crash-worker-{n}"), 8)
            .env("MAILAPI_DATABASE_URL", db_url)
            .env("MAILAPI_KEY_PREFIX", prefix)
            .spawn()
            .expect("start mailapi-worker"),
    )
}

#[tokio::test]
async fn sigkilled_workers_lose_nothing_and_send_nothing_twice() {
    shared::install_crypto_provider();
    let sink_dir = std::path::PathBuf::from(env("MAILAPI_SINK_DIR"));
    let (db_url, db) = fresh_database().await;
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let domain = format!(
        "crash-{}.test",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let since = SystemTime::now() - Duration::from_secs(1);

    sqlx::query("insert into domains (domain, active) values ($1, true)")
        .bind(&domain)
        .execute(&db)
        .await
        .unwrap();
    // Stored as the API stores them; `enqueued_at` null, so the reconciler puts them on the
    // stream (the path a lost XADD takes).
    for i in 0..MESSAGES {
        let id = uuid::Uuid::now_v7();
        let msg = shared::outgoing::OutgoingMessage {
            from: shared::address::NamedAddress {
                name: None,
                email: shared::address::EmailAddress::parse(&format!("s@{domain}")).unwrap(),
            },
            to: vec![shared::address::NamedAddress {
                name: None,
                email: shared::address::EmailAddress::parse(&format!("r{i}@sink-ok.test")).unwrap(),
            }],
            cc: vec![],
            bcc: vec![],
            reply_to: None,
            subject: format!("crash {i}"),
            text: Some("x".repeat(500)),
            html: None,
            headers: vec![],
            attachments: vec![],
        };
        sqlx::query(
            "with m as (insert into messages (id, from_email, from_domain, subject, rfc_message_id, payload, size_bytes)
                        values ($1, $2, $3, $4, $5, $6, 600) returning id)
             insert into recipients (message_id, email, domain, kind) select id, $7, 'sink-ok.test', 'to' from m",
        )
        .bind(id)
        .bind(&msg.from.email)
        .bind(&domain)
        .bind(&msg.subject)
        .bind(shared::outgoing::rfc_message_id(id, &domain))
        .bind(serde_json::to_value(&msg).unwrap())
        .bind(&msg.to[0].email)
        .execute(&db)
        .await
        .unwrap();
    }

    let mut worker = spawn_worker(&db_url, &prefix, 0);
    for kill in 1..=4u32 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        worker.kill();
        worker = spawn_worker(&db_url, &prefix, kill);
    }

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left: i64 =
            sqlx::query_scalar("select count(*) from messages where status = 'pending'")
                .fetch_one(&db)
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} messages still pending");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let failed: i64 = sqlx::query_scalar("select count(*) from messages where status = 'failed'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        failed, 0,
        "no message may fail on the way to an accept-all sink"
    );

    // Postfix delivers to the sink on its own schedule: wait until all arrived.
    let mut counts = HashMap::new();
    while Instant::now() < deadline {
        counts = sink_counts(&sink_dir, since, &domain);
        if counts.len() >= MESSAGES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The follower records every delivery; then each message must have followed its only
    // recipient to `sent`, whatever order the kills left the worker's and the follower's
    // commits in (docs/DELIVERY.md, "Message status").
    loop {
        let open: i64 = sqlx::query_scalar(
            "select count(*) from recipients where status in ('pending', 'deferred')",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} recipients never got a final status"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let behind: i64 = sqlx::query_scalar(
        "select count(*) from messages m
          where m.status in ('pending', 'submitted')
            and not exists (select 1 from recipients r
                             where r.message_id = m.id and r.status in ('pending', 'deferred'))",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(behind, 0, "messages left behind their recipients");
    let sent: i64 = sqlx::query_scalar("select count(*) from messages where status = 'sent'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(sent, MESSAGES as i64);
    worker.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts_after = sink_counts(&sink_dir, since, &domain);
    let dupes: Vec<_> = counts_after.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(
        counts_after.len(),
        MESSAGES,
        "every message reached the sink"
    );
    assert!(dupes.is_empty(), "sent twice: {dupes:?}");
    let recovered: i64 = sqlx::query_scalar(
        "select count(*) from delivery_events
          where event = 'submitted' and smtp_response like 'queued by an earlier attempt%'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    let retried: i64 = sqlx::query_scalar("select count(*) from messages where attempts > 1")
        .fetch_one(&db)
        .await
        .unwrap();
    eprintln!(
        "{} messages; {retried} claimed again after a kill; {recovered} of those found in the MTA log instead of re-sent",
        counts.len()
    );
    assert!(
        retried > 0,
        "the kills interrupted nothing: the test proved nothing"
    );
}
