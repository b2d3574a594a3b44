//! Flags, moves and deletes.

use serde_json::{Value, json};
use testkit::assert_error;

use super::Fixture;
use super::support::{append, plain_message};

#[tokio::test]
async fn flags_move_and_delete() {
    let f = Fixture::new().await;
    let uid = append(&f.alice, "INBOX", None, &plain_message(&f.alice, 1)).await;
    let msg =
        |uid: u32, folder: &str| format!("/mailbox/{}/messages/{uid}?folder={folder}", f.alice);
    let post =
        async |path: String, body: Value| f.app.post_json(&path, &f.alice_token, &body).await;

    let r = post(
        format!("/mailbox/{}/messages/{uid}/flags", f.alice),
        json!({"add": ["\\Seen", "\\Flagged"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let mut flags: Vec<String> = serde_json::from_value(body["flags"].clone()).unwrap();
    flags.sort();
    assert_eq!(flags, ["\\Flagged", "\\Seen"]);
    let r = post(
        format!("/mailbox/{}/messages/{uid}/flags", f.alice),
        json!({"remove": ["\\Seen"]}),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["flags"], json!(["\\Flagged"]));
    assert_eq!(
        f.get_json(&msg(uid, "INBOX"), &f.alice_token).await["flags"],
        json!(["\\Flagged"])
    );
    assert_error(
        post(
            format!("/mailbox/{}/messages/{uid}/flags", f.alice),
            json!({"add": ["\\Deleted"]}),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_error(
        post(
            format!("/mailbox/{}/messages/999/flags", f.alice),
            json!({"add": ["\\Seen"]}),
        )
        .await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;

    // Move: to a missing folder is refused; to Spam works and reports the new UID.
    assert_error(
        post(
            format!("/mailbox/{}/messages/{uid}/move", f.alice),
            json!({"to_folder": "Nowhere"}),
        )
        .await,
        400,
        "INVALID_FOLDER",
    )
    .await;
    let r = post(
        format!("/mailbox/{}/messages/{uid}/move", f.alice),
        json!({"to_folder": "Spam"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let moved: Value = r.json().await.unwrap();
    assert_eq!(moved["to_folder"], "Spam");
    let spam_uid = moved["new_uid"].as_u64().unwrap() as u32;
    assert_error(
        f.get(&msg(uid, "INBOX"), &f.alice_token).await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;
    let in_spam = f.get_json(&msg(spam_uid, "Spam"), &f.alice_token).await;
    assert_eq!(in_spam["subject"], "Page message 1");

    // Delete: to Trash, then from Trash for good.
    let r = f
        .app
        .http
        .delete(f.app.api(&msg(spam_uid, "Spam")))
        .header("X-MAILAPI-TOKEN", &f.alice_token)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["to_folder"], "Trash", "{body}");
    assert_eq!(body["deleted"], false);
    let trash_uid = body["new_uid"].as_u64().unwrap() as u32;
    f.get_json(&msg(trash_uid, "Trash"), &f.alice_token).await;
    let r = f
        .app
        .http
        .delete(f.app.api(&msg(trash_uid, "Trash")))
        .header("X-MAILAPI-TOKEN", &f.alice_token)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["deleted"], true, "{body}");
    assert_error(
        f.get(&msg(trash_uid, "Trash"), &f.alice_token).await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;
}
