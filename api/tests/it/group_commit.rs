//! Sends without an `Idempotency-Key` are stored many per statement (send::accept). Batching
//! must not mix messages up: each keeps its own recipients in order, its own status and its own
//! stream entry; a message Postgres refuses fails alone; an unreachable Postgres is 503-worthy.

use std::collections::HashSet;
use std::time::Duration;

use api::send::accept::{Failure, insert_batch};
use api::send::request::SendRequest;
use api::send::store::NewMessage;
use serde_json::{Value, json};
use testkit::TestApp;
use uuid::Uuid;

/// Message `i`'s recipients: every fifth goes only to a suppressed address.
fn recipients_of(i: usize) -> Vec<String> {
    if i.is_multiple_of(5) {
        vec!["gone@example.net".into()]
    } else {
        (0..1 + i % 3)
            .map(|k| format!("r{i}-{k}@example.net"))
            .collect()
    }
}

#[tokio::test]
async fn concurrent_sends_share_statements_but_not_rows() {
    let app = TestApp::spawn(&[
        ("MAILAPI_RATE_LIMIT_PER_MINUTE", "100000"),
        ("MAILAPI_RATE_LIMIT_PER_HOUR", "100000"),
    ])
    .await;
    app.domain("send.test", true).await;
    let admin = app.admin_token().await;
    sqlx::query(
        "insert into suppressions (domain, email, reason) values ('send.test', 'gone@example.net', 'test')",
    )
    .execute(&app.db)
    .await
    .unwrap();

    const N: usize = 150;
    let sends = (0..N).map(|i| {
        let app = &app;
        let admin = &admin;
        async move {
            let body = json!({
                "from": "sender@send.test",
                "to": recipients_of(i),
                "subject": format!("message {i}"),
                "body": {"text": format!("body {i}")},
            });
            let resp = app.post_json("/mail/send", admin, &body).await;
            assert_eq!(resp.status(), 202, "message {i}");
            let v: Value = resp.json().await.unwrap();
            (i, v)
        }
    });
    let answers = futures::future::join_all(sends).await;

    let mut pending = 0;
    for (i, v) in &answers {
        let expected = if i.is_multiple_of(5) {
            "failed"
        } else {
            "pending"
        };
        assert_eq!(v["status"], expected, "message {i}: {v}");
        assert_eq!(v["recipient_count"], recipients_of(*i).len(), "message {i}");
        if expected == "pending" {
            pending += 1;
        }
        let id = Uuid::parse_str(v["message_id"].as_str().unwrap()).unwrap();
        let (subject, status): (String, String) =
            sqlx::query_as("select subject, status from messages where id = $1")
                .bind(id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert_eq!(subject, format!("message {i}"));
        assert_eq!(status, expected);
        let stored: Vec<(String, String)> = sqlx::query_as(
            "select email, status from recipients where message_id = $1 order by id",
        )
        .bind(id)
        .fetch_all(&app.db)
        .await
        .unwrap();
        let rcpt_status = if i.is_multiple_of(5) {
            "suppressed"
        } else {
            "pending"
        };
        let want: Vec<(String, String)> = recipients_of(*i)
            .into_iter()
            .map(|e| (e, rcpt_status.to_owned()))
            .collect();
        assert_eq!(stored, want, "message {i}: its own recipients, in order");
        let events: Vec<String> = sqlx::query_scalar(
            "select event from delivery_events where message_id = $1 order by id",
        )
        .bind(id)
        .fetch_all(&app.db)
        .await
        .unwrap();
        let mut want = vec!["accepted".to_owned()];
        if i.is_multiple_of(5) {
            want.push("suppressed".into());
        }
        assert_eq!(events, want, "message {i}");
    }
    assert_eq!(
        app.stream_len().await,
        pending,
        "one stream entry per message that needs a worker"
    );
    // Messages stored by one statement share its transaction's now().
    let batches: i64 = sqlx::query_scalar("select count(distinct created_at) from messages")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        batches < N as i64,
        "150 concurrent sends were stored by {batches} statements: no group commit"
    );
}

fn new_message(token_id: i64, to: &str) -> NewMessage {
    let request: SendRequest = serde_json::from_value(json!({
        "from": "sender@send.test",
        "to": [to],
        "subject": "s",
        "body": {"text": "t"},
    }))
    .unwrap();
    let id = Uuid::now_v7();
    NewMessage {
        id,
        token_id,
        rfc_message_id: shared::outgoing::rfc_message_id(id, "send.test"),
        message: request.validate(10).unwrap(),
        size_bytes: 100,
        traceparent: None,
    }
}

#[tokio::test]
async fn a_message_postgres_refuses_fails_alone() {
    let app = TestApp::spawn(&[]).await;
    app.domain("send.test", true).await;
    app.admin_token().await;
    let token_id: i64 = sqlx::query_scalar("select max(id) from api_tokens")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let a = new_message(token_id, "a@example.net");
    // A token deleted while its request was in flight: the foreign key refuses this one.
    let bad = new_message(token_id + 1_000_000, "b@example.net");
    let c = new_message(token_id, "c@example.net");
    let results = insert_batch(&app.db, &[&a, &bad, &c]).await;
    assert_eq!(results.len(), 3);
    assert_eq!(
        results[0].as_ref().ok().map(|s| s.as_str()),
        Some("pending")
    );
    assert!(
        matches!(&results[1], Err(Failure::Internal(e)) if e.contains("foreign key")),
        "{:?}",
        results[1]
    );
    assert_eq!(
        results[2].as_ref().ok().map(|s| s.as_str()),
        Some("pending")
    );
    let ids: HashSet<Uuid> = sqlx::query_scalar("select id from messages")
        .fetch_all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(ids, HashSet::from([a.id, c.id]));
}

#[tokio::test]
async fn an_unreachable_database_fails_the_batch_as_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let db = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    let a = new_message(1, "a@example.net");
    let b = new_message(1, "b@example.net");
    let results = insert_batch(&db, &[&a, &b]).await;
    assert_eq!(results.len(), 2);
    for r in results {
        assert!(matches!(r, Err(Failure::Unavailable(_))), "{r:?}");
    }
}
