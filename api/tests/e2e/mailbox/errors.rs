//! Error codes: bad requests, IMAP injection refused or taken literally, a stuck IMAP server.

use serde_json::{Value, json};
use std::time::Duration;
use testkit::assert_error;

use super::Fixture;
use super::support::{append, plain_message};

#[tokio::test]
async fn error_codes() {
    let f = Fixture::new().await;
    let uid = append(&f.alice, "INBOX", None, &plain_message(&f.alice, 1)).await;
    let a = &f.alice;
    let t = &f.alice_token;

    for path in [
        format!("/mailbox/{a}/messages?folder=Nope"),
        format!("/mailbox/{a}/messages/{uid}?folder=Nope"),
        format!("/mailbox/{a}/search?q=hello&folder=Nope"),
        // CR/LF/NUL never reach the server.
        format!("/mailbox/{a}/messages?folder=INBOX%0D%0AA1%20DELETE%20INBOX"),
        format!("/mailbox/{a}/messages?folder=IN%00BOX"),
        format!("/mailbox/{a}/messages?folder="),
    ] {
        assert_error(f.get(&path, t).await, 400, "INVALID_FOLDER").await;
    }
    // Quotes and backslashes are escaped, not interpreted.
    assert_error(
        f.get(
            &format!("/mailbox/{a}/messages?folder=INBOX%22%20%22x%5C"),
            t,
        )
        .await,
        400,
        "INVALID_FOLDER",
    )
    .await;
    for path in [
        format!("/mailbox/{a}/messages/{}", uid + 1),
        format!("/mailbox/{a}/messages/0"),
        format!("/mailbox/{a}/messages/4294967295"),
    ] {
        assert_error(f.get(&path, t).await, 404, "MESSAGE_NOT_FOUND").await;
    }
    assert_error(
        f.get(&format!("/mailbox/{a}/messages/abc"), t).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    // Unknown mailbox: 404 for whoever may look (admin, or view_mailbox on its domain).
    let ghost = format!("ghost@{}", f.domain);
    assert_error(
        f.get(&format!("/mailbox/{ghost}/folders"), &f.admin).await,
        404,
        "MAILBOX_NOT_FOUND",
    )
    .await;
    // ...and 403 for a user token, exactly as for an existing one.
    assert_error(
        f.get(&format!("/mailbox/{ghost}/folders"), t).await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    // An inactive mailbox cannot log in to Dovecot: to the API it does not exist.
    sqlx::query("update mailboxes set active = false where email = $1")
        .bind(&f.bob)
        .execute(&f.app.db)
        .await
        .unwrap();
    assert_error(
        f.get(&format!("/mailbox/{}/folders", f.bob), &f.admin)
            .await,
        404,
        "MAILBOX_NOT_FOUND",
    )
    .await;
    // The inbox still works after all that.
    let list = f.get_json(&format!("/mailbox/{a}/messages"), t).await;
    assert_eq!(list["total"], 1);
}
/// IMAP injection through every value that reaches Dovecot: folder names (list, read, search,
/// move), search terms and UIDs. Each is refused with a 4xx or matched literally, never run as
/// a command, and the mailbox is intact afterwards (same messages, same folders).
/// Seen failing before the fix it came with: `INBOX/../..` got Dovecot's `[CANNOT] Invalid
/// mailbox name`, which the API answered 500 IMAP_ERROR instead of 400 INVALID_FOLDER.
#[tokio::test]
async fn imap_injection_is_refused_or_taken_literally() {
    let f = Fixture::new().await;
    let uid = append(&f.alice, "INBOX", None, &plain_message(&f.alice, 1)).await;
    let a = &f.alice;
    let t = &f.alice_token;
    let folders_before = f.get_json(&format!("/mailbox/{a}/folders"), t).await;

    // Literals, wildcards and hierarchy tricks as folder names: no such folder, or not a name.
    for folder in [
        "%7B5%7D",               // {5}
        "%7B5%2B%7D%0D%0Aabcde", // {5+} CRLF abcde
        "*",
        "%25",             // %
        "INBOX%2F..%2F..", // INBOX/../..
        "%2Fx",            // /x
        "a%2F%2Fb",        // a//b
        "..",
        "INBOX%20(FLAGS)",
        "%22INBOX%22", // "INBOX"
        "INBOX%09x",   // TAB
    ] {
        for path in [
            format!("/mailbox/{a}/messages?folder={folder}"),
            format!("/mailbox/{a}/messages/{uid}?folder={folder}"),
            format!("/mailbox/{a}/search?q=hello&folder={folder}"),
        ] {
            assert_error(f.get(&path, t).await, 400, "INVALID_FOLDER").await;
        }
    }
    for to_folder in [
        "Spam\r\nA1 DELETE INBOX",
        "{5}",
        "Spam\" DELETE \"INBOX",
        "*",
        "",
    ] {
        let resp = f
            .app
            .http
            .post(f.app.api(&format!("/mailbox/{a}/messages/{uid}/move")))
            .header("X-MAILAPI-TOKEN", t)
            .json(&json!({ "to_folder": to_folder }))
            .send()
            .await
            .unwrap();
        assert_error(resp, 400, "INVALID_FOLDER").await;
    }

    // Search terms are data: literal syntax, quotes and IMAP keywords find nothing.
    for q in [
        "%7B5%7D",               // {5}
        "%7B5%2B%7D",            // {5+}
        "x%22%20OR%20ALL%20%22", // x" OR ALL "
        "ALL",
        "1%3A*", // 1:*
    ] {
        let found = f.get_json(&format!("/mailbox/{a}/search?q={q}"), t).await;
        assert_eq!(found["total"], 0, "q={q}: {found}");
    }
    let long = "a".repeat(513);
    assert_error(
        f.get(&format!("/mailbox/{a}/search?q={long}"), t).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;

    // UIDs are numbers, never sets or ranges.
    for id in ["1:*", "1,2", "1%3A*", "*", "-1", "1%20", "%201"] {
        assert_error(
            f.get(&format!("/mailbox/{a}/messages/{id}"), t).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
    }

    // Nothing moved, nothing deleted, no folder made.
    let list = f.get_json(&format!("/mailbox/{a}/messages"), t).await;
    assert_eq!(list["total"], 1);
    let folders_after = f.get_json(&format!("/mailbox/{a}/folders"), t).await;
    let names = |v: &Value| {
        let mut n: Vec<(String, u64)> = v["folders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_owned(),
                    f["messages"].as_u64().unwrap(),
                )
            })
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&folders_before), names(&folders_after));
}
#[tokio::test]
async fn a_stuck_imap_server_gives_imap_error() {
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let f = Fixture::with_overrides(&[("MAILAPI_IMAP_PORT", &port)]).await;
    let started = std::time::Instant::now();
    assert_error(
        f.get(&format!("/mailbox/{}/folders", f.alice), &f.alice_token)
            .await,
        500,
        "IMAP_ERROR",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(20));
    held.abort();

    // Nothing listening at all (Dovecot down): IMAP_ERROR at once.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let f = Fixture::with_overrides(&[("MAILAPI_IMAP_PORT", &port)]).await;
    assert_error(
        f.get(&format!("/mailbox/{}/messages", f.alice), &f.alice_token)
            .await,
        500,
        "IMAP_ERROR",
    )
    .await;
}
