//! Self-signup, approval, permission grants and mailbox users, on a fresh database per test.

use std::collections::BTreeSet;

use chrono::Utc;
use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

async fn signup(app: &TestApp, body: &Value) -> reqwest::Response {
    app.http
        .post(app.api("/auth/signup"))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn form(domain: &str) -> Value {
    json!({
        "domain": domain,
        "email": format!("admin@{domain}"),
        "password": "SecurePassword123",
        "name": "Your Name"
    })
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.db).await.unwrap()
}

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
    let bounce = app.settings.bounce_domain.clone();
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

#[tokio::test]
async fn approval_creates_a_dkim_key_activates_and_never_shows_the_private_key() {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    let body: Value = signup(&app, &form("approve.test"))
        .await
        .json()
        .await
        .unwrap();
    let user = body["token"].as_str().unwrap().to_owned();

    assert_error(
        app.post_json("/domains/approve.test/approve", &user, &json!({}))
            .await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    assert_error(
        app.post_json("/domains/nowhere.test/approve", &admin, &json!({}))
            .await,
        404,
        "NOT_FOUND",
    )
    .await;

    let resp = app
        .post_json("/domains/approve.test/approve", &admin, &json!({}))
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        json!({"success": true, "message": "Domain approve.test has been approved and activated",
               "domain": "approve.test", "active": true})
    );
    let (active, selector, private, public): (bool, String, String, String) = sqlx::query_as(
        "select active, dkim_selector, dkim_private_key, dkim_public_key from domains where domain = 'approve.test'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(active);
    assert_eq!(selector, format!("mail{}", Utc::now().format("%Y%m")));
    assert!(private.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(public.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
    // The key is one the worker's signer accepts.
    worker::dkim::SigningKey::from_pem(shared::dkim::Algorithm::Rsa, &private).unwrap();

    assert_error(
        app.post_json("/domains/approve.test/approve", &admin, &json!({}))
            .await,
        409,
        "DOMAIN_ALREADY_ACTIVE",
    )
    .await;
    let pending: Value = app
        .get("/domains/pending", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pending["total"], 0);

    // No response carries the private key, in any form.
    let dns = app
        .get("/domains/approve.test/dns", Some(&user))
        .await
        .text()
        .await
        .unwrap();
    let private_body: String = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for shown in [&text, &dns] {
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(!shown.contains(&private_body[..40]), "{shown}");
    }
    let dns: Value = serde_json::from_str(&dns).unwrap();
    assert_eq!(dns["dkim_selector"], selector);
}

async fn patch_domain(app: &TestApp, token: &str, domain: &str, body: Value) -> reqwest::Response {
    app.http
        .patch(app.api(&format!("/domains/{domain}")))
        .header("X-MAILAPI-TOKEN", token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ed25519_signing_is_off_by_default_and_only_managers_of_an_approved_domain_turn_it_on() {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    let body: Value = signup(&app, &form("ed.test")).await.json().await.unwrap();
    // Signup grants manage_domains to the first mailbox.
    let owner = body["token"].as_str().unwrap().to_owned();
    let other: Value = signup(&app, &form("other.test"))
        .await
        .json()
        .await
        .unwrap();
    let other = other["token"].as_str().unwrap().to_owned();
    let on = json!({"dkim_ed25519": true});

    for (body, field) in [
        (json!({}), "body"),
        (json!({"dkim_ed25519": "yes"}), "dkim_ed25519"),
    ] {
        let v = assert_error(
            patch_domain(&app, &owner, "ed.test", body).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(v["field"], field, "{v}");
    }
    assert_error(
        patch_domain(&app, &owner, "ed.test", json!({"ed25519": true})).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_error(
        patch_domain(&app, &other, "ed.test", on.clone()).await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    assert_error(
        patch_domain(&app, &admin, "nowhere.test", on.clone()).await,
        404,
        "NOT_FOUND",
    )
    .await;
    // Pending: no RSA key yet, and Ed25519 never signs alone.
    assert_error(
        patch_domain(&app, &owner, "ed.test", on.clone()).await,
        409,
        "DOMAIN_NOT_APPROVED",
    )
    .await;

    let r = app
        .post_json("/domains/ed.test/approve", &admin, &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let enabled = |db: sqlx::PgPool| async move {
        sqlx::query_as::<_, (bool, Option<String>, Option<String>)>(
            "select dkim_ed25519_enabled, dkim_ed25519_selector, dkim_ed25519_private_key
               from domains where domain = 'ed.test'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    assert_eq!(
        enabled(app.db.clone()).await,
        (false, None, None),
        "off by default"
    );

    let v: Value = patch_domain(&app, &owner, "ed.test", on.clone())
        .await
        .json()
        .await
        .unwrap();
    let selector = format!("ed{}", Utc::now().format("%Y%m"));
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["dkim_ed25519"], true);
    assert_eq!(v["dkim_ed25519_selector"], selector.as_str());
    assert!(!v.to_string().contains("PRIVATE"), "{v}");
    let (on_now, _, private) = enabled(app.db.clone()).await;
    assert!(on_now);
    let private = private.unwrap();
    // A key the worker's signer accepts.
    worker::dkim::SigningKey::from_pem(shared::dkim::Algorithm::Ed25519, &private).unwrap();
    let dns: Value = app
        .get("/domains/ed.test/dns", Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dns["dkim_ed25519_selector"], selector.as_str());
    let dkim: Vec<&Value> = dns["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["purpose"] == "dkim")
        .collect();
    assert_eq!(dkim.len(), 2, "{dns}");
    assert_eq!(dkim[1]["name"], format!("{selector}._domainkey.ed.test"));

    // Off keeps the key; on again reuses it (the published record stays valid).
    let v: Value = patch_domain(&app, &owner, "ed.test", json!({"dkim_ed25519": false}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["dkim_ed25519"], false);
    let dns: Value = app
        .get("/domains/ed.test/dns", Some(&owner))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dns["dkim_ed25519_selector"], Value::Null);
    assert!(!dns.to_string().contains("k=ed25519"));
    patch_domain(&app, &admin, "ed.test", on).await;
    assert_eq!(
        enabled(app.db.clone()).await,
        (true, Some(selector), Some(private))
    );
}

#[tokio::test]
async fn bulk_grants_report_granted_and_skipped_and_can_be_listed_and_revoked() {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    let body: Value = signup(&app, &form("domain.com"))
        .await
        .json()
        .await
        .unwrap();
    let user = body["token"].as_str().unwrap().to_owned();
    let all = [
        "manage_users",
        "manage_domains",
        "view_mailbox",
        "view_stats",
        "send_mail",
    ];
    let req = json!({"email": "admin@domain.com", "permissions": all, "domain": "domain.com"});

    assert_error(
        app.post_json("/permissions/bulk", &user, &req).await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    let resp = app.post_json("/permissions/bulk", &admin, &req).await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({
            "success": true,
            "message": "Granted 4 permissions, skipped 1 already existing",
            "granted": ["manage_users", "view_mailbox", "view_stats", "send_mail"],
            "skipped": ["manage_domains"]
        })
    );
    let again: Value = app
        .post_json("/permissions/bulk", &admin, &req)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["granted"], json!([]));
    assert_eq!(again["skipped"].as_array().unwrap().len(), 5);

    let bad = json!({"email": "admin@domain.com", "permissions": ["send_mail", "fly"], "domain": "domain.com"});
    let err = assert_error(
        app.post_json("/permissions/bulk", &admin, &bad).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(err["field"], "permissions[1]");
    let nobody =
        json!({"email": "nobody@domain.com", "permissions": ["send_mail"], "domain": "domain.com"});
    assert_error(
        app.post_json("/permissions/bulk", &admin, &nobody).await,
        404,
        "MAILBOX_NOT_FOUND",
    )
    .await;
    let nodomain =
        json!({"email": "admin@domain.com", "permissions": ["send_mail"], "domain": "none.test"});
    assert_error(
        app.post_json("/permissions/bulk", &admin, &nodomain).await,
        404,
        "NOT_FOUND",
    )
    .await;

    // Listed by the mailbox itself and by an admin; nobody else.
    let mine: Value = app
        .get("/permissions?email=admin@domain.com", Some(&user))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["total"], 5);
    let other = app.domain("other.test", true).await;
    let stranger = app.mailbox_with_token("x@other.test", other).await;
    assert_error(
        app.get("/permissions?email=admin@domain.com", Some(&stranger))
            .await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    let listed: Value = app
        .get("/permissions?email=admin@domain.com", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let send = listed["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["permission"] == "send_mail")
        .unwrap()
        .clone();
    assert_eq!(send["domain"], "domain.com");
    let id = send["id"].as_i64().unwrap();

    // Revoked by an admin only; the grant then no longer works.
    let path = app.api(&format!("/permissions/{id}"));
    let r = app
        .http
        .delete(&path)
        .header("X-MAILAPI-TOKEN", &user)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "ACCESS_DENIED").await;
    let r = app
        .http
        .delete(&path)
        .header("X-MAILAPI-TOKEN", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .delete(&path)
        .header("X-MAILAPI-TOKEN", &admin)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "NOT_FOUND").await;
    let after: Value = app
        .get("/permissions?email=admin@domain.com", Some(&user))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["total"], 4);
    assert!(!after.to_string().contains("send_mail"));
}
