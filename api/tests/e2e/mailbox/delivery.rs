//! Mail from outside (Postfix on port 25), and many requests at once with one connection killed.

use serde_json::Value;
use std::time::Duration;

use super::Fixture;
use super::support::{append, crlf, messages, plain_message, smtp_deliver};

#[tokio::test]
async fn postfix_delivery_shows_up() {
    let f = Fixture::new().await;
    let raw = crlf(&format!(
        "From: Outside <outside@example.com>\n\
         To: {}\n\
         Subject: Delivered by Postfix\n\
         Message-ID: <postfix-{}@example.com>\n\
         \n\
         Hello through LMTP.\n",
        f.alice, f.domain
    ));
    smtp_deliver(&f.alice, &raw).await;
    let path = format!("/mailbox/{}/messages", f.alice);
    let mut list = Value::Null;
    for _ in 0..100 {
        list = f.get_json(&path, &f.alice_token).await;
        if list["total"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(list["total"], 1, "not delivered within 10 s: {list}");
    let m = &messages(&list)[0];
    assert_eq!(m["subject"], "Delivered by Postfix");
    let uid = m["uid"].as_u64().unwrap();
    let full = f
        .get_json(
            &format!("/mailbox/{}/messages/{uid}", f.alice),
            &f.alice_token,
        )
        .await;
    assert!(
        full["headers"]["Received"]
            .as_str()
            .unwrap()
            .contains("Postfix")
    );
    assert_eq!(
        full["body"]["text"].as_str().unwrap().trim_end(),
        "Hello through LMTP."
    );
}

#[tokio::test]
async fn concurrent_requests_and_a_killed_connection() {
    let f = Fixture::new().await;
    for i in 1..=3 {
        append(&f.alice, "INBOX", None, &plain_message(&f.alice, i)).await;
    }
    let path = format!("/mailbox/{}/messages", f.alice);
    let requests = (0..20).map(|_| f.get(&path, &f.alice_token));
    for r in futures::future::join_all(requests).await {
        assert_eq!(r.status(), 200);
    }
    // Kill every IMAP connection of the user; the pool notices and reconnects.
    let out = std::process::Command::new("doveadm")
        .args(["kick", &f.alice])
        .output()
        .expect("doveadm");
    assert!(out.status.success(), "{out:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let list = f.get_json(&path, &f.alice_token).await;
        assert_eq!(list["total"], 3);
    }
}
