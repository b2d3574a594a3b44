//! `Prefer: wait=N` (RFC 7240) on `POST /mail/send`, against the real stack: the answer carries
//! the queue id Postfix logged for the message, a permanent refusal is `SEND_FAILED`, a message
//! with nothing to submit answers at once, and waiting requests hold no database connection.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::TestApp;
use tokio_util::sync::CancellationToken;

fn start_worker(app: &TestApp) -> CancellationToken {
    let mut settings = app.settings.clone();
    // The API under test may run with a tiny pool; the worker needs its own usual one.
    settings.database_max_connections = 16;
    testkit::Worker::start(settings).stop
}

async fn send(app: &TestApp, token: &str, prefer: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.api("/mail/send"))
        .header("X-MAILAPI-TOKEN", token)
        .json(body);
    if let Some(p) = prefer {
        req = req.header("Prefer", p);
    }
    req.send().await.unwrap()
}

fn applied(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("preference-applied")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// The line Postfix's cleanup daemon logs for our Message-ID, polled for up to 15 s.
async fn logged_queue_id(rfc_message_id: &str) -> String {
    let path = testkit::env_or("MAILAPI_MTA_LOG_PATH", "/var/log/mailapi/postfix.log");
    let needle = format!(": message-id=<{rfc_message_id}>");
    for _ in 0..150 {
        let log = tokio::fs::read_to_string(&path)
            .await
            .unwrap_or_else(|e| panic!("read Postfix's log {path}: {e} (deploy/infra-up.sh)"));
        if let Some(line) = log.lines().find(|l| l.ends_with(&needle)) {
            let before = line.strip_suffix(&needle).unwrap();
            return before.rsplit(' ').next().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Postfix never logged message-id=<{rfc_message_id}> in {path}");
}

#[tokio::test]
async fn wait_answers_with_the_queue_id_postfix_logged() {
    let app = TestApp::spawn(&[]).await;
    app.domain("wait.test", true).await;
    let admin = app.admin_token().await;
    let stop = start_worker(&app);
    let body = json!({"from": "s@wait.test", "to": ["x@sink-ok.test"], "body": {"text": "x"}});
    let resp = send(&app, &admin, Some("wait=10"), &body).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(applied(&resp).as_deref(), Some("wait=10"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["success"], true);
    assert!(
        ["submitted", "sent"].contains(&v["status"].as_str().unwrap()),
        "{v}"
    );
    assert_eq!(v["recipient_count"], 1);
    let queue_id = v["queue_id"].as_str().expect("a queue id").to_owned();
    let rfc: String = sqlx::query_scalar("select rfc_message_id from messages where id = $1::uuid")
        .bind(v["message_id"].as_str().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    let rfc = rfc.trim_matches(['<', '>']).to_owned();
    assert_eq!(logged_queue_id(&rfc).await, queue_id);

    // Without the preference the answer is the immediate one, and nothing says it was applied.
    let resp = send(&app, &admin, None, &body).await;
    assert_eq!(applied(&resp), None);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "pending");
    assert_eq!(v["queue_id"], Value::Null);

    // A malformed preference is ignored, not an error.
    let resp = send(&app, &admin, Some("wait=soon"), &body).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(applied(&resp), None);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "pending");

    // A replay of an idempotent request waits too, and finds the same queue id.
    let keyed = |prefer: Option<&'static str>| {
        let mut r = app
            .http
            .post(app.api("/mail/send"))
            .header("X-MAILAPI-TOKEN", &admin)
            .header("Idempotency-Key", "wait-replay")
            .json(&body);
        if let Some(p) = prefer {
            r = r.header("Prefer", p);
        }
        r.send()
    };
    let first: Value = keyed(None).await.unwrap().json().await.unwrap();
    assert_eq!(first["status"], "pending");
    let again = keyed(Some("wait=10")).await.unwrap();
    assert_eq!(applied(&again).as_deref(), Some("wait=10"));
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["message_id"], first["message_id"]);
    assert!(again["queue_id"].is_string(), "{again}");
    stop.cancel();
}

#[tokio::test]
async fn a_permanent_refusal_at_submission_is_send_failed_with_the_reply() {
    // The worker talks straight to the sink that answers 5xx to every recipient.
    let app = TestApp::spawn(&[
        ("MAILAPI_SMTP_HOST", "127.0.0.1"),
        ("MAILAPI_SMTP_PORT", "2526"),
        ("MAILAPI_SMTP_USERNAME", ""),
        ("MAILAPI_SMTP_PASSWORD", ""),
    ])
    .await;
    app.domain("wait.test", true).await;
    let admin = app.admin_token().await;
    let stop = start_worker(&app);
    let body = json!({"from": "s@wait.test", "to": ["x@sink-hard.test"], "body": {"text": "x"}});
    let resp = send(&app, &admin, Some("wait=10"), &body).await;
    assert_eq!(applied(&resp).as_deref(), Some("wait=10"));
    let got = testkit::assert_error(resp, 500, "SEND_FAILED").await;
    assert!(
        got["message"].as_str().unwrap().contains("5.1.1"),
        "the MTA's reply: {got}"
    );
    let id = got["message_id"].as_str().expect("the stored message's id");
    let status: Value = app
        .get(&format!("/mail/{id}/status"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "failed");
    stop.cancel();
}

#[tokio::test]
async fn nothing_to_submit_answers_at_once_and_time_running_out_answers_pending() {
    let app = TestApp::spawn(&[]).await;
    app.domain("wait.test", true).await;
    let admin = app.admin_token().await;
    sqlx::query(
        "insert into suppressions (domain, email, reason, source)
         values ('wait.test', 'gone@example.net', 'test', 'manual')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    // No worker runs in this test.
    let suppressed =
        json!({"from": "s@wait.test", "to": ["gone@example.net"], "body": {"text": "x"}});
    let started = Instant::now();
    let resp = send(&app, &admin, Some("wait=30"), &suppressed).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(applied(&resp).as_deref(), Some("wait=30"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "failed");
    assert_eq!(v["queue_id"], Value::Null);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a message with nothing to submit must not wait out the preference"
    );

    let pending = json!({"from": "s@wait.test", "to": ["x@sink-ok.test"], "body": {"text": "x"}});
    let resp = send(&app, &admin, Some("wait=1"), &pending).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(applied(&resp).as_deref(), Some("wait=1"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "pending");
    assert_eq!(v["queue_id"], Value::Null);
}

/// Twenty requests wait at once on an API whose pool has two connections: if a waiting request
/// held a connection the others (and a status read) would time out with 503. Then a worker
/// starts and every one of them answers with its own queue id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_requests_hold_no_database_connection() {
    let app = TestApp::spawn(&[("MAILAPI_DATABASE_MAX_CONNECTIONS", "2")]).await;
    app.domain("wait.test", true).await;
    let admin = app.admin_token().await;
    let body = json!({"from": "s@wait.test", "to": ["x@sink-ok.test"], "body": {"text": "x"}});
    let waiting: Vec<_> = (0..20)
        .map(|_| {
            let (http, url, token, body) = (
                app.http.clone(),
                app.api("/mail/send"),
                admin.clone(),
                body.clone(),
            );
            tokio::spawn(async move {
                http.post(url)
                    .header("X-MAILAPI-TOKEN", token)
                    .header("Prefer", "wait=25")
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    // Let them all be stored and parked.
    let mut stored = 0;
    for _ in 0..100 {
        stored = sqlx::query_scalar::<_, i64>("select count(*) from messages")
            .fetch_one(&app.db)
            .await
            .unwrap();
        if stored == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, 20);
    let id: uuid::Uuid = sqlx::query_scalar("select id from messages limit 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    for _ in 0..5 {
        let resp = app.get(&format!("/mail/{id}/status"), Some(&admin)).await;
        assert_eq!(
            resp.status(),
            200,
            "the API still has connections to serve reads"
        );
    }
    let stop = start_worker(&app);
    let mut queue_ids = std::collections::HashSet::new();
    for w in waiting {
        let resp = w.await.unwrap();
        assert_eq!(resp.status(), 202);
        let v: Value = resp.json().await.unwrap();
        queue_ids.insert(v["queue_id"].as_str().expect("submitted").to_owned());
    }
    assert_eq!(queue_ids.len(), 20, "each message its own queue id");
    stop.cancel();
}
