//! Approval of a signed-up domain: its DKIM key, and Ed25519 signing turned on by its managers.

use chrono::Utc;
use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

use super::{form, signup};

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
