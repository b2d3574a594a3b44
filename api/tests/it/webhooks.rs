//! `/api/v1/webhooks` as a client meets it: the answers' shapes, the checks on input, who sees
//! which endpoint, and secrets that are shown once and stored sealed. Delivery itself is tested
//! with the worker (worker/tests/it/webhooks.rs).

use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

async fn patch(app: &TestApp, path: &str, token: &str, body: &Value) -> reqwest::Response {
    app.http
        .patch(app.api(path))
        .header("X-MAILAPI-TOKEN", token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn delete(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.http
        .delete(app.api(path))
        .header("X-MAILAPI-TOKEN", token)
        .send()
        .await
        .unwrap()
}

const URL: &str = "http://127.0.0.1:9/hook";

#[tokio::test]
async fn create_shows_the_secret_once_and_stores_it_sealed() {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    let resp = app
        .post_json(
            "/webhooks",
            &admin,
            &json!({"url": URL, "events": ["recipient.delivered", "recipient.bounced"]}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["success"], true);
    let hook = &v["webhook"];
    let secret = hook["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(hook["url"], URL);
    assert_eq!(
        hook["events"],
        json!(["recipient.delivered", "recipient.bounced"])
    );
    assert_eq!(hook["domain"], Value::Null);
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["final_only"], false);
    assert_eq!(hook["batch_size"], 1);
    assert!(hook["created_at"].as_str().unwrap().ends_with('Z'));
    let id = hook["id"].as_i64().unwrap();

    let shown: Value = app
        .get(&format!("/webhooks/{id}"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(shown["webhook"].get("secret").is_none());
    assert_eq!(shown["webhook"]["id"], id);
    let listed: Value = app
        .get("/webhooks", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], 1);
    assert!(listed["webhooks"][0].get("secret").is_none());

    // Sealed: neither the secret nor its key bytes are in the row.
    let stored: Vec<u8> =
        sqlx::query_scalar("select secret_ciphertext from webhook_endpoints where id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let key = shared::webhook::secret_key(secret).unwrap();
    assert!(!stored.windows(key.len()).any(|w| w == key.as_slice()));
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()));
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn(&[("MAILAPI_WEBHOOK_ALLOW_PRIVATE", "false")]).await;
    let admin = app.admin_token().await;
    let cases = [
        json!({"url": "ftp://x.test/", "events": ["*"]}),
        json!({"url": "http://user:pw@x.test/", "events": ["*"]}),
        json!({"url": "http://127.0.0.1:8080/", "events": ["*"]}),
        json!({"url": "http://169.254.169.254/latest/meta-data/", "events": ["*"]}),
        json!({"url": "http://localhost/", "events": ["*"]}),
        json!({"url": "http://[::1]/", "events": ["*"]}),
        json!({"url": "http://10.0.0.1/", "events": ["*"]}),
        json!({"url": "http://93.184.215.14/", "events": []}),
        json!({"url": "http://93.184.215.14/", "events": ["message.sent"]}),
        json!({"url": "http://93.184.215.14/", "events": ["*"], "batch_size": 0}),
        json!({"url": "http://93.184.215.14/", "events": ["*"], "batch_size": 101}),
        json!({"url": "http://93.184.215.14/\r\nX: y", "events": ["*"]}),
        json!({"url": format!("http://93.184.215.14/{}", "a".repeat(2048)), "events": ["*"]}),
    ];
    for body in cases {
        let resp = app.post_json("/webhooks", &admin, &body).await;
        assert_error(resp, 400, "VALIDATION_ERROR").await;
    }
    let resp = app
        .post_json(
            "/webhooks",
            &admin,
            &json!({"url": URL, "events": ["*"], "secret": "mine"}),
        )
        .await;
    assert_eq!(resp.status(), 400, "unknown fields are refused");
    let count: i64 = sqlx::query_scalar("select count(*) from webhook_endpoints")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
    // A public address is fine.
    let resp = app
        .post_json(
            "/webhooks",
            &admin,
            &json!({"url": "http://93.184.215.14:8080/h", "events": ["*"]}),
        )
        .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn tokens_see_only_their_own_endpoints_and_their_domains() {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    let a = app.domain("a.test", true).await;
    let b = app.domain("b.test", true).await;
    let alice = app.mailbox_with_token("alice@a.test", a).await;
    let bob = app.mailbox_with_token("bob@b.test", b).await;

    // A user token's endpoint covers its own mail; a domain needs manage_domains on it.
    let resp = app
        .post_json("/webhooks", &alice, &json!({"url": URL, "events": ["*"]}))
        .await;
    assert_eq!(resp.status(), 201);
    let alices: i64 = resp.json::<Value>().await.unwrap()["webhook"]["id"]
        .as_i64()
        .unwrap();
    let resp = app
        .post_json(
            "/webhooks",
            &alice,
            &json!({"url": URL, "events": ["*"], "domain": "a.test"}),
        )
        .await;
    assert_error(resp, 403, "ACCESS_DENIED").await;
    let resp = app
        .post_json(
            "/webhooks",
            &admin,
            &json!({"url": URL, "events": ["*"], "domain": "b.test"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let bs_domain: i64 = resp.json::<Value>().await.unwrap()["webhook"]["id"]
        .as_i64()
        .unwrap();
    let resp = app
        .post_json(
            "/webhooks",
            &admin,
            &json!({"url": URL, "events": ["*"], "domain": "none.test"}),
        )
        .await;
    assert_error(resp, 404, "NOT_FOUND").await;

    // Bob sees neither; every route answers as for a missing id.
    let missing = app.get("/webhooks/999999", Some(&bob)).await;
    let missing_body = assert_error(missing, 404, "NOT_FOUND").await;
    for id in [alices, bs_domain] {
        let resp = app.get(&format!("/webhooks/{id}"), Some(&bob)).await;
        assert_eq!(assert_error(resp, 404, "NOT_FOUND").await, missing_body);
        for path in ["attempts", "dead-letters"] {
            let resp = app.get(&format!("/webhooks/{id}/{path}"), Some(&bob)).await;
            assert_error(resp, 404, "NOT_FOUND").await;
        }
        for path in ["rotate", "test"] {
            let resp = app
                .post_json(&format!("/webhooks/{id}/{path}"), &bob, &json!({}))
                .await;
            assert_error(resp, 404, "NOT_FOUND").await;
        }
        let resp = patch(
            &app,
            &format!("/webhooks/{id}"),
            &bob,
            &json!({"enabled": false}),
        )
        .await;
        assert_error(resp, 404, "NOT_FOUND").await;
        let resp = delete(&app, &format!("/webhooks/{id}"), &bob).await;
        assert_error(resp, 404, "NOT_FOUND").await;
    }
    let listed: Value = app.get("/webhooks", Some(&bob)).await.json().await.unwrap();
    assert_eq!(listed["total"], 0);

    // manage_domains on b.test shows b.test's endpoint to Bob.
    sqlx::query(
        "insert into permissions (mailbox_id, domain_id, permission)
         select m.id, $1, 'manage_domains' from mailboxes m where m.email = 'bob@b.test'",
    )
    .bind(b)
    .execute(&app.db)
    .await
    .unwrap();
    let listed: Value = app.get("/webhooks", Some(&bob)).await.json().await.unwrap();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["webhooks"][0]["id"], bs_domain);
    let listed: Value = app
        .get("/webhooks", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["webhooks"][0]["id"], alices);
    let listed: Value = app
        .get("/webhooks", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], 2);
}

#[tokio::test]
async fn patch_changes_only_what_is_given_and_delete_removes() {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    let resp = app
        .post_json(
            "/webhooks",
            &admin,
            &json!({"url": URL, "events": ["*"], "batch_size": 5}),
        )
        .await;
    let id = resp.json::<Value>().await.unwrap()["webhook"]["id"]
        .as_i64()
        .unwrap();
    let path = format!("/webhooks/{id}");
    let resp = patch(
        &app,
        &path,
        &admin,
        &json!({"enabled": false, "final_only": true}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["webhook"]["enabled"], false);
    assert_eq!(v["webhook"]["final_only"], true);
    assert_eq!(v["webhook"]["batch_size"], 5);
    assert_eq!(v["webhook"]["disabled_reason"], "disabled by its owner");
    let resp = patch(
        &app,
        &path,
        &admin,
        &json!({"enabled": true, "events": ["recipient.bounced"]}),
    )
    .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["webhook"]["enabled"], true);
    assert_eq!(v["webhook"]["disabled_reason"], Value::Null);
    assert_eq!(v["webhook"]["events"], json!(["recipient.bounced"]));
    let resp = patch(&app, &path, &admin, &json!({"batch_size": 0})).await;
    assert_error(resp, 400, "VALIDATION_ERROR").await;
    let resp = patch(&app, &path, &admin, &json!({"domain": "x.test"})).await;
    assert_eq!(resp.status(), 400, "the scope is fixed at creation");

    let resp = app
        .post_json(&format!("/webhooks/{id}/replay"), &admin, &json!({}))
        .await;
    assert_error(resp, 400, "VALIDATION_ERROR").await;
    let resp = app
        .post_json(
            &format!("/webhooks/{id}/replay"),
            &admin,
            &json!({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
        )
        .await;
    assert_error(resp, 400, "VALIDATION_ERROR").await;
    let resp = app
        .post_json(&format!("/webhooks/{id}/test"), &admin, &json!({}))
        .await;
    assert_eq!(resp.status(), 202);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["msg_id"], format!("test_{}", v["request_id"]));

    let resp = delete(&app, &path, &admin).await;
    assert_eq!(resp.status(), 200);
    let resp = app.get(&path, Some(&admin)).await;
    assert_error(resp, 404, "NOT_FOUND").await;
}
