//! Webhooks end to end: endpoints registered through the API, events made by real sends, the
//! worker's webhook tasks delivering to a receiver on loopback that checks every signature with
//! the `standardwebhooks` Python package (testkit/webhook_receiver.py).
//!
//! The messages go only to suppressed addresses, so each makes several published events
//! (`message.accepted`, then one `recipient.suppressed` per recipient) without SMTP, and
//! nothing but webhooks is in play.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::TestApp;
use testkit::webhooks::{Received, Receiver};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod crash;
mod guards;
mod retries;

const DOMAIN: &str = "hooks.test";
/// Recipients per message: each is suppressed, so a message makes 1 + RECIPIENTS events.
pub(super) const RECIPIENTS: usize = 3;

pub(super) async fn setup(overrides: &[(&str, &str)]) -> (TestApp, String) {
    let mut all = vec![
        ("MAILAPI_WEBHOOK_RETRY_SCHEDULE_SECS", "1,1"),
        ("MAILAPI_WEBHOOK_TIMEOUT_SECS", "3"),
        ("MAILAPI_RATE_LIMIT_PER_MINUTE", "100000"),
        ("MAILAPI_RATE_LIMIT_PER_HOUR", "100000"),
    ];
    all.extend_from_slice(overrides);
    let app = TestApp::spawn(&all).await;
    app.domain(DOMAIN, true).await;
    for i in 0..RECIPIENTS {
        sqlx::query("insert into suppressions (domain, email, reason) values ($1, $2, 'test')")
            .bind(DOMAIN)
            .bind(format!("gone{i}@example.net"))
            .execute(&app.db)
            .await
            .unwrap();
    }
    let admin = app.admin_token().await;
    (app, admin)
}

/// Runs only the worker's webhook tasks, in this process, on the app's settings.
pub(super) fn start_webhooks(app: &TestApp) -> CancellationToken {
    let ctx = worker::context::WorkerContext::new(app.settings.clone()).unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(worker::webhooks::run(ctx, stop.clone()));
    stop
}

pub(super) async fn send(app: &TestApp, token: &str, i: usize) -> Uuid {
    let to: Vec<String> = (0..RECIPIENTS)
        .map(|r| format!("gone{r}@example.net"))
        .collect();
    let body = json!({"from": format!("s@{DOMAIN}"), "to": to, "subject": format!("m{i}"), "body": {"text": "hi"}});
    let resp = app.post_json("/mail/send", token, &body).await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let v: Value = resp.json().await.unwrap();
    v["message_id"].as_str().unwrap().parse().unwrap()
}

/// Registers an endpoint; its id and secret.
pub(super) async fn register(app: &TestApp, token: &str, body: Value) -> (i64, String) {
    let resp = app.post_json("/webhooks", token, &body).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let v: Value = resp.json().await.unwrap();
    (
        v["webhook"]["id"].as_i64().unwrap(),
        v["webhook"]["secret"].as_str().unwrap().to_owned(),
    )
}

/// An endpoint and a receiver that knows its secret: registered disabled against a placeholder
/// URL (the secret comes with the registration), then pointed at the receiver and enabled.
pub(super) async fn endpoint_with_receiver(
    app: &TestApp,
    token: &str,
    mode: &str,
    extra: Value,
) -> (i64, Receiver) {
    let mut body = json!({"url": "http://127.0.0.1:9/hook", "events": ["*"], "enabled": false});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (id, secret) = register(app, token, body).await;
    let receiver = Receiver::start(&[&secret], mode);
    let resp = app
        .http
        .patch(app.api(&format!("/webhooks/{id}")))
        .header("X-MAILAPI-TOKEN", token)
        .json(&json!({"url": receiver.url(), "enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    (id, receiver)
}

/// Published event ids of `messages`, by message, in `seq` order.
pub(super) async fn events_in_postgres(app: &TestApp) -> HashMap<String, Vec<(i64, i64)>> {
    let rows: Vec<(Uuid, i32, i64)> = sqlx::query_as(
        "select message_id, seq, id from delivery_events where type is not null order by message_id, seq",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut by_message: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    for (m, seq, id) in rows {
        by_message
            .entry(m.to_string())
            .or_default()
            .push((i64::from(seq), id));
    }
    by_message
}

pub(super) fn event_ids(received: &[Received]) -> Vec<i64> {
    received
        .iter()
        .filter(|r| r.status == 200)
        .flat_map(|r| r.events())
        .map(|e| e["data"]["id"].as_i64().unwrap())
        .collect()
}

pub(super) async fn get_json(app: &TestApp, token: &str, path: &str) -> Value {
    let resp = app.get(path, Some(token)).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn signed_events_arrive_in_seq_order_and_each_once() {
    let (app, admin) = setup(&[]).await;
    let (_, receiver) = endpoint_with_receiver(&app, &admin, "ok", json!({})).await;
    let stop = start_webhooks(&app);
    for i in 0..20 {
        send(&app, &admin, i).await;
    }
    let expected = 20 * (1 + RECIPIENTS);
    let got = receiver
        .wait_for(Duration::from_secs(30), "every event", |r| {
            event_ids(r).len() >= expected
        })
        .await;
    assert!(got.iter().all(|r| r.verified), "every signature verifies");
    let in_pg = events_in_postgres(&app).await;
    let ids = event_ids(&got);
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "no event twice");
    let all: HashSet<i64> = in_pg.values().flatten().map(|(_, id)| *id).collect();
    assert_eq!(
        unique, all,
        "the receiver has exactly the events in Postgres"
    );
    for r in &got {
        let e = &r.events()[0];
        assert_eq!(r.webhook_id, format!("evt_{}", e["data"]["id"]));
        assert_eq!(e["type"], e["data"]["type"]);
    }
    assert_seq_order(&got);
    stop.cancel();
}

/// Each message's events reached the receiver (first arrivals) in `seq` order.
pub(super) fn assert_seq_order(got: &[Received]) {
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut seen: HashSet<i64> = HashSet::new();
    for r in got.iter().filter(|r| r.status == 200) {
        for e in r.events() {
            if !seen.insert(e["data"]["id"].as_i64().unwrap()) {
                continue;
            }
            let m = e["data"]["message_id"].as_str().unwrap().to_owned();
            let seq = e["data"]["seq"].as_i64().unwrap();
            let before = last.insert(m.clone(), seq).unwrap_or(0);
            assert_eq!(
                seq,
                before + 1,
                "message {m}: seq {seq} came after {before}"
            );
        }
    }
}

#[tokio::test]
async fn batches_carry_up_to_batch_size_events_under_their_own_id() {
    let (app, admin) = setup(&[]).await;
    let (_, receiver) = endpoint_with_receiver(&app, &admin, "ok", json!({"batch_size": 10})).await;
    for i in 0..30 {
        send(&app, &admin, i).await;
    }
    let stop = start_webhooks(&app);
    let expected = 30 * (1 + RECIPIENTS);
    let got = receiver
        .wait_for(Duration::from_secs(30), "every event", |r| {
            event_ids(r).len() >= expected
        })
        .await;
    assert!(got.iter().all(|r| r.verified));
    assert!(
        got.iter()
            .all(|r| r.webhook_id.starts_with("batch_") && r.body.is_array())
    );
    assert!(got.iter().all(|r| r.events().len() <= 10));
    assert!(
        got.iter().any(|r| r.events().len() > 1),
        "events were batched"
    );
    let ids = event_ids(&got);
    assert_eq!(ids.len(), ids.iter().collect::<HashSet<_>>().len());
    assert_seq_order(&got);
    stop.cancel();
}

#[tokio::test]
async fn after_a_rotation_both_secrets_sign_during_the_overlap() {
    let (app, admin) = setup(&[]).await;
    let (id, old_only) =
        endpoint_with_receiver(&app, &admin, "ok", json!({"events": ["message.accepted"]})).await;
    let resp = app
        .post_json(&format!("/webhooks/{id}/rotate"), &admin, &json!({}))
        .await;
    assert_eq!(resp.status(), 200);
    let rotated: Value = resp.json().await.unwrap();
    let new_secret = rotated["webhook"]["secret"].as_str().unwrap().to_owned();
    assert!(rotated["webhook"]["previous_secret_expires_at"].is_string());
    let shown = get_json(&app, &admin, &format!("/webhooks/{id}")).await;
    assert!(
        shown["webhook"].get("secret").is_none(),
        "GET never shows the secret"
    );
    let stop = start_webhooks(&app);
    // A receiver that knows only the old secret still verifies...
    send(&app, &admin, 0).await;
    let got = old_only
        .wait_for(Duration::from_secs(10), "the event", |r| !r.is_empty())
        .await;
    assert!(
        got[0].verified,
        "the old secret still signs during the overlap"
    );
    // ...and so does one that knows only the new one.
    let new_only = Receiver::start(&[&new_secret], "ok");
    let resp = app
        .http
        .patch(app.api(&format!("/webhooks/{id}")))
        .header("X-MAILAPI-TOKEN", &admin)
        .json(&json!({"url": new_only.url()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    send(&app, &admin, 1).await;
    let got = new_only
        .wait_for(Duration::from_secs(10), "the event", |r| !r.is_empty())
        .await;
    assert!(got[0].verified, "the new secret signs");
    stop.cancel();
}
