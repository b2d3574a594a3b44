//! Hostile input at the edges of what JSON and query strings allow: nesting 100,000 levels deep,
//! numbers past every integer type, and a body at the size limit. Each is refused with the
//! spec's error shape and a stable code, the process keeps answering, and nothing is stored or
//! queued.
//!
//! Seen failing against a deliberately broken setting: with `MAILAPI_MAX_BODY_BYTES` raised to
//! 64 MiB, the 17 MiB body got past the size limit (answered 400 by validation, not 413). The
//! nested `headers` must meet serde_json's recursion limit (128 levels), whose refusal and
//! message the test expects; a build without it would parse 100,000 levels on the request's
//! stack.

use serde_json::json;
use testkit::{TestApp, assert_error};

async fn nothing_stored(app: &TestApp) {
    let n: i64 = sqlx::query_scalar("select count(*) from messages")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(n, 0, "a refused request stored a message");
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn deep_nesting_huge_numbers_and_size_limits_are_refused_cleanly() {
    let app = TestApp::spawn(&[]).await;
    let d = app.domain("abuse.test", true).await;
    let token = app.mailbox_with_token("sender@abuse.test", d).await;
    let client = reqwest::Client::new();
    let send = |body: String| {
        client
            .post(app.api("/mail/send"))
            .header("X-MAILAPI-TOKEN", &token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };

    // 100,000 levels: as the whole body (typed deserialization stops at the first value of the
    // wrong type, long before the depth matters), and inside `headers`, which is read as JSON
    // first: there serde_json's recursion limit (128) refuses it.
    let whole = send(nested(100_000)).await.unwrap();
    assert_error(whole, 400, "VALIDATION_ERROR").await;
    let inside = format!(
        r#"{{"from": "sender@abuse.test", "to": ["r@example.net"], "subject": "s",
            "body": {{"text": "t"}}, "headers": {{"X-Deep": {}}}}}"#,
        nested(100_000)
    );
    let inside = send(inside).await.unwrap();
    let body = assert_error(inside, 400, "INVALID_JSON").await;
    assert!(body.to_string().contains("recursion limit"), "{body}");
    // Unbalanced, so no parser can accept it.
    let open = send("[".repeat(100_000)).await.unwrap();
    assert_eq!(open.status(), 400);

    // Numbers past u64 and below zero, where the schema wants a small count.
    for limit in ["100000000000000000000", "-1", "0", "1e3", "NaN"] {
        let resp = app
            .get(&format!("/mail/sent?limit={limit}"), Some(&token))
            .await;
        let body = assert_error(resp, 400, "VALIDATION_ERROR").await;
        assert!(
            body.to_string().contains("limit"),
            "the error names the parameter: {body}"
        );
    }
    // A number where a string belongs, and one too large for any integer type.
    let resp = send(
        json!({"from": "sender@abuse.test", "to": [1e308], "subject": "s", "body": {"text": "t"}})
            .to_string(),
    )
    .await
    .unwrap();
    assert_error(resp, 400, "VALIDATION_ERROR").await;

    // A string as long as the body limit allows: refused for its size, not by a crash.
    let huge = "a".repeat(17 * 1024 * 1024);
    let resp = send(
        json!({"from": "sender@abuse.test", "to": ["r@example.net"], "subject": huge, "body": {"text": "t"}})
            .to_string(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 413, "a body over MAILAPI_MAX_BODY_BYTES");

    nothing_stored(&app).await;
    // The process still answers.
    assert_eq!(app.get("/tokens/me", Some(&token)).await.status(), 200);
}
