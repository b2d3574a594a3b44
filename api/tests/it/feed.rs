//! The pull feed (`GET /api/v1/events`) and the event registry's numbering: every published
//! event exactly once across pages while events keep arriving, a transaction that commits late
//! never skipped, `seq` without gaps per message, scope by token, long polling.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use testkit::{TestApp, assert_error};
use uuid::Uuid;

/// An active sending domain with one suppressed address, and an admin token.
async fn setup() -> (TestApp, String) {
    let app = TestApp::spawn(&[]).await;
    app.domain("feed.test", true).await;
    sqlx::query(
        "insert into suppressions (domain, email, reason) values ('feed.test', 'gone@example.net', 'test')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let admin = app.admin_token().await;
    (app, admin)
}

/// Sends message `i` (every third also to the suppressed address: two published events).
async fn send(app: &TestApp, token: &str, from: &str, i: usize) -> Uuid {
    let mut to = vec![format!("r{i}@example.net")];
    if i.is_multiple_of(3) {
        to.push("gone@example.net".into());
    }
    let body = json!({"from": from, "to": to, "subject": format!("m{i}"), "body": {"text": "hi"}});
    let resp = app.post_json("/mail/send", token, &body).await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let v: Value = resp.json().await.unwrap();
    v["message_id"].as_str().unwrap().parse().unwrap()
}

/// One page after `cursor`.
async fn page(app: &TestApp, token: &str, cursor: &str, limit: u32) -> (Vec<Value>, String) {
    let resp = app
        .get(
            &format!("/events?after={cursor}&limit={limit}"),
            Some(token),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["success"], true);
    let next = v["next_cursor"].as_str().unwrap().to_owned();
    (v["events"].as_array().unwrap().clone(), next)
}

async fn published_ids(app: &TestApp) -> HashSet<i64> {
    sqlx::query_scalar::<_, i64>("select id from delivery_events where type is not null")
        .fetch_all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn every_event_once_across_pages_while_events_arrive() {
    let (app, admin) = setup().await;
    let sender = {
        let (app, admin) = (app.replica().await, admin.clone());
        tokio::spawn(async move {
            for i in 0..60 {
                send(&app, &admin, "s@feed.test", i).await;
            }
        })
    };
    let mut seen: Vec<Value> = Vec::new();
    let mut cursor = "0-0".to_owned();
    // Page while the sender runs, then until the feed has caught up with what is stored (the
    // horizon is server-wide: other tests' transactions may hold it back for a moment).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = sender.is_finished();
        let (events, next) = page(&app, &admin, &cursor, 7).await;
        if events.is_empty() {
            assert_eq!(next, cursor, "an empty page keeps the cursor");
            if done && seen.len() >= published_ids(&app).await.len() {
                break;
            }
            assert!(Instant::now() < deadline, "the feed never caught up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen.extend(events);
        cursor = next;
    }
    sender.await.unwrap();

    let ids: Vec<i64> = seen.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event came twice");
    assert_eq!(unique, published_ids(&app).await, "the feed missed events");
    assert_eq!(ids.len(), 60 + 20, "60 accepted, 20 suppressed");

    // Per message, the feed's order is `seq` order, 1, 2, ... without gaps.
    let mut next_seq: HashMap<String, i64> = HashMap::new();
    for e in &seen {
        let message = e["message_id"].as_str().unwrap().to_owned();
        let expected = next_seq.entry(message).or_insert(1);
        assert_eq!(e["seq"].as_i64(), Some(*expected), "{e}");
        *expected += 1;
        assert!(
            matches!(
                e["type"].as_str(),
                Some("message.accepted" | "recipient.suppressed")
            ),
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_transaction_that_commits_late_is_not_skipped() {
    let (app, admin) = setup().await;
    let first = send(&app, &admin, "s@feed.test", 1).await;
    // Read everything there is, so the cursor is past the first message's event.
    let mut cursor = "0-0".to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (events, next) = page(&app, &admin, &cursor, 200).await;
        cursor = next;
        if !events.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the first event never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A status change of the first message, written in a transaction that stays open...
    let mut late = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let mut tx = late.begin().await.unwrap();
    let recipient: i64 = sqlx::query_scalar("select id from recipients where message_id = $1")
        .bind(first)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let change = shared::delivery::RecipientChange {
        recipient_id: recipient,
        message_id: first,
        status: shared::status::RecipientStatus::Deferred,
        dsn_code: Some("4.2.0".into()),
        smtp_response: Some("450 try later".into()),
        occurred_at: chrono::Utc::now(),
        source: shared::delivery::EventSource::Log,
        evidence: None,
    };
    assert_eq!(
        shared::delivery::apply_recipient_statuses(&mut tx, &[change])
            .await
            .unwrap(),
        vec![true]
    );
    // ...while a later message's events commit (smaller ids would not matter: ids are taken at
    // insert, and this late transaction took its id first).
    let second = send(&app, &admin, "s@feed.test", 2).await;
    let (events, next) = page(&app, &admin, &cursor, 200).await;
    assert!(
        events.is_empty(),
        "nothing is handed out past a transaction still running: {events:?}"
    );
    assert_eq!(next, cursor);

    tx.commit().await.unwrap();
    let mut got: Vec<(String, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 2 {
        let (events, next) = page(&app, &admin, &cursor, 200).await;
        cursor = next;
        got.extend(events.iter().map(|e| {
            (
                e["message_id"].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
            )
        }));
        assert!(
            Instant::now() < deadline,
            "the late events never showed: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        got,
        vec![
            (first.to_string(), "recipient.deferred".to_owned()),
            (second.to_string(), "message.accepted".to_owned()),
        ],
        "both, in commit order"
    );
}

#[tokio::test]
async fn a_user_token_reads_only_its_own_messages_events() {
    let (app, admin) = setup().await;
    let domain_id: i64 = sqlx::query_scalar("select id from domains where domain = 'feed.test'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let alice = app.mailbox_with_token("alice@feed.test", domain_id).await;
    let bob = app.mailbox_with_token("bob@feed.test", domain_id).await;
    let mine = send(&app, &alice, "alice@feed.test", 1).await;
    let theirs = send(&app, &bob, "bob@feed.test", 2).await;
    send(&app, &admin, "s@feed.test", 4).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let messages = loop {
        let (events, _) = page(&app, &alice, "0-0", 200).await;
        let (all, _) = page(&app, &admin, "0-0", 200).await;
        if all.len() == 3 {
            break events
                .iter()
                .map(|e| e["message_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>();
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(messages, vec![mine.to_string()]);
    assert!(!messages.contains(&theirs.to_string()));
}

#[tokio::test]
async fn a_long_poll_answers_when_an_event_arrives() {
    let (app, admin) = setup().await;
    let started = Instant::now();
    let poll = {
        let (http, url, admin) = (
            app.http.clone(),
            app.api("/events?after=0-0"),
            admin.clone(),
        );
        tokio::spawn(async move {
            http.get(url)
                .header("X-MAILAPI-TOKEN", admin)
                .header("Prefer", "wait=20")
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = send(&app, &admin, "s@feed.test", 1).await;
    let resp = poll.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["preference-applied"], "wait=20");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["events"][0]["message_id"], id.to_string());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );

    // Nothing new: the wait runs out and the page is empty, at the same cursor.
    let cursor = v["next_cursor"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let resp = app
        .http
        .get(app.api(&format!("/events?after={cursor}")))
        .header("X-MAILAPI-TOKEN", &admin)
        .header("Prefer", "wait=1")
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["events"], json!([]));
    assert_eq!(v["next_cursor"], cursor);
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[tokio::test]
async fn bad_cursors_and_limits_are_refused() {
    let (app, admin) = setup().await;
    for query in [
        "after=abc",
        "after=1-",
        "after=-1-2",
        "after=1-2-3",
        "limit=0",
        "limit=x",
    ] {
        let body = assert_error(
            app.get(&format!("/events?{query}"), Some(&admin)).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert!(body["field"].is_string(), "{query}: {body}");
    }
    assert_error(app.get("/events", None).await, 401, "NO_API_TOKEN").await;
}

#[tokio::test]
async fn a_messages_timeline_shows_the_registry_type_and_seq() {
    let (app, admin) = setup().await;
    let id = send(&app, &admin, "s@feed.test", 3).await;
    let v: Value = app
        .get(&format!("/mail/{id}/events"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let events = v["events"].as_array().unwrap();
    let typed: Vec<(Value, Value)> = events
        .iter()
        .map(|e| (e["type"].clone(), e["seq"].clone()))
        .collect();
    assert_eq!(
        typed,
        vec![
            (json!("message.accepted"), json!(1)),
            (json!("recipient.suppressed"), json!(2)),
        ]
    );
    assert_eq!(events[0]["message_id"], id.to_string());
}
