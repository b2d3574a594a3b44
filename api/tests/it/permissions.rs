//! Every permission of the spec's table, with a token that holds it and one that does not, on
//! the holder's own domain and on another; plus the `manage_users` mailbox endpoints.

use api::access::{self, Permission};
use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

struct World {
    app: TestApp,
    admin: String,
    /// holder@a.test: every permission on a.test, none on b.test.
    holder: String,
    /// plain@a.test: no permission at all.
    plain: String,
}

async fn world() -> World {
    // Port 9 (discard) answers no DNS: verification still runs, every record reports an error.
    let app = TestApp::spawn(&[("MAILAPI_DNS_RESOLVER", "127.0.0.1:9")]).await;
    let admin = app.admin_token().await;
    let a = app.domain("a.test", true).await;
    let b = app.domain("b.test", true).await;
    let holder = app.mailbox_with_token("holder@a.test", a).await;
    let plain = app.mailbox_with_token("plain@a.test", a).await;
    app.mailbox_with_token("other@a.test", a).await;
    app.mailbox_with_token("other@b.test", b).await;
    let grant = json!({
        "email": "holder@a.test",
        "domain": "a.test",
        "permissions": ALL
    });
    let r = app.post_json("/permissions/bulk", &admin, &grant).await;
    assert_eq!(r.status(), 201);
    World {
        app,
        admin,
        holder,
        plain,
    }
}

const ALL: [&str; 5] = [
    "manage_users",
    "manage_domains",
    "view_mailbox",
    "view_stats",
    "send_mail",
];

/// The three cases a permission is tried in, as (token, domain, allowed?): a mailbox holding only
/// `perm` on a.test, on a.test and on b.test; and a mailbox holding every permission but `perm`
/// on a.test, so a check of the wrong permission fails the test too.
async fn cases(w: &World, perm: &str) -> Vec<(String, &'static str, bool)> {
    let a: i64 = sqlx::query_scalar("select id from domains where domain = 'a.test'")
        .fetch_one(&w.app.db)
        .await
        .unwrap();
    let only = w
        .app
        .mailbox_with_token(&format!("only-{perm}@a.test"), a)
        .await;
    let all_but = w
        .app
        .mailbox_with_token(&format!("allbut-{perm}@a.test"), a)
        .await;
    for (email, permissions) in [
        (format!("only-{perm}@a.test"), vec![perm]),
        (
            format!("allbut-{perm}@a.test"),
            ALL.into_iter().filter(|p| *p != perm).collect(),
        ),
    ] {
        let grant = json!({"email": email, "domain": "a.test", "permissions": permissions});
        let r = w.app.post_json("/permissions/bulk", &w.admin, &grant).await;
        assert_eq!(r.status(), 201);
    }
    vec![
        (only.clone(), "a.test", true),
        (only, "b.test", false),
        (all_but, "a.test", false),
    ]
}

async fn principal(app: &TestApp, token: &str) -> api::auth::Principal {
    let secret = shared::token::TokenSecret::parse(token).unwrap();
    api::auth::load_principal(&app.db, &secret.hash())
        .await
        .unwrap()
        .unwrap()
}

async fn expect(resp: reqwest::Response, allowed: bool, ok: u16, denied_code: &str, what: &str) {
    if allowed {
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, ok, "{what}: {body}");
    } else {
        let body = assert_error(resp, 403, denied_code).await;
        assert!(body["message"].is_string(), "{what}");
    }
}

#[tokio::test]
async fn manage_users_is_needed_for_every_mailbox_operation() {
    let w = world().await;
    let app = &w.app;
    for (i, (token, d, allowed)) in cases(&w, "manage_users").await.into_iter().enumerate() {
        let token = token.as_str();
        let what = format!("manage_users {d} allowed={allowed}");
        let new = format!("new{i}@{d}");
        let r = app
            .post_json(
                &format!("/domains/{d}/users"),
                token,
                &json!({"email": new, "password": "password123"}),
            )
            .await;
        expect(r, allowed, 201, "ACCESS_DENIED", &what).await;
        let r = app.get(&format!("/domains/{d}/users"), Some(token)).await;
        expect(r, allowed, 200, "ACCESS_DENIED", &what).await;
        let r = app
            .http
            .patch(app.api(&format!("/domains/{d}/users/other@{d}")))
            .header("X-MAILAPI-TOKEN", token)
            .json(&json!({"name": "Renamed"}))
            .send()
            .await
            .unwrap();
        expect(r, allowed, 200, "ACCESS_DENIED", &what).await;
        let r = app
            .http
            .delete(app.api(&format!("/domains/{d}/users/{new}")))
            .header("X-MAILAPI-TOKEN", token)
            .send()
            .await
            .unwrap();
        expect(r, allowed, 200, "ACCESS_DENIED", &what).await;
    }
    // Only the allowed case changed anything.
    let names: Vec<(String, Option<String>)> = sqlx::query_as(
        "select email, name from mailboxes where email like 'other@%' order by email",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        names,
        [
            ("other@a.test".into(), Some("Renamed".into())),
            ("other@b.test".into(), None)
        ]
    );
    // An admin may manage any domain.
    let r = app.get("/domains/b.test/users", Some(&w.admin)).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn manage_domains_is_needed_for_dns_records_and_their_verification() {
    let w = world().await;
    let app = &w.app;
    for (token, d, allowed) in cases(&w, "manage_domains").await {
        let token = token.as_str();
        let what = format!("manage_domains {d} allowed={allowed}");
        let r = app.get(&format!("/domains/{d}/dns"), Some(token)).await;
        expect(r, allowed, 200, "ACCESS_DENIED", &what).await;
        let r = app
            .post_json(&format!("/domains/{d}/dns/verify"), token, &json!({}))
            .await;
        if allowed {
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["all_ok"], false, "{v}");
            assert!(
                v["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r["status"] == "error"),
                "{v}"
            );
        } else {
            expect(r, false, 200, "ACCESS_DENIED", &what).await;
        }
    }
    // Without the permission an unknown domain looks exactly like a known one.
    let r = app.get("/domains/nowhere.test/dns", Some(&w.holder)).await;
    assert_error(r, 403, "ACCESS_DENIED").await;
    let r = app.get("/domains/nowhere.test/dns", Some(&w.admin)).await;
    assert_error(r, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn send_mail_is_needed_to_send_as_another_address_of_the_domain() {
    let w = world().await;
    let app = &w.app;
    for (token, d, allowed) in cases(&w, "send_mail").await {
        let token = token.as_str();
        let what = format!("send_mail {d} allowed={allowed}");
        let body = json!({"from": format!("other@{d}"), "to": ["x@example.net"], "subject": "s", "body": {"text": "t"}});
        let r = app.post_json("/mail/send", token, &body).await;
        expect(r, allowed, 202, "SENDER_NOT_AUTHORIZED", &what).await;
    }
    // Every mailbox may still send as itself.
    let own = json!({"from": "plain@a.test", "to": ["x@example.net"], "body": {"text": "t"}});
    assert_eq!(
        app.post_json("/mail/send", &w.plain, &own).await.status(),
        202
    );
}

#[tokio::test]
async fn view_mailbox_and_view_stats_follow_the_grants() {
    let w = world().await;
    let app = &w.app;
    for (token, d, allowed) in cases(&w, "view_mailbox").await {
        let p = principal(app, &token).await;
        let mailbox = access::require_mailbox_access(&app.db, &p, &format!("other@{d}")).await;
        assert_eq!(
            mailbox.is_ok(),
            allowed,
            "view_mailbox {d} allowed={allowed}"
        );
        if let Err(e) = mailbox {
            assert_eq!(e.code(), "ACCESS_DENIED");
        }
    }
    for (token, d, allowed) in cases(&w, "view_stats").await {
        let p = principal(app, &token).await;
        let stats = access::require_permission(&app.db, &p, Permission::ViewStats, d).await;
        assert_eq!(stats.is_ok(), allowed, "view_stats {d} allowed={allowed}");
    }
    // Over HTTP too: a mailbox endpoint refuses before it touches IMAP.
    let r = app
        .get("/mailbox/other@a.test/folders", Some(&w.plain))
        .await;
    assert_error(r, 403, "ACCESS_DENIED").await;
    // A revoked grant stops working at once.
    sqlx::query("delete from permissions where permission = 'view_stats'")
        .execute(&app.db)
        .await
        .unwrap();
    let p = principal(app, &w.holder).await;
    assert!(
        access::require_permission(&app.db, &p, Permission::ViewStats, "a.test")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn mailbox_users_are_validated_updated_and_removed() {
    let w = world().await;
    let app = &w.app;
    let users = "/domains/a.test/users";
    let holder = w.holder.as_str();
    let post = |body: Value| async move { app.post_json(users, holder, &body).await };

    let r = post(json!({"email": "ann@a.test", "password": "password123", "name": "Ann"})).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user"]["email"], "ann@a.test");
    assert_eq!(v["user"]["name"], "Ann");
    assert_eq!(v["user"]["active"], true);
    assert!(
        !v.to_string().contains("password"),
        "no hash in responses: {v}"
    );

    let e = assert_error(
        post(json!({"email": "ann@b.test", "password": "password123"})).await,
        400,
        "INVALID_EMAIL",
    )
    .await;
    assert_eq!(e["field"], "email");
    let e = assert_error(
        post(json!({"email": "bob@a.test", "password": "short"})).await,
        400,
        "INVALID_PASSWORD",
    )
    .await;
    assert_eq!(e["field"], "password");
    let e = assert_error(
        post(json!({"email": "bob@a.test"})).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(e["field"], "password");
    assert_error(
        post(json!({"email": "ann@a.test", "password": "password123"})).await,
        409,
        "MAILBOX_EXISTS",
    )
    .await;

    let list: Value = app.get(users, Some(&w.holder)).await.json().await.unwrap();
    assert_eq!(list["total"], 4);
    let emails: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        [
            "ann@a.test",
            "holder@a.test",
            "other@a.test",
            "plain@a.test"
        ]
    );

    let patch = |path: String, body: Value| async move {
        app.http
            .patch(app.api(&path))
            .header("X-MAILAPI-TOKEN", holder)
            .json(&body)
            .send()
            .await
            .unwrap()
    };
    // A new password is stored as a hash Dovecot verifies.
    let r = patch(
        format!("{users}/ann@a.test"),
        json!({"password": "new-password-1"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let hash: String =
        sqlx::query_scalar("select password_hash from mailboxes where email = 'ann@a.test'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(shared::password::verify_password("new-password-1", &hash));
    assert_error(
        patch(format!("{users}/ann@a.test"), json!({"password": "short"})).await,
        400,
        "INVALID_PASSWORD",
    )
    .await;
    assert_error(
        patch(format!("{users}/ann@a.test"), json!({})).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_error(
        patch(format!("{users}/ghost@a.test"), json!({"name": "x"})).await,
        404,
        "MAILBOX_NOT_FOUND",
    )
    .await;
    // A mailbox of another domain is not reachable through this one.
    assert_error(
        patch(format!("{users}/other@b.test"), json!({"name": "x"})).await,
        404,
        "MAILBOX_NOT_FOUND",
    )
    .await;

    // Deactivating a mailbox disables its tokens; deleting it removes them.
    let r = patch(format!("{users}/plain@a.test"), json!({"active": false})).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user"]["active"], false);
    assert_error(
        app.get("/tokens/me", Some(&w.plain)).await,
        401,
        "TOKEN_EXPIRED",
    )
    .await;
    let r = app
        .http
        .delete(app.api(&format!("{users}/plain@a.test")))
        .header("X-MAILAPI-TOKEN", &w.holder)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_error(
        app.get("/tokens/me", Some(&w.plain)).await,
        401,
        "INVALID_TOKEN",
    )
    .await;
    let r = app
        .http
        .delete(app.api(&format!("{users}/plain@a.test")))
        .header("X-MAILAPI-TOKEN", &w.holder)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "MAILBOX_NOT_FOUND").await;
}
