//! Every list has a maximum page size of 200: a larger `limit` is capped to it, not refused,
//! and a `limit` or `offset` that is zero (limit), negative or not a whole number is a 400
//! naming the parameter. (The mailbox listing and search are in tests/e2e/mailbox, against
//! Dovecot.)

use serde_json::Value;
use testkit::{TestApp, assert_error};

/// Inserts `n` messages from `sender` straight into the database: only the listing is tested.
async fn store_messages(app: &TestApp, sender: &str, n: i32) {
    sqlx::query(
        "insert into messages (id, from_email, from_domain, subject, rfc_message_id, payload,
                               size_bytes)
         select gen_random_uuid(), $1, split_part($1, '@', 2), 'm' || i,
                '<m' || i || '-' || gen_random_uuid() || '@page.test>', '{}'::json, 1
           from generate_series(1, $2) as i",
    )
    .bind(sender)
    .bind(n)
    .execute(&app.db)
    .await
    .unwrap();
}

async fn json(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.expect("JSON body");
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_larger_limit_is_capped_at_200() {
    let app = TestApp::spawn(&[]).await;
    app.domain("page.test", true).await;
    let admin = app.admin_token().await;
    store_messages(&app, "sender@page.test", 250).await;
    for i in 0..205 {
        api::tokens::create_token(
            &app.db,
            api::auth::TokenType::Admin,
            None,
            &format!("t{i}"),
            None,
        )
        .await
        .unwrap();
    }

    let sent = json(app.get("/mail/sent?limit=500", Some(&admin)).await).await;
    assert_eq!(sent["total"], 250);
    assert_eq!(sent["messages"].as_array().unwrap().len(), 200);
    let rest = json(
        app.get("/mail/sent?limit=500&offset=200", Some(&admin))
            .await,
    )
    .await;
    assert_eq!(rest["messages"].as_array().unwrap().len(), 50);
    // The default stays 50.
    let default = json(app.get("/mail/sent", Some(&admin)).await).await;
    assert_eq!(default["messages"].as_array().unwrap().len(), 50);

    let tokens = json(app.get("/tokens?limit=1000", Some(&admin)).await).await;
    assert!(
        tokens["total"].as_i64().unwrap() > 200,
        "{}",
        tokens["total"]
    );
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 200);
}

#[tokio::test]
async fn bad_page_parameters_are_400s_naming_the_parameter() {
    let app = TestApp::spawn(&[]).await;
    app.domain("page.test", true).await;
    let admin = app.admin_token().await;
    for list in [
        "/mail/sent",
        "/tokens",
        "/domains/pending",
        "/suppressions",
        "/domains/page.test/users",
    ] {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=-1", "limit"),
            ("limit=ten", "limit"),
            ("limit=2.5", "limit"),
            ("offset=-1", "offset"),
            ("offset=x", "offset"),
        ] {
            let body = assert_error(
                app.get(&format!("{list}?{query}"), Some(&admin)).await,
                400,
                "VALIDATION_ERROR",
            )
            .await;
            assert_eq!(body["field"], field, "{list}?{query}: {body}");
        }
    }
}
