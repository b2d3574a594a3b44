//! End to end with the real stack: API -> Postgres -> Redis stream -> worker -> Postfix
//! (submission, SASL) -> Dovecot LMTP -> IMAP. Needs `deploy/infra-up.sh`.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use testkit::TestApp;

/// A unique hosted domain in the main database (Postfix and Dovecot read it), removed on drop.
struct TestDomain {
    db: sqlx::PgPool,
    name: String,
}

impl TestDomain {
    async fn create(app: &TestApp, with_dkim: bool) -> (TestDomain, i64) {
        let name = format!(
            "e2e-{}.test",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let (selector, private, public) = if with_dkim {
            let key = api::routes::domains::dkim::generate_rsa(chrono::Utc::now()).unwrap();
            (Some("mail"), Some(key.private_pem), Some(key.public))
        } else {
            (None, None, None)
        };
        let id: i64 = sqlx::query_scalar(
            "insert into domains (domain, active, dkim_selector, dkim_private_key, dkim_public_key)
             values ($1, true, $2, $3, $4) returning id",
        )
        .bind(&name)
        .bind(selector)
        .bind(private)
        .bind(public)
        .fetch_one(&app.db)
        .await
        .unwrap();
        (
            TestDomain {
                db: app.db.clone(),
                name,
            },
            id,
        )
    }
}

impl TestDomain {
    /// Removes the domain (its mailboxes and messages cascade). Called at the end of a test; a
    /// failed test leaves its uniquely named domain behind, which harms nothing.
    async fn remove(self) {
        sqlx::query("delete from domains where domain = $1")
            .bind(&self.name)
            .execute(&self.db)
            .await
            .unwrap();
    }
}

async fn wait_status(app: &TestApp, token: &str, id: &str, want: &[&str]) -> Value {
    for _ in 0..300 {
        let s: Value = app
            .get(&format!("/mail/{id}/status"), Some(token))
            .await
            .json()
            .await
            .unwrap();
        if want.contains(&s["status"].as_str().unwrap_or_default()) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("message {id} never reached {want:?}");
}

#[tokio::test]
async fn a_send_arrives_intact_in_a_local_mailbox() {
    let app = TestApp::spawn_main_db(&[]).await;
    let (domain, domain_id) = TestDomain::create(&app, true).await;
    let d = domain.name.clone();
    let sender = app
        .mailbox_with_token(&format!("sender@{d}"), domain_id)
        .await;
    app.mailbox_with_token(&format!("rcpt@{d}"), domain_id)
        .await;
    app.mailbox_with_token(&format!("cc@{d}"), domain_id).await;
    let stop = app.start_worker().stop;

    let attachment: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let text = "line one\n.\nafter a lone dot\r\n.\r\nand\n..two dots\n.";
    let subject = format!("Grüße vom Test {}", uuid::Uuid::new_v4().simple());
    let body = json!({
        "from": format!("Sender Name <sender@{d}>"),
        "to": [format!("rcpt@{d}")],
        "cc": [format!("cc@{d}")],
        "subject": subject,
        "body": {"text": text, "html": "<h1>Hi</h1><p>HTML body</p>"},
        "reply_to": format!("replies@{d}"),
        "headers": {"X-Custom-Header": "custom-value"},
        "attachments": [{
            "filename": "data.bin",
            "content": base64::engine::general_purpose::STANDARD.encode(&attachment),
            "content_type": "application/octet-stream"
        }]
    });
    let resp = app.post_json("/mail/send", &sender, &body).await;
    assert_eq!(resp.status(), 202);
    let v: Value = resp.json().await.unwrap();
    let id = v["message_id"].as_str().unwrap().to_owned();

    let s = wait_status(&app, &sender, &id, &["submitted", "sent"]).await;
    let queue_id = s["queue_id"].as_str().expect("a queue id once submitted");
    assert!(
        queue_id.len() >= 12 && queue_id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{queue_id}"
    );
    assert!(s["submitted_at"].is_string());

    let marker = uuid::Uuid::parse_str(&id).unwrap().simple().to_string();
    let raw = app.fetch_inbox(&format!("rcpt@{d}"), &marker).await;
    let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
    assert_eq!(parsed.subject(), Some(subject.as_str()));
    assert_eq!(parsed.message_id(), Some(format!("{marker}@{d}").as_str()));
    assert_eq!(
        parsed.body_text(0).unwrap().replace("\r\n", "\n"),
        text.replace("\r\n", "\n")
    );
    assert!(parsed.body_html(0).unwrap().contains("HTML body"));
    assert_eq!(
        parsed.cc().unwrap().first().unwrap().address(),
        Some(format!("cc@{d}").as_str())
    );
    assert_eq!(
        parsed.reply_to().unwrap().first().unwrap().address(),
        Some(format!("replies@{d}").as_str())
    );
    assert_eq!(
        parsed.header_raw("X-Custom-Header").map(str::trim),
        Some("custom-value")
    );
    assert!(
        parsed.header_raw("DKIM-Signature").is_some(),
        "signed with the domain's key"
    );
    let att = parsed.attachment(0).expect("the attachment");
    assert_eq!(
        att.contents(),
        attachment.as_slice(),
        "attachment bytes identical"
    );
    // The Bcc-free header block, and exactly one copy.
    assert!(
        !String::from_utf8_lossy(&raw)
            .to_lowercase()
            .contains("\nbcc:")
    );
    let cc_copy = app.fetch_inbox(&format!("cc@{d}"), &marker).await;
    assert!(!cc_copy.is_empty());
    stop.cancel();
    domain.remove().await;
}

#[tokio::test]
async fn a_message_refused_by_the_mta_fails_with_its_reply() {
    // Postfix's submission port refuses a sender it cannot route back to? No: here the MTA is
    // pointed at the 5xx sink directly, which refuses every recipient.
    let app = TestApp::spawn(&[
        ("MAILAPI_SMTP_HOST", "127.0.0.1"),
        ("MAILAPI_SMTP_PORT", "2526"),
        ("MAILAPI_SMTP_USERNAME", ""),
        ("MAILAPI_SMTP_PASSWORD", ""),
    ])
    .await;
    app.domain("send.test", true).await;
    let admin = app.admin_token().await;
    let stop = app.start_worker().stop;
    let b = json!({"from": "s@send.test", "to": ["x@sink-hard.test"], "body": {"text": "x"}});
    let v: Value = app
        .post_json("/mail/send", &admin, &b)
        .await
        .json()
        .await
        .unwrap();
    let id = v["message_id"].as_str().unwrap();
    let s = wait_status(&app, &admin, id, &["failed"]).await;
    let r = &s["recipients"][0];
    assert_eq!(r["status"], "failed");
    assert!(
        r["smtp_response"].as_str().unwrap().contains("5.1.1"),
        "{s}"
    );
    assert_eq!(r["dsn_code"], "5.1.1");
    stop.cancel();
}

#[tokio::test]
async fn a_down_mta_means_retries_not_loss() {
    let app = TestApp::spawn(&[
        ("MAILAPI_SMTP_PORT", "2528"),
        ("MAILAPI_SMTP_USERNAME", ""),
        ("MAILAPI_SMTP_PASSWORD", ""),
        ("MAILAPI_RETRY_SCHEDULE_SECS", "1,1"),
    ])
    .await;
    app.domain("send.test", true).await;
    let admin = app.admin_token().await;
    let stop = app.start_worker().stop;
    let b = json!({"from": "s@send.test", "to": ["x@example.net"], "body": {"text": "x"}});
    let v: Value = app
        .post_json("/mail/send", &admin, &b)
        .await
        .json()
        .await
        .unwrap();
    let id = v["message_id"].as_str().unwrap();
    let s = wait_status(&app, &admin, id, &["failed"]).await;
    let (attempts, error): (i32, String) =
        sqlx::query_as("select attempts, last_error from messages where id = $1::uuid")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(attempts, 3, "the first attempt and two retries");
    assert!(error.contains("gave up after 3 attempts"), "{error}");
    assert_eq!(s["recipients"][0]["status"], "failed");
    let retries: i64 = sqlx::query_scalar(
        "select count(*) from delivery_events where message_id = $1::uuid and event = 'retry'",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(retries, 2);
    stop.cancel();
}

#[tokio::test]
async fn redis_losing_the_stream_and_its_group_loses_nothing() {
    let app = TestApp::spawn(&[("MAILAPI_RECONCILE_AFTER_SECS", "2")]).await;
    app.domain("send.test", true).await;
    let admin = app.admin_token().await;
    let stop = app.start_worker().stop;
    let body = json!({"from": "s@send.test", "to": ["x@sink-ok.test"], "body": {"text": "x"}});
    let v: Value = app
        .post_json("/mail/send", &admin, &body)
        .await
        .json()
        .await
        .unwrap();
    wait_status(
        &app,
        &admin,
        v["message_id"].as_str().unwrap(),
        &["submitted", "sent"],
    )
    .await;

    // Redis restarts empty: the stream and the consumer group are gone.
    let client = deadpool_redis::redis::Client::open(testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = shared::jobs::Keys::new(&app.prefix).send_stream();
    let _: i64 = deadpool_redis::redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();

    let v: Value = app
        .post_json("/mail/send", &admin, &body)
        .await
        .json()
        .await
        .unwrap();
    let s = wait_status(
        &app,
        &admin,
        v["message_id"].as_str().unwrap(),
        &["submitted", "sent"],
    )
    .await;
    assert!(s["queue_id"].is_string(), "{s}");
    stop.cancel();
}
