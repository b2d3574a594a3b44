//! Delivery tracking end to end, seen through the API: sends to a local mailbox, an unknown
//! local user, and domains routed to the accept-all, 4xx and 5xx sinks, plus one message to all
//! of them; the worker's log follower turns Postfix's log into per-recipient status, the events
//! endpoint shows the evidence, and a hard bounce lands on the suppression list.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

async fn send(app: &TestApp, token: &str, from: &str, to: &[String]) -> String {
    let body = json!({"from": from, "to": to, "subject": "tracking", "body": {"text": "hello"}});
    let resp = app.post_json("/mail/send", token, &body).await;
    assert_eq!(resp.status(), 202);
    let v: Value = resp.json().await.unwrap();
    v["message_id"].as_str().unwrap().to_owned()
}

/// Polls the status until every recipient has left `pending` and `want` holds.
async fn settled(app: &TestApp, token: &str, id: &str, want: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = app
            .get(&format!("/mail/{id}/status"), Some(token))
            .await
            .json()
            .await
            .unwrap();
        let all_moved = last["recipients"]
            .as_array()
            .is_some_and(|r| r.iter().all(|r| r["status"] != "pending"));
        if all_moved && want(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lease: Vec<(String, i64, String)> =
        sqlx::query_as("select log_name, byte_offset, updated_at::text from log_positions")
            .fetch_all(&app.db)
            .await
            .unwrap();
    panic!("message {id} did not settle: {last}; follower positions: {lease:?}");
}

fn recipient<'a>(status: &'a Value, email: &str) -> &'a Value {
    status["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["email"] == email)
        .unwrap_or_else(|| panic!("{email} not in {status}"))
}

#[tokio::test]
async fn every_outcome_shows_in_status_events_and_suppressions() {
    let app = TestApp::spawn_main_db(&[]).await;
    let d = format!(
        "trk-{}.test",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let domain_id: i64 =
        sqlx::query_scalar("insert into domains (domain, active) values ($1, true) returning id")
            .bind(&d)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let sender = app
        .mailbox_with_token(&format!("sender@{d}"), domain_id)
        .await;
    app.mailbox_with_token(&format!("rcpt@{d}"), domain_id)
        .await;
    let admin = app.admin_token().await;
    let stop = app.start_worker().stop;

    let from = format!("sender@{d}");
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let local = format!("rcpt@{d}");
    let unknown = format!("nobody@{d}");
    let ok = format!("ok-{tag}@sink-ok.test");
    let soft = format!("soft-{tag}@sink-soft.test");
    let hard = format!("hard-{tag}@sink-hard.test");

    let a = send(&app, &sender, &from, std::slice::from_ref(&local)).await;
    let b = send(&app, &sender, &from, std::slice::from_ref(&unknown)).await;
    let c = send(&app, &sender, &from, std::slice::from_ref(&ok)).await;
    let dd = send(&app, &sender, &from, std::slice::from_ref(&soft)).await;
    let e = send(&app, &sender, &from, std::slice::from_ref(&hard)).await;
    let all = [
        local.clone(),
        unknown.clone(),
        ok.clone(),
        soft.clone(),
        hard.clone(),
    ];
    let f = send(&app, &sender, &from, &all).await;

    let s = settled(&app, &sender, &a, |s| s["status"] == "sent").await;
    assert_eq!(recipient(&s, &local)["status"], "sent");
    assert!(recipient(&s, &local)["delivered_at"].is_string(), "{s}");
    assert_eq!(recipient(&s, &local)["dsn_code"], "2.0.0");

    let s = settled(&app, &sender, &b, |s| s["status"] == "bounced").await;
    let r = recipient(&s, &unknown);
    assert_eq!(r["status"], "bounced");
    assert_eq!(r["dsn_code"], "5.1.1");
    assert!(
        r["smtp_response"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("user"),
        "{r}"
    );

    let s = settled(&app, &sender, &c, |s| s["status"] == "sent").await;
    assert_eq!(recipient(&s, &ok)["status"], "sent");

    let s = settled(&app, &sender, &dd, |_| true).await;
    let r = recipient(&s, &soft);
    assert_eq!(r["status"], "deferred", "{s}");
    assert!(
        r["smtp_response"].as_str().unwrap().contains("4.2.0"),
        "{r}"
    );
    assert_eq!(s["status"], "submitted", "still trying");

    let s = settled(&app, &sender, &e, |s| s["status"] == "bounced").await;
    let r = recipient(&s, &hard);
    assert_eq!(r["status"], "bounced");
    assert!(r["dsn_code"].as_str().unwrap().starts_with("5."), "{r}");

    let s = settled(&app, &sender, &f, |s| s["status"] == "partial").await;
    assert_eq!(recipient(&s, &local)["status"], "sent");
    assert_eq!(recipient(&s, &unknown)["status"], "bounced");
    assert_eq!(recipient(&s, &ok)["status"], "sent");
    assert_eq!(recipient(&s, &soft)["status"], "deferred");
    assert_eq!(recipient(&s, &hard)["status"], "bounced");

    // The timeline: accepted, submitted with the queue id, then one event per recipient outcome
    // carrying the log line as evidence.
    let ev: Value = app
        .get(&format!("/mail/{e}/events"), Some(&sender))
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(&kinds[..2], &["accepted", "submitted"], "{ev}");
    let bounce = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["status"] == "bounced")
        .unwrap_or_else(|| panic!("no bounce event in {ev}"));
    assert_eq!(bounce["recipient"], hard.as_str());
    assert!(
        bounce["evidence"]
            .as_str()
            .unwrap()
            .contains("status=bounced"),
        "{bounce}"
    );
    // Another user's token cannot see the timeline.
    let other = app
        .mailbox_with_token(&format!("other@{d}"), domain_id)
        .await;
    assert_error(
        app.get(&format!("/mail/{e}/events"), Some(&other)).await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;

    // The hard bounce suppressed the address for the sending domain; a new send skips it.
    let list: Value = app
        .get(&format!("/suppressions?domain={d}"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = list["suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&hard.as_str()), "{list}");
    let again = send(&app, &sender, &from, &[hard.clone(), ok.clone()]).await;
    let s: Value = app
        .get(&format!("/mail/{again}/status"), Some(&sender))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(recipient(&s, &hard)["status"], "suppressed");

    stop.cancel();
    sqlx::query("delete from domains where domain = $1")
        .bind(&d)
        .execute(&app.db)
        .await
        .unwrap();
}

#[tokio::test]
async fn suppressions_are_managed_per_domain() {
    let app = TestApp::spawn(&[]).await;
    let own = app.domain("own.test", true).await;
    app.domain("elsewhere.test", true).await;
    let manager = app.mailbox_with_token("boss@own.test", own).await;
    let plain = app.mailbox_with_token("plain@own.test", own).await;
    sqlx::query(
        "insert into permissions (mailbox_id, domain_id, permission)
         select id, $1, 'manage_domains' from mailboxes where email = 'boss@own.test'",
    )
    .bind(own)
    .execute(&app.db)
    .await
    .unwrap();
    let admin = app.admin_token().await;

    let add = json!({"domain": "own.test", "email": "Gone@Example.net", "reason": "asked"});
    let resp = app.post_json("/suppressions", &manager, &add).await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["email"], "gone@example.net");
    assert_eq!(v["source"], "manual");
    assert_error(
        app.post_json("/suppressions", &manager, &add).await,
        409,
        "SUPPRESSION_EXISTS",
    )
    .await;
    assert_error(
        app.post_json("/suppressions", &plain, &add).await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    let theirs = json!({"domain": "elsewhere.test", "email": "x@example.net"});
    assert_error(
        app.post_json("/suppressions", &manager, &theirs).await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    assert_eq!(
        app.post_json("/suppressions", &admin, &theirs)
            .await
            .status(),
        201
    );
    let bad = json!({"domain": "own.test", "email": "not an address"});
    assert_error(
        app.post_json("/suppressions", &manager, &bad).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;

    let mine: Value = app
        .get("/suppressions?domain=own.test", Some(&manager))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["total"], 1);
    assert_error(
        app.get("/suppressions?domain=elsewhere.test", Some(&manager))
            .await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    assert_error(
        app.get("/suppressions", Some(&manager)).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    let everything: Value = app
        .get("/suppressions", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(everything["total"], 2);

    let del = |t: &str| {
        app.http
            .delete(app.api("/suppressions/own.test/gone@example.net"))
            .header("X-MAILAPI-TOKEN", t.to_owned())
            .send()
    };
    assert_error(del(&plain).await.unwrap(), 403, "ACCESS_DENIED").await;
    assert_eq!(del(&manager).await.unwrap().status(), 200);
    assert_error(del(&manager).await.unwrap(), 404, "NOT_FOUND").await;
}
