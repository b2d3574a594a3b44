//! Token guessing: failed token checks are limited per client address, across API processes,
//! and a blocked address is refused even with a valid token until its window ends; other
//! addresses, and requests without a token, are not affected.
//!
//! Seen failing against the build before the limit: the sixth wrong token was answered 401
//! `INVALID_TOKEN` like the first five, not 429.

use testkit::{TestApp, assert_error};

/// Failures allowed per address and window in this test.
const LIMIT: usize = 5;

/// A well-formed token that does not exist.
fn guess() -> String {
    shared::token::TokenSecret::generate().expose().to_owned()
}

async fn me_from(app: &TestApp, client: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(app.api("/tokens/me"))
        .header("X-Forwarded-For", client);
    if let Some(t) = token {
        req = req.header("X-MAILAPI-TOKEN", t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn an_address_that_keeps_guessing_is_refused_for_the_window() {
    let overrides = [
        ("MAILAPI_AUTH_FAILURES_PER_IP", "5"),
        ("MAILAPI_AUTH_FAILURE_WINDOW_SECS", "600"),
        // The test's requests come through "a proxy" on loopback, which names the client.
        ("MAILAPI_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    let app = TestApp::spawn(&overrides).await;
    let replica = app.replica_with(&overrides).await;
    let admin = app.admin_token().await;
    let attacker = "198.51.100.7";

    // Malformed and unknown tokens both count.
    assert_error(
        me_from(&app, attacker, Some("garbage")).await,
        401,
        "INVALID_TOKEN",
    )
    .await;
    for _ in 1..LIMIT {
        assert_error(
            me_from(&app, attacker, Some(&guess())).await,
            401,
            "INVALID_TOKEN",
        )
        .await;
    }
    let refused = me_from(&app, attacker, Some(&guess())).await;
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After on the refusal");
    assert!(
        (1..=600).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_error(refused, 429, "RATE_LIMITED").await;
    // Blocked means blocked: a valid token from that address is refused too.
    assert_error(
        me_from(&app, attacker, Some(&admin)).await,
        429,
        "RATE_LIMITED",
    )
    .await;

    // The count lives in Redis: the other process refuses the address at its next failure.
    assert_error(
        me_from(&replica, attacker, Some(&guess())).await,
        429,
        "RATE_LIMITED",
    )
    .await;

    // Another address is not affected, and neither is a request without a token.
    let other = "203.0.113.9";
    let ok = me_from(&app, other, Some(&admin)).await;
    assert_eq!(ok.status(), 200);
    assert_error(
        me_from(&app, other, Some(&guess())).await,
        401,
        "INVALID_TOKEN",
    )
    .await;
    let quiet = "192.0.2.44";
    for _ in 0..LIMIT * 2 {
        assert_error(me_from(&app, quiet, None).await, 401, "NO_API_TOKEN").await;
    }
    let ok = me_from(&app, quiet, Some(&admin)).await;
    assert_eq!(ok.status(), 200, "missing tokens are not guesses");
}
