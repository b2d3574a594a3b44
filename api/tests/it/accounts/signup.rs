//! Self-signup: what it creates, what it refuses, its limits, and a failure half way.

use chrono::Utc;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use testkit::{TestApp, assert_error};

use super::{count, form, signup};

#[tokio::test]
async fn signup_creates_a_pending_domain_an_active_mailbox_a_grant_and_a_token() {
    let app = TestApp::spawn(&[]).await;
    let resp = signup(&app, &form("YourDomain.com")).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "success",
            "token",
            "token_type",
            "email",
            "name",
            "domain",
            "domain_status",
            "expires_at",
            "message"
        ]),
        "exactly the spec's fields: {body}"
    );
    assert_eq!(body["success"], true);
    assert_eq!(body["token_type"], "user");
    assert_eq!(body["email"], "admin@yourdomain.com");
    assert_eq!(body["name"], "Your Name");
    assert_eq!(body["domain"], "yourdomain.com");
    assert_eq!(body["domain_status"], "pending");
    assert_eq!(
        body["message"],
        "Account created! Your domain 'yourdomain.com' is pending admin approval."
    );
    let expires: chrono::DateTime<Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - Utc::now()).num_hours() as f64 / 24.0;
    assert!(
        (29.9..=30.0).contains(&days),
        "30-day token, got {days} days"
    );

    // The token is a working user token for that mailbox.
    let token = body["token"].as_str().unwrap();
    let me: Value = app
        .get("/tokens/me", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["token_type"], "user");
    assert_eq!(me["email"], "admin@yourdomain.com");
    assert_eq!(me["expires_at"], body["expires_at"]);

    // Domain pending with its creator; mailbox active with a Dovecot-verifiable password.
    let (active, creator): (bool, Option<String>) =
        sqlx::query_as("select active, creator_email from domains where domain = 'yourdomain.com'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(!active);
    assert_eq!(creator.as_deref(), Some("admin@yourdomain.com"));
    let (mb_active, hash): (bool, String) = sqlx::query_as(
        "select active, password_hash from mailboxes where email = 'admin@yourdomain.com'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(mb_active);
    assert!(hash.starts_with("{SHA512-CRYPT}$6$"));
    assert!(shared::password::verify_password(
        "SecurePassword123",
        &hash
    ));
    let grants: Vec<String> = sqlx::query_scalar("select permission from permissions")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(grants, ["manage_domains"]);

    // It shows up in the admin's pending list, which a user token may not read.
    let admin = app.admin_token().await;
    let pending: Value = app
        .get("/domains/pending", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["success"], true);
    assert_eq!(pending["total"], 1);
    let d = &pending["domains"][0];
    assert_eq!(d["domain"], "yourdomain.com");
    assert_eq!(d["active"], false);
    assert_eq!(d["creator_email"], "admin@yourdomain.com");
    assert!(d["created"].as_str().unwrap().ends_with('Z'));
    assert_error(
        app.get("/domains/pending", Some(token)).await,
        403,
        "ACCESS_DENIED",
    )
    .await;
}

#[tokio::test]
async fn invalid_signups_get_clear_codes_and_create_nothing() {
    let app = TestApp::spawn(&[]).await;
    let cases = [
        (
            json!({"email": "a@x.test", "password": "12345678"}),
            "VALIDATION_ERROR",
            "domain",
        ),
        (
            json!({"domain": "x.test", "password": "12345678"}),
            "VALIDATION_ERROR",
            "email",
        ),
        (
            json!({"domain": "x.test", "email": "a@x.test"}),
            "VALIDATION_ERROR",
            "password",
        ),
        (
            json!({"domain": "not a domain", "email": "a@x.test", "password": "12345678"}),
            "VALIDATION_ERROR",
            "domain",
        ),
        (
            json!({"domain": "x.test", "email": "a@y.test", "password": "12345678"}),
            "INVALID_EMAIL",
            "email",
        ),
        (
            json!({"domain": "x.test", "email": "a@sub.x.test", "password": "12345678"}),
            "INVALID_EMAIL",
            "email",
        ),
        (
            json!({"domain": "x.test", "email": "not-an-email", "password": "12345678"}),
            "INVALID_EMAIL",
            "email",
        ),
        (
            json!({"domain": "x.test", "email": "a\r\nb@x.test", "password": "12345678"}),
            "INVALID_EMAIL",
            "email",
        ),
        (
            json!({"domain": "x.test", "email": "a@x.test", "password": "1234567"}),
            "INVALID_PASSWORD",
            "password",
        ),
        (
            json!({"domain": "x.test", "email": "a@x.test", "password": ""}),
            "INVALID_PASSWORD",
            "password",
        ),
        (
            json!({"domain": "x.test", "email": "a@x.test", "password": 12345678}),
            "VALIDATION_ERROR",
            "password",
        ),
        (
            json!({"domain": "x.test", "email": "a@x.test", "password": "12345678", "name": "a\nb"}),
            "VALIDATION_ERROR",
            "name",
        ),
    ];
    for (body, code, field) in cases {
        let err = assert_error(signup(&app, &body).await, 400, code).await;
        assert_eq!(err["field"], field, "{body} -> {err}");
    }
    assert_eq!(count(&app, "select count(*) from domains").await, 0);
    assert_eq!(count(&app, "select count(*) from mailboxes").await, 0);
    assert_eq!(count(&app, "select count(*) from api_tokens").await, 0);
}

#[tokio::test]
async fn a_duplicate_domain_is_409_and_the_fourth_attempt_in_an_hour_429() {
    let app = TestApp::spawn(&[]).await;
    assert_eq!(signup(&app, &form("dup.test")).await.status(), 201);
    for other in ["second", "third"] {
        let body = json!({"domain": "dup.test", "email": format!("{other}@dup.test"), "password": "12345678"});
        assert_error(signup(&app, &body).await, 409, "DOMAIN_EXISTS").await;
    }
    let fourth = signup(&app, &form("dup.test")).await;
    let retry: u64 = fourth.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_error(fourth, 429, "RATE_LIMITED").await;
    // The limit is per domain: another domain from the same client still signs up.
    assert_eq!(signup(&app, &form("other.test")).await.status(), 201);
    assert_eq!(count(&app, "select count(*) from mailboxes").await, 2);
    // The server's own bounce domain is never up for signup.
    let bounce = app.settings.bounce_domain.to_string();
    assert_error(signup(&app, &form(&bounce)).await, 409, "DOMAIN_EXISTS").await;
}

#[tokio::test]
async fn the_per_address_limit_covers_every_domain() {
    let app = TestApp::spawn(&[("MAILAPI_SIGNUPS_PER_IP_PER_HOUR", "2")]).await;
    assert_eq!(signup(&app, &form("one.test")).await.status(), 201);
    assert_eq!(signup(&app, &form("two.test")).await.status(), 201);
    let third = signup(&app, &form("three.test")).await;
    assert!(third.headers().contains_key("retry-after"));
    assert_error(third, 429, "RATE_LIMITED").await;
    assert_eq!(count(&app, "select count(*) from domains").await, 2);
}

#[tokio::test]
async fn a_signup_that_fails_half_way_leaves_nothing() {
    let app = TestApp::spawn(&[]).await;
    // A mailbox row that already holds the address the signup will want, filed under another
    // domain: the domain insert succeeds, the mailbox insert then fails.
    let other = app.domain("elsewhere.test", true).await;
    sqlx::query("insert into mailboxes (domain_id, local_part, email, password_hash) values ($1, 'admin', 'admin@half.test', 'x')")
        .bind(other)
        .execute(&app.db)
        .await
        .unwrap();
    assert_error(
        signup(&app, &form("half.test")).await,
        409,
        "MAILBOX_EXISTS",
    )
    .await;
    assert_eq!(
        count(
            &app,
            "select count(*) from domains where domain = 'half.test'"
        )
        .await,
        0
    );
    assert_eq!(count(&app, "select count(*) from permissions").await, 0);
    assert_eq!(count(&app, "select count(*) from api_tokens").await, 0);
}
