//! Who may read which mailbox.

use serde_json::json;
use testkit::assert_error;

use super::Fixture;
use super::support::{append, nested_message};

#[tokio::test]
async fn access_rules() {
    let f = Fixture::new().await;
    let uid = append(&f.bob, "INBOX", None, &nested_message(&f.bob)).await;
    let b = &f.bob;
    let reads = [
        format!("/mailbox/{b}/folders"),
        format!("/mailbox/{b}/messages"),
        format!("/mailbox/{b}/messages/{uid}"),
        format!("/mailbox/{b}/messages/{uid}/attachment/0"),
        format!("/mailbox/{b}/search?q=quarterly"),
    ];
    // Alice's user token: refused everywhere on Bob's mailbox, reads and changes alike.
    for path in &reads {
        assert_error(f.get(path, &f.alice_token).await, 403, "ACCESS_DENIED").await;
        assert_error(f.app.get(path, None).await, 401, "NO_API_TOKEN").await;
    }
    assert_error(
        f.app
            .post_json(
                &format!("/mailbox/{b}/messages/{uid}/flags"),
                &f.alice_token,
                &json!({"add": ["\\Seen"]}),
            )
            .await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    assert_error(
        f.app
            .post_json(
                &format!("/mailbox/{b}/messages/{uid}/move"),
                &f.alice_token,
                &json!({"to_folder": "Trash"}),
            )
            .await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    let r = f
        .app
        .http
        .delete(f.app.api(&format!("/mailbox/{b}/messages/{uid}")))
        .header("X-MAILAPI-TOKEN", &f.alice_token)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "ACCESS_DENIED").await;
    // Case in the address does not get around it.
    assert_error(
        f.get(
            &format!("/mailbox/{}/folders", b.to_uppercase()),
            &f.alice_token,
        )
        .await,
        403,
        "ACCESS_DENIED",
    )
    .await;

    // Bob's own token, and an admin token, read it.
    for token in [&f.bob_token, &f.admin] {
        for path in &reads {
            let r = f.get(path, token).await;
            assert_eq!(r.status(), 200, "{path}");
        }
    }

    // view_mailbox on the domain opens every mailbox there to Alice.
    let alice_id: i64 = sqlx::query_scalar("select id from mailboxes where email = $1")
        .bind(&f.alice)
        .fetch_one(&f.app.db)
        .await
        .unwrap();
    sqlx::query("insert into permissions (mailbox_id, domain_id, permission) values ($1, $2, 'view_mailbox')")
        .bind(alice_id)
        .bind(f.domain_id)
        .execute(&f.app.db)
        .await
        .unwrap();
    for path in &reads {
        let r = f.get(path, &f.alice_token).await;
        assert_eq!(r.status(), 200, "{path}");
    }
    // ...but not another domain's mailboxes.
    assert_error(
        f.get("/mailbox/someone@other-domain.test/folders", &f.alice_token)
            .await,
        403,
        "ACCESS_DENIED",
    )
    .await;
}
