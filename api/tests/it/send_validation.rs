//! `POST /mail/send` refuses bad input with a stable code and stores and queues nothing;
//! idempotency keys; who may see a message's status; `GET /mail/sent` scoping.

use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

fn good() -> Value {
    json!({
        "from": "sender@send.test",
        "to": ["rcpt@example.net"],
        "subject": "Hello",
        "body": {"text": "hi", "html": "<p>hi</p>"},
    })
}

fn with(mut base: Value, path: &[&str], value: Value) -> Value {
    let mut cur = &mut base;
    for p in &path[..path.len() - 1] {
        cur = &mut cur[*p];
    }
    cur[path[path.len() - 1]] = value;
    base
}

#[tokio::test]
async fn every_validation_rule_refuses_and_stores_nothing() {
    let app = TestApp::spawn(&[
        ("MAILAPI_MAX_RECIPIENTS", "3"),
        ("MAILAPI_SMTP_MAX_MESSAGE_BYTES", "200000"),
    ])
    .await;
    let d = app.domain("send.test", true).await;
    app.domain("pending.test", false).await;
    let user = app.mailbox_with_token("sender@send.test", d).await;
    let admin = app.admin_token().await;
    let big = "A".repeat(300_000);
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            with(good(), &["from"], json!("not-an-address")),
            400,
            "INVALID_ADDRESS",
        ),
        (
            with(good(), &["to"], json!(["ok@example.net", "bad@@x"])),
            400,
            "INVALID_ADDRESS",
        ),
        (
            with(good(), &["cc"], json!(["a b@example.net"])),
            400,
            "INVALID_ADDRESS",
        ),
        (
            with(
                good(),
                &["bcc"],
                json!(["x@example.net\r\nRCPT TO:<y@z.test>"]),
            ),
            400,
            "INVALID_HEADER",
        ),
        (
            with(good(), &["reply_to"], json!("nope")),
            400,
            "INVALID_ADDRESS",
        ),
        (with(good(), &["to"], json!([])), 400, "NO_RECIPIENTS"),
        (
            with(
                good(),
                &["to"],
                json!(["a@x.test", "b@x.test", "c@x.test", "d@x.test"]),
            ),
            400,
            "TOO_MANY_RECIPIENTS",
        ),
        (with(good(), &["body"], json!({})), 400, "VALIDATION_ERROR"),
        (
            with(good(), &["subject"], json!("Hi\r\nBcc: evil@x.test")),
            400,
            "INVALID_HEADER",
        ),
        (
            with(good(), &["subject"], json!("nul\u{0}")),
            400,
            "INVALID_HEADER",
        ),
        (
            with(good(), &["from"], json!("Evil\nName <sender@send.test>")),
            400,
            "INVALID_HEADER",
        ),
        (
            with(good(), &["headers"], json!({"X-Ok": "a\r\nBcc: x@y.test"})),
            400,
            "INVALID_HEADER",
        ),
        (
            with(good(), &["headers"], json!({"X-Bad\nName": "v"})),
            400,
            "INVALID_HEADER",
        ),
        (
            with(good(), &["headers"], json!({"Message-ID": "<x@y>"})),
            400,
            "INVALID_HEADER",
        ),
        (
            with(good(), &["headers"], json!({"Content-Type": "text/evil"})),
            400,
            "INVALID_HEADER",
        ),
        (
            with(good(), &["headers"], json!({"DKIM-Signature": "v=1"})),
            400,
            "INVALID_HEADER",
        ),
        (
            with(good(), &["headers"], json!({"Received": "x"})),
            400,
            "INVALID_HEADER",
        ),
        (
            with(
                good(),
                &["attachments"],
                json!([{"content": "aGk=", "content_type": "text/plain\r\nX: y"}]),
            ),
            400,
            "INVALID_ATTACHMENT",
        ),
        (
            with(
                good(),
                &["attachments"],
                json!([{"filename": "a.txt", "content": "not base64!!"}]),
            ),
            400,
            "INVALID_ATTACHMENT",
        ),
        (
            with(
                good(),
                &["attachments"],
                json!([{"filename": "a\r\n.txt", "content": "aGk="}]),
            ),
            400,
            "INVALID_ATTACHMENT",
        ),
        (
            with(good(), &["body", "text"], json!(big)),
            400,
            "MESSAGE_TOO_LARGE",
        ),
        (
            with(good(), &["to"], json!("rcpt@example.net")),
            400,
            "VALIDATION_ERROR",
        ),
        (
            with(good(), &["from"], json!("someone@unknown-domain.test")),
            403,
            "DOMAIN_NOT_ALLOWED",
        ),
        (
            with(good(), &["from"], json!("someone@pending.test")),
            403,
            "DOMAIN_NOT_ALLOWED",
        ),
    ];
    for (body, status, code) in cases {
        let resp = app.post_json("/mail/send", &admin, &body).await;
        let got = assert_error(resp, status, code).await;
        assert!(got["message"].is_string(), "{body}: {got}");
    }
    // A user token may send only as its own mailbox.
    let other = with(good(), &["from"], json!("someone-else@send.test"));
    assert_error(
        app.post_json("/mail/send", &user, &other).await,
        403,
        "SENDER_NOT_AUTHORIZED",
    )
    .await;
    // Malformed JSON.
    let resp = app
        .http
        .post(app.api("/mail/send"))
        .header("X-MAILAPI-TOKEN", &admin)
        .body("{\"from\": ")
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "INVALID_JSON").await;

    assert_eq!(app.stored().await, (0, 0), "nothing may be stored");
    assert_eq!(app.stream_len().await, 0, "nothing may be queued");

    // And the good request goes through: the checks above failed for their own reason.
    let resp = app.post_json("/mail/send", &user, &good()).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(app.stored().await, (1, 1));
    assert_eq!(app.stream_len().await, 1);
}

/// What Python's `None` and JavaScript's `null` send for a field left out means "absent", and an
/// attachment without a filename is named after its position and type; a misspelt field is still
/// refused by name, so a typo cannot silently drop recipients.
#[tokio::test]
async fn null_means_absent_and_a_typo_is_named() {
    let app = TestApp::spawn(&[]).await;
    app.domain("send.test", true).await;
    let admin = app.admin_token().await;
    let body = json!({
        "from": "sender@send.test",
        "to": ["rcpt@example.net"],
        "cc": null,
        "bcc": null,
        "subject": null,
        "reply_to": null,
        "headers": null,
        "body": {"text": "hi", "html": null},
        "attachments": [
            {"content": "JVBERi0xLjQK", "content_type": "application/pdf"},
            {"filename": null, "content": "aGk=", "content_type": null},
        ],
    });
    let resp = app.post_json("/mail/send", &admin, &body).await;
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let payload: Value = sqlx::query_scalar("select payload::jsonb from messages")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let names: Vec<&str> = payload["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["attachment-1.pdf", "attachment-2.bin"]);
    assert_eq!(payload["subject"], "");
    assert_eq!(payload["html"], Value::Null);

    let mut typo = good();
    typo["bc"] = json!(["hidden@example.net"]);
    let got = assert_error(
        app.post_json("/mail/send", &admin, &typo).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(got["field"], "bc", "{got}");
    assert!(got["message"].as_str().unwrap().contains("bc"), "{got}");
    // `to` stays required: null is not an empty list of recipients.
    assert_error(
        app.post_json("/mail/send", &admin, &with(good(), &["to"], Value::Null))
            .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(app.stored().await, (1, 1));
}

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
