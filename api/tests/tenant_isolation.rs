//! Every route addressed by an object id answers a second tenant exactly as it answers an id
//! that does not exist: the same status and the same bytes, without the id, so a 404 tells no
//! one whether somebody else's object is there.
//!
//! Seen failing against a deliberately broken build: with the message lookup's owner check
//! removed, Bob's request for Alice's message status was answered 200 with her message.

mod common;

use common::TestApp;
use serde_json::{Value, json};

async fn raw(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn foreign_object_ids_answer_exactly_like_missing_ones() {
    let app = TestApp::spawn(&[]).await;
    let d = app.domain("tenants.test", true).await;
    let alice = app.mailbox_with_token("alice@tenants.test", d).await;
    let bob = app.mailbox_with_token("bob@tenants.test", d).await;
    let sent: Value = app
        .post_json(
            "/mail/send",
            &alice,
            &json!({"from": "alice@tenants.test", "to": ["r@example.net"],
                    "subject": "mine", "body": {"text": "private"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let hers = sent["message_id"].as_str().expect("message_id").to_owned();
    let none = uuid::Uuid::new_v4().to_string();
    let me: Value = app
        .get("/tokens/me", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    let her_token = me["id"].as_i64().expect("token id");
    let no_token = her_token + 1_000_000;

    for (path_hers, path_none) in [
        (
            format!("/mail/{hers}/status"),
            format!("/mail/{none}/status"),
        ),
        (
            format!("/mail/{hers}/events"),
            format!("/mail/{none}/events"),
        ),
    ] {
        let foreign = raw(app.get(&path_hers, Some(&bob)).await).await;
        let missing = raw(app.get(&path_none, Some(&bob)).await).await;
        assert_eq!(foreign.0, 404, "{path_hers}: {}", foreign.1);
        assert_eq!(foreign, missing, "{path_hers} vs {path_none}");
        assert!(
            !foreign.1.contains(&hers),
            "the id is echoed: {}",
            foreign.1
        );
    }

    let client = reqwest::Client::new();
    let delete = |id: i64| {
        client
            .delete(app.api(&format!("/tokens/{id}")))
            .header("X-MAILAPI-TOKEN", &bob)
            .send()
    };
    let foreign = raw(delete(her_token).await.unwrap()).await;
    let missing = raw(delete(no_token).await.unwrap()).await;
    assert_eq!(foreign.0, 404, "{}", foreign.1);
    assert_eq!(foreign, missing);
    assert!(!foreign.1.contains(&her_token.to_string()));
    // Alice's token still works: Bob's attempt changed nothing.
    assert_eq!(app.get("/tokens/me", Some(&alice)).await.status(), 200);
}
