//! Every validation rule refuses and stores nothing; `null` means absent, and a misspelt field
//! is refused by name.

use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

use super::{good, with};

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
