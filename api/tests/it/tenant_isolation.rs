//! Every route addressed by an object id answers a second tenant exactly as it answers an id
//! that does not exist: the same status and the same bytes, without the id, so a 404 tells no
//! one whether somebody else's object is there.
//!
//! Seen failing against deliberately broken builds: with the message lookup's owner check
//! removed, Bob's request for Alice's message status was answered 200 with her message; with
//! the permission check removed from `DELETE /suppressions/{domain}/{email}`, Mallory's delete
//! of Alice's domain's suppression answered differently from a missing one.

use serde_json::{Value, json};
use testkit::TestApp;

async fn raw(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

#[tokio::test]
async fn foreign_object_ids_answer_exactly_like_missing_ones() {
    let app = TestApp::spawn(&[]).await;
    let d = app.domain("tenants.test", true).await;
    let alice = app.mailbox_with_token("alice@tenants.test", d).await;
    let bob = app.mailbox_with_token("bob@tenants.test", d).await;
    let sent: Value = app
        .post_json(
            "/mail/send",
            &alice,
            &json!({"from": "alice@tenants.test", "to": ["r@example.net"],
                    "subject": "mine", "body": {"text": "private"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let hers = sent["message_id"].as_str().expect("message_id").to_owned();
    let none = uuid::Uuid::new_v4().to_string();
    let me: Value = app
        .get("/tokens/me", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    let her_token = me["id"].as_i64().expect("token id");
    let no_token = her_token + 1_000_000;

    for (path_hers, path_none) in [
        (
            format!("/mail/{hers}/status"),
            format!("/mail/{none}/status"),
        ),
        (
            format!("/mail/{hers}/events"),
            format!("/mail/{none}/events"),
        ),
    ] {
        let foreign = raw(app.get(&path_hers, Some(&bob)).await).await;
        let missing = raw(app.get(&path_none, Some(&bob)).await).await;
        assert_eq!(foreign.0, 404, "{path_hers}: {}", foreign.1);
        assert_eq!(foreign, missing, "{path_hers} vs {path_none}");
        assert!(
            !foreign.1.contains(&hers),
            "the id is echoed: {}",
            foreign.1
        );
    }

    let client = reqwest::Client::new();
    let delete = |id: i64| {
        client
            .delete(app.api(&format!("/tokens/{id}")))
            .header("X-MAILAPI-TOKEN", &bob)
            .send()
    };
    let foreign = raw(delete(her_token).await.unwrap()).await;
    let missing = raw(delete(no_token).await.unwrap()).await;
    assert_eq!(foreign.0, 404, "{}", foreign.1);
    assert_eq!(foreign, missing);
    assert!(!foreign.1.contains(&her_token.to_string()));
    // Alice's token still works: Bob's attempt changed nothing.
    assert_eq!(app.get("/tokens/me", Some(&alice)).await.status(), 200);

    // Objects addressed by domain and address: a user of another domain gets, for Alice's
    // domain's users and suppressions, exactly what he gets for ones that do not exist, and
    // for a domain that does not exist; none of them echoes the address.
    let other = app.domain("elsewhere.test", true).await;
    let mallory = app
        .mailbox_with_token("mallory@elsewhere.test", other)
        .await;
    let admin = app.admin_token().await;
    let added = app
        .post_json(
            "/suppressions",
            &admin,
            &json!({"domain": "tenants.test", "email": "victim@example.net"}),
        )
        .await;
    assert_eq!(added.status(), 201);
    let request = |method: reqwest::Method, path: String| {
        let req = client
            .request(method.clone(), app.api(&path))
            .header("X-MAILAPI-TOKEN", &mallory);
        let req = if method == reqwest::Method::PATCH {
            req.json(&json!({"name": "taken over"}))
        } else {
            req
        };
        async move { raw(req.send().await.unwrap()).await }
    };
    for (method, existing, absent, no_domain) in [
        (
            reqwest::Method::DELETE,
            "/suppressions/tenants.test/victim@example.net",
            "/suppressions/tenants.test/nobody@example.net",
            "/suppressions/nowhere.test/victim@example.net",
        ),
        (
            reqwest::Method::PATCH,
            "/domains/tenants.test/users/alice@tenants.test",
            "/domains/tenants.test/users/ghost@tenants.test",
            "/domains/nowhere.test/users/alice@nowhere.test",
        ),
        (
            reqwest::Method::DELETE,
            "/domains/tenants.test/users/alice@tenants.test",
            "/domains/tenants.test/users/ghost@tenants.test",
            "/domains/nowhere.test/users/alice@nowhere.test",
        ),
    ] {
        let foreign = request(method.clone(), existing.to_owned()).await;
        let missing = request(method.clone(), absent.to_owned()).await;
        let nowhere = request(method.clone(), no_domain.to_owned()).await;
        assert!(foreign.0 >= 400, "{method} {existing}: {}", foreign.1);
        assert_eq!(foreign, missing, "{method} {existing} vs {absent}");
        assert_eq!(foreign, nowhere, "{method} {existing} vs {no_domain}");
        assert!(
            !foreign.1.contains("victim") && !foreign.1.contains("alice"),
            "{}",
            foreign.1
        );
    }
    // Nothing changed: the suppression and Alice's mailbox are still there.
    let list: Value = app
        .get("/suppressions?domain=tenants.test", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(list.to_string().contains("victim@example.net"), "{list}");
    assert_eq!(app.get("/tokens/me", Some(&alice)).await.status(), 200);
}
