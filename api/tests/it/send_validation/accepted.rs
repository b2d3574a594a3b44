//! What an accepted send answers, idempotency keys, and suppressed recipients.

use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

use super::{good, with};

#[tokio::test]
async fn accepted_send_answers_as_the_spec_and_dedupes_recipients() {
    let app = TestApp::spawn(&[]).await;
    app.domain("send.test", true).await;
    let admin = app.admin_token().await;
    let body = json!({
        "from": "Sender <sender@send.test>",
        "to": ["A@Example.net", "b@example.net"],
        "cc": ["c@example.net", "a@example.net"],
        "bcc": ["d@example.net"],
        "body": {"html": "<p>x</p>"},
    });
    let resp = app.post_json("/mail/send", &admin, &body).await;
    assert_eq!(resp.status(), 202);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["success"], true);
    assert_eq!(v["status"], "pending");
    assert_eq!(v["queue_id"], Value::Null);
    assert_eq!(v["recipient_count"], 4);
    let id = v["message_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
    let s: Value = app
        .get(&format!("/mail/{id}/status"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["status"], "pending");
    let kinds: Vec<(String, String)> = s["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["email"].as_str().unwrap().to_owned(),
                r["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("a@example.net".into(), "to".into()),
            ("b@example.net".into(), "to".into()),
            ("c@example.net".into(), "cc".into()),
            ("d@example.net".into(), "bcc".into()),
        ]
    );
    for r in s["recipients"].as_array().unwrap() {
        assert_eq!(r["status"], "pending");
    }
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_and_survive_races() {
    let app = TestApp::spawn(&[]).await;
    app.domain("send.test", true).await;
    let admin = app.admin_token().await;
    let post = |key: &'static str, body: Value| {
        let req = app
            .http
            .post(app.api("/mail/send"))
            .header("X-MAILAPI-TOKEN", &admin)
            .header("Idempotency-Key", key)
            .json(&body);
        async move { req.send().await.unwrap() }
    };
    let first: Value = post("k1", good()).await.json().await.unwrap();
    let again = post("k1", good()).await;
    assert_eq!(again.status(), 202);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again, "same key, same body: the stored response");
    assert_error(
        post("k1", with(good(), &["subject"], json!("other"))).await,
        422,
        "IDEMPOTENCY_KEY_REUSED",
    )
    .await;
    assert_eq!(app.stored().await.0, 1);

    // Ten identical requests at once create one message.
    let racers: Vec<_> = (0..10).map(|_| post("race", good())).collect();
    let answers = futures::future::join_all(racers).await;
    let mut ids = std::collections::HashSet::new();
    for a in answers {
        assert_eq!(a.status(), 202);
        let v: Value = a.json().await.unwrap();
        ids.insert(v["message_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.stored().await.0, 2);
    assert_eq!(app.stream_len().await, 2);

    // Another token's identical key is its own.
    let admin2 = app.admin_token().await;
    let resp = app
        .http
        .post(app.api("/mail/send"))
        .header("X-MAILAPI-TOKEN", &admin2)
        .header("Idempotency-Key", "k1")
        .json(&good())
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_ne!(v["message_id"], first["message_id"]);
}
#[tokio::test]
async fn suppressed_recipients_never_reach_the_mta() {
    let app = TestApp::spawn(&[]).await;
    app.domain("send.test", true).await;
    let admin = app.admin_token().await;
    sqlx::query("insert into suppressions (domain, email, reason) values ('send.test', 'gone@example.net', 'test')")
        .execute(&app.db)
        .await
        .unwrap();
    let b = with(
        good(),
        &["to"],
        json!(["gone@example.net", "ok@example.net"]),
    );
    let v: Value = app
        .post_json("/mail/send", &admin, &b)
        .await
        .json()
        .await
        .unwrap();
    let s: Value = app
        .get(
            &format!("/mail/{}/status", v["message_id"].as_str().unwrap()),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["recipients"][0]["status"], "suppressed");
    assert_eq!(s["recipients"][1]["status"], "pending");
    let only = with(good(), &["to"], json!(["gone@example.net"]));
    let v: Value = app
        .post_json("/mail/send", &admin, &only)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "failed", "{v}");
    assert_eq!(
        app.stream_len().await,
        1,
        "the all-suppressed message is not queued"
    );
}
