//! Authentication errors, the token API, the error shape and health checks.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

#[tokio::test]
async fn every_auth_error_code() {
    let app = TestApp::spawn(&[]).await;
    assert_error(app.get("/tokens/me", None).await, 401, "NO_API_TOKEN").await;
    assert_error(app.get("/tokens/me", Some("")).await, 401, "NO_API_TOKEN").await;
    assert_error(
        app.get("/tokens/me", Some("garbage")).await,
        401,
        "INVALID_TOKEN",
    )
    .await;
    let unknown = shared::token::TokenSecret::generate();
    assert_error(
        app.get("/tokens/me", Some(unknown.expose())).await,
        401,
        "INVALID_TOKEN",
    )
    .await;

    // Expired.
    let (expired, _) = api::tokens::create_token(
        &app.db,
        api::auth::TokenType::Admin,
        None,
        "old",
        Some(Utc::now() - chrono::Duration::minutes(1)),
    )
    .await
    .unwrap();
    assert_error(
        app.get("/tokens/me", Some(expired.expose())).await,
        401,
        "TOKEN_EXPIRED",
    )
    .await;

    // A user token on an admin-only route.
    let domain = app.domain("auth.test", true).await;
    let user = app.mailbox_with_token("u@auth.test", domain).await;
    assert_error(app.get("/tokens", Some(&user)).await, 403, "ACCESS_DENIED").await;
}

#[tokio::test]
async fn tokens_me_matches_the_spec() {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    let resp = app.get("/tokens/me", Some(&admin)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    for key in [
        "id",
        "token_prefix",
        "token_type",
        "email",
        "name",
        "is_active",
        "created_at",
        "last_used_at",
        "expires_at",
    ] {
        assert!(body.get(key).is_some(), "missing {key} in {body}");
    }
    assert_eq!(body["token_type"], "admin");
    assert_eq!(body["email"], Value::Null);
    assert_eq!(body["is_active"], true);
    assert_eq!(body["token_prefix"].as_str().unwrap(), &admin[5..13]);
    let created = body["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
    assert!(
        body["last_used_at"].is_string(),
        "the current use counts: {body}"
    );

    let domain = app.domain("me.test", true).await;
    let user = app.mailbox_with_token("person@me.test", domain).await;
    let body: Value = app
        .get("/tokens/me", Some(&user))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["token_type"], "user");
    assert_eq!(body["email"], "person@me.test");
}

#[tokio::test]
async fn last_used_at_is_written_in_batches() {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    assert_eq!(app.get("/tokens/me", Some(&admin)).await.status(), 200);
    let mut written = None;
    for _ in 0..80 {
        written = sqlx::query_scalar::<_, Option<chrono::DateTime<Utc>>>(
            "select last_used_at from api_tokens where token_prefix = $1",
        )
        .bind(&admin[5..13])
        .fetch_one(&app.db)
        .await
        .unwrap();
        if written.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(written.is_some(), "last_used_at never reached the database");
}

#[tokio::test]
async fn create_list_and_revoke_tokens() {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    let domain = app.domain("tok.test", true).await;
    let _ = app.mailbox_with_token("owner@tok.test", domain).await;

    // A user token bound to a mailbox.
    let resp = app
        .post_json("/tokens", &admin, &json!({"name": "ci", "token_type": "user", "email": "owner@tok.test", "expires_in_days": 30}))
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("mapi_"));
    assert_eq!(created["email"], "owner@tok.test");
    assert!(created["expires_at"].is_string());
    let id = created["id"].as_i64().unwrap();

    // The secret is not stored, only its hash.
    let stored: Vec<u8> = sqlx::query_scalar("select token_hash from api_tokens where id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    let dump: String =
        sqlx::query_scalar("select row_to_json(t)::text from api_tokens t where id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(!dump.contains(&secret[5..]), "secret stored in the clear");

    let me: Value = app
        .get("/tokens/me", Some(&secret))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "ci");

    // Listed without the secret.
    let list = app.get("/tokens", Some(&admin)).await.text().await.unwrap();
    assert!(!list.contains(&secret), "list shows a secret");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["total"], 3);

    // Bad requests.
    assert_error(
        app.post_json(
            "/tokens",
            &admin,
            &json!({"name": "x", "token_type": "user"}),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_error(
        app.post_json(
            "/tokens",
            &admin,
            &json!({"name": "x", "token_type": "root"}),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_error(
        app.post_json(
            "/tokens",
            &admin,
            &json!({"name": "x", "token_type": "user", "email": "nobody@tok.test"}),
        )
        .await,
        404,
        "MAILBOX_NOT_FOUND",
    )
    .await;
    assert_error(
        app.post_json(
            "/tokens",
            &secret,
            &json!({"name": "x", "token_type": "admin"}),
        )
        .await,
        403,
        "ACCESS_DENIED",
    )
    .await;

    // Revoke: the token stops working at once here, and within the cache TTL everywhere.
    let other = app.replica().await;
    assert_eq!(other.get("/tokens/me", Some(&secret)).await.status(), 200);
    let resp = app
        .http
        .delete(app.api(&format!("/tokens/{id}")))
        .header("X-MAILAPI-TOKEN", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_error(
        app.get("/tokens/me", Some(&secret)).await,
        401,
        "TOKEN_EXPIRED",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_error(
        other.get("/tokens/me", Some(&secret)).await,
        401,
        "TOKEN_EXPIRED",
    )
    .await;
    let resp = app
        .http
        .delete(app.api("/tokens/999999"))
        .header("X-MAILAPI-TOKEN", &admin)
        .send()
        .await
        .unwrap();
    assert_error(resp, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn errors_have_the_spec_shape() {
    let app = TestApp::spawn(&[("MAILAPI_MAX_BODY_BYTES", "4096")]).await;
    let admin = app.admin_token().await;
    assert_error(
        app.get("/no/such/route", Some(&admin)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    let resp = app.http.get(app.url("/nothing-here")).send().await.unwrap();
    assert_error(resp, 404, "NOT_FOUND").await;
    let resp = app.http.put(app.url("/health")).send().await.unwrap();
    assert_error(resp, 405, "METHOD_NOT_ALLOWED").await;

    let post = |body: &'static str| {
        app.http
            .post(app.api("/tokens"))
            .header("X-MAILAPI-TOKEN", &admin)
            .header("content-type", "application/json")
            .body(body)
    };
    assert_error(post("{not json").send().await.unwrap(), 400, "INVALID_JSON").await;
    let body = assert_error(
        post(r#"{"name": 5, "token_type": "admin"}"#)
            .send()
            .await
            .unwrap(),
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["field"], "name", "{body}");
    let body = assert_error(
        post(r#"{"token_type": "admin"}"#).send().await.unwrap(),
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert!(body["message"].as_str().unwrap().contains("name"), "{body}");

    let big = format!(
        r#"{{"name": "{}", "token_type": "admin"}}"#,
        "x".repeat(10_000)
    );
    let resp = app
        .http
        .post(app.api("/tokens"))
        .header("X-MAILAPI-TOKEN", &admin)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_error(resp, 413, "PAYLOAD_TOO_LARGE").await;
}

#[tokio::test]
async fn health_and_ready() {
    let app = TestApp::spawn(&[]).await;
    let resp = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app.http.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
}

#[tokio::test]
async fn ready_reports_an_unreachable_database() {
    testkit::require_redis().await;
    shared::install_crypto_provider();
    // Port 1 on loopback: nothing listens there.
    let settings = testkit::settings(
        "postgres://nobody@127.0.0.1:1/none",
        &format!("t-{}", uuid::Uuid::new_v4().simple()),
        &[],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(api::run(settings, listener, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("http://{addr}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = http
        .get(format!("http://{addr}/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    // An authenticated request needs the database: 503, in the error shape.
    let token = shared::token::TokenSecret::generate();
    let resp = http
        .get(format!("http://{addr}/api/v1/tokens/me"))
        .header("X-MAILAPI-TOKEN", token.expose())
        .send()
        .await
        .unwrap();
    assert_error(resp, 503, "SERVICE_UNAVAILABLE").await;
    shutdown.cancel();
}
