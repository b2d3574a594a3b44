//! Folders with their counts and sizes, and message lists page by page.

use serde_json::{Value, json};
use testkit::assert_error;

use super::Fixture;
use super::support::{
    LATIN1_SUBJECT, append, imap_as, latin1_message, messages, nested_message, plain_message,
};

#[tokio::test]
async fn folders_with_counts_and_sizes() {
    let f = Fixture::new().await;
    let a = plain_message(&f.alice, 1);
    let b = latin1_message(&f.alice);
    append(&f.alice, "INBOX", Some("(\\Seen)"), &a).await;
    append(&f.alice, "INBOX", None, &b).await;
    // A folder with a non-ASCII name travels as modified UTF-7 and comes back readable.
    let mut s = imap_as(&f.alice).await;
    s.create("Entw&APw-rfe 2024").await.unwrap();
    s.logout().await.ok();
    append(&f.alice, "Entw&APw-rfe 2024", None, &a).await;

    let body = f
        .get_json(&format!("/mailbox/{}/folders", f.alice), &f.alice_token)
        .await;
    assert_eq!(body["mailbox"], f.alice);
    let folders = body["folders"].as_array().unwrap();
    let names: Vec<&str> = folders.iter().filter_map(|x| x["name"].as_str()).collect();
    for expected in ["INBOX", "Sent", "Drafts", "Trash", "Spam", "Entwürfe 2024"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let inbox = folders.iter().find(|x| x["name"] == "INBOX").unwrap();
    assert_eq!(inbox["messages"], 2);
    assert_eq!(inbox["unread"], 1);
    assert_eq!(inbox["size"], (a.len() + b.len()) as u64, "{inbox}");
    let sent = folders.iter().find(|x| x["name"] == "Sent").unwrap();
    assert_eq!(sent["messages"], 0);
    assert_eq!(sent["size"], 0);

    let list = f
        .get_json(
            &format!("/mailbox/{}/messages?folder=Entw%C3%BCrfe%202024", f.alice),
            &f.alice_token,
        )
        .await;
    assert_eq!(list["folder"], "Entwürfe 2024");
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn message_list_pages_newest_first() {
    let f = Fixture::new().await;
    let mut uids = Vec::new();
    for i in 1..=5 {
        let flags = (i == 2).then_some("(\\Seen \\Flagged)");
        uids.push(append(&f.alice, "INBOX", flags, &plain_message(&f.alice, i)).await);
    }
    let nested_uid = append(&f.alice, "INBOX", None, &nested_message(&f.alice)).await;
    let latin_uid = append(&f.alice, "INBOX", None, &latin1_message(&f.alice)).await;
    let base = format!("/mailbox/{}/messages", f.alice);

    // Defaults: INBOX, 50, newest first.
    let all = f.get_json(&base, &f.alice_token).await;
    assert_eq!(all["folder"], "INBOX");
    assert_eq!(all["total"], 7);
    let got: Vec<u64> = messages(&all)
        .iter()
        .map(|m| m["uid"].as_u64().unwrap())
        .collect();
    let mut want: Vec<u64> = uids.iter().map(|u| u64::from(*u)).collect();
    want.push(u64::from(nested_uid));
    want.push(u64::from(latin_uid));
    want.reverse();
    assert_eq!(got, want);

    // Decoded fields.
    let latin = &messages(&all)[0];
    assert_eq!(latin["subject"], LATIN1_SUBJECT);
    assert_eq!(
        latin["from"],
        json!({"name": "Jürgen Müller", "email": "juergen@example.com"})
    );
    assert_eq!(latin["to"], json!([{"name": "Alice", "email": f.alice}]));
    assert_eq!(latin["date"], "2026-11-24T08:30:00Z");
    assert_eq!(latin["message_id"], "<latin1@example.com>");
    assert_eq!(latin["has_attachments"], false);
    assert_eq!(latin["flags"], json!([]));
    assert_eq!(latin["size"], latin1_message(&f.alice).len() as u64);
    let nested = &messages(&all)[1];
    assert_eq!(nested["has_attachments"], true);
    assert_eq!(nested["from"]["name"], "Карл Öhman");
    let second = messages(&all).iter().find(|m| m["uid"] == uids[1]).unwrap();
    let mut flags: Vec<&str> = second["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    flags.sort();
    assert_eq!(flags, ["\\Flagged", "\\Seen"]);

    // Pages.
    let p = f
        .get_json(&format!("{base}?limit=2&offset=2"), &f.alice_token)
        .await;
    assert_eq!(p["total"], 7);
    let got: Vec<u64> = messages(&p)
        .iter()
        .map(|m| m["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(got, want[2..4]);
    let last = f
        .get_json(&format!("{base}?limit=5&offset=5"), &f.alice_token)
        .await;
    assert_eq!(messages(&last).len(), 2);
    let past = f
        .get_json(&format!("{base}?offset=7"), &f.alice_token)
        .await;
    assert!(messages(&past).is_empty());
    assert_eq!(past["total"], 7);

    for (bad, field) in [
        ("limit=0", "limit"),
        ("limit=-3", "limit"),
        ("offset=-1", "offset"),
        ("limit=abc", "limit"),
        ("offset=1.5", "offset"),
    ] {
        let body = assert_error(
            f.get(&format!("{base}?{bad}"), &f.alice_token).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(body["field"], field, "{bad}: {body}");
    }
}

/// The spec's "max 200": with more messages than that in the folder, `limit=500` is capped to a
/// page of 200 (listing and search), not refused.
#[tokio::test]
async fn pages_are_capped_at_200() {
    let f = Fixture::new().await;
    const STORED: u32 = 210;
    let mut s = imap_as(&f.alice).await;
    for i in 1..=STORED {
        s.append("INBOX", None, None, &plain_message(&f.alice, i % 60))
            .await
            .expect("APPEND");
    }
    s.logout().await.ok();

    let list = f
        .get_json(
            &format!("/mailbox/{}/messages?limit=500", f.alice),
            &f.alice_token,
        )
        .await;
    assert_eq!(list["total"], STORED);
    assert_eq!(list["limit"], 200);
    assert_eq!(messages(&list).len(), 200);
    let rest = f
        .get_json(
            &format!("/mailbox/{}/messages?limit=500&offset=200", f.alice),
            &f.alice_token,
        )
        .await;
    assert_eq!(messages(&rest).len(), (STORED - 200) as usize);

    let found = f
        .get_json(
            &format!("/mailbox/{}/search?q=Plain%20body&limit=500", f.alice),
            &f.alice_token,
        )
        .await;
    assert_eq!(found["total"], STORED);
    assert_eq!(messages(&found).len(), 200);
    let body = assert_error(
        f.get(
            &format!("/mailbox/{}/search?q=Plain%20body&offset=-1", f.alice),
            &f.alice_token,
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["field"], "offset", "{body}");
}
