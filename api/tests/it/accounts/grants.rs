//! Permission grants in bulk: granted, skipped, listed and revoked.

use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

use super::{form, signup};

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
