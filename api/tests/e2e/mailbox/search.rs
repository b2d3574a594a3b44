//! Search by subject, sender and body, with snippets.

use testkit::assert_error;

use super::Fixture;
use super::support::{
    LATIN1_SUBJECT, append, latin1_message, messages, nested_message, plain_message,
};

#[tokio::test]
async fn search_subject_sender_body_with_snippets() {
    let f = Fixture::new().await;
    for i in 1..=3 {
        append(&f.alice, "INBOX", None, &plain_message(&f.alice, i)).await;
    }
    let latin_uid = append(&f.alice, "INBOX", None, &latin1_message(&f.alice)).await;
    let nested_uid = append(&f.alice, "INBOX", None, &nested_message(&f.alice)).await;
    let base = format!("/mailbox/{}/search", f.alice);

    // Body, non-ASCII, in an ISO-8859-1 message: found, snippet around the match.
    let r = f
        .get_json(&format!("{base}?q=K%C3%B6ln"), &f.alice_token)
        .await;
    assert_eq!(r["query"], "Köln");
    assert_eq!(r["total"], 1, "{r}");
    let hit = &messages(&r)[0];
    assert_eq!(hit["uid"], latin_uid);
    assert_eq!(hit["folder"], "INBOX");
    assert_eq!(hit["subject"], LATIN1_SUBJECT);
    assert_eq!(hit["from"]["email"], "juergen@example.com");
    assert_eq!(hit["date"], "2026-11-24T08:30:00Z");
    assert!(hit["snippet"].as_str().unwrap().contains("Köln"), "{hit}");

    // Subject match; the snippet comes from the body of a multipart message.
    let r = f
        .get_json(&format!("{base}?q=QUARTERLY&folder=INBOX"), &f.alice_token)
        .await;
    assert_eq!(r["total"], 1);
    assert_eq!(messages(&r)[0]["uid"], nested_uid);
    assert!(
        messages(&r)[0]["snippet"]
            .as_str()
            .unwrap()
            .contains("quarterly report attached")
    );

    // Sender, several hits, newest first, limit.
    let r = f
        .get_json(&format!("{base}?q=example.com&limit=2"), &f.alice_token)
        .await;
    assert_eq!(r["total"], 5);
    let uids: Vec<u64> = messages(&r)
        .iter()
        .map(|m| m["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(uids, [u64::from(nested_uid), u64::from(latin_uid)]);

    // Restricting fields (beyond the spec): "budget" is only in a body.
    let r = f
        .get_json(&format!("{base}?q=budget&in=subject,from"), &f.alice_token)
        .await;
    assert_eq!(r["total"], 0);
    let r = f
        .get_json(&format!("{base}?q=budget&in=body"), &f.alice_token)
        .await;
    assert_eq!(r["total"], 1);

    // A term that tries to add a command is only ever a search string.
    let r = f
        .get_json(&format!("{base}?q=%22%20ALL%20%22%5C"), &f.alice_token)
        .await;
    assert_eq!(r["total"], 0);

    for bad in [
        "q=a",
        "q=",
        "",
        "q=%20x%20",
        "q=ab%0D%0AA1%20LOGOUT",
        "q=ab&in=nope",
    ] {
        assert_error(
            f.get(&format!("{base}?{bad}"), &f.alice_token).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
    }
}
