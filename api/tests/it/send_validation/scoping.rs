//! Who may see a message's status, and `GET /mail/sent` scoping.

use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

use super::{good, with};

#[tokio::test]
async fn status_and_sent_are_scoped_to_the_token() {
    let app = TestApp::spawn(&[]).await;
    let d = app.domain("send.test", true).await;
    let alice = app.mailbox_with_token("alice@send.test", d).await;
    let bob = app.mailbox_with_token("bob@send.test", d).await;
    let admin = app.admin_token().await;
    let mut alice_ids = Vec::new();
    for i in 0..3 {
        let b = with(
            with(good(), &["from"], json!("alice@send.test")),
            &["subject"],
            json!(format!("m{i}")),
        );
        let v: Value = app
            .post_json("/mail/send", &alice, &b)
            .await
            .json()
            .await
            .unwrap();
        alice_ids.push(v["message_id"].as_str().unwrap().to_owned());
    }
    let b = with(good(), &["from"], json!("bob@send.test"));
    let v: Value = app
        .post_json("/mail/send", &bob, &b)
        .await
        .json()
        .await
        .unwrap();
    let bob_id = v["message_id"].as_str().unwrap().to_owned();

    // Bob cannot see Alice's message: the same answer as for an id that does not exist.
    assert_error(
        app.get(&format!("/mail/{}/status", alice_ids[0]), Some(&bob))
            .await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;
    assert_error(
        app.get(
            &format!("/mail/{}/status", uuid::Uuid::new_v4()),
            Some(&bob),
        )
        .await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;
    assert_error(
        app.get("/mail/not-a-uuid/status", Some(&bob)).await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;
    assert_eq!(
        app.get(&format!("/mail/{bob_id}/status"), Some(&bob))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&format!("/mail/{bob_id}/status"), Some(&admin))
            .await
            .status(),
        200
    );

    let list: Value = app
        .get("/mail/sent?limit=2", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 3);
    let got: Vec<&str> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        vec![alice_ids[2].as_str(), alice_ids[1].as_str()],
        "newest first"
    );
    let m = &list["messages"][0];
    assert_eq!(m["from"], "alice@send.test");
    assert_eq!(m["to"], json!(["rcpt@example.net"]));
    assert_eq!(m["subject"], "m2");
    assert_eq!(m["status"], "pending");
    let page2: Value = app
        .get("/mail/sent?limit=2&offset=2", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page2["messages"].as_array().unwrap().len(), 1);
    let all: Value = app
        .get("/mail/sent", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["total"], 4);
    // A larger page than the maximum is capped, not refused (page_limits.rs fills one).
    let capped: Value = app
        .get("/mail/sent?limit=500", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(capped["messages"].as_array().unwrap().len(), 4, "{capped}");
}
