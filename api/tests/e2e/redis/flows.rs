//! What every topology test checks through the API and the workers: sends are accepted and
//! submitted, the rate limit counts in Redis across processes, and a revoked token is refused.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::{Value, json};

use testkit::{TestApp, assert_error};

/// Limits for the sending app: high, so that only the rate-limit check meets them.
pub const HIGH_LIMITS: [(&str, &str); 2] = [
    ("MAILAPI_RATE_LIMIT_PER_MINUTE", "1000000"),
    ("MAILAPI_RATE_LIMIT_PER_HOUR", "1000000"),
];

/// A new active sending domain (in the test's own database) and an admin token.
pub async fn sender(app: &TestApp) -> (String, String) {
    let domain = format!(
        "topo-{}.test",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    app.domain(&domain, true).await;
    (domain, app.admin_token().await)
}

/// Sends one message to the accept-all sink domain and returns its id; it must be accepted.
pub async fn send_one(app: &TestApp, token: &str, domain: &str, i: usize) -> String {
    let body = json!({"from": format!("s@{domain}"), "to": [format!("r{i}@sink-ok.test")],
                      "subject": format!("topology {i}"), "body": {"text": "topology"}});
    let resp = app.post_json("/mail/send", token, &body).await;
    let status = resp.status();
    let v: Value = resp.json().await.expect("JSON answer");
    assert_eq!(status, 202, "send {i}: {v}");
    v["message_id"].as_str().expect("message_id").to_owned()
}

/// Waits until none of `app`'s messages is pending and all `expected` were handed to Postfix.
pub async fn wait_all_submitted(app: &TestApp, expected: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let (pending, done, other): (i64, i64, i64) = sqlx::query_as(
            "select count(*) filter (where status = 'pending'),
                    count(*) filter (where status in ('submitted', 'sent')),
                    count(*) filter (where status not in ('pending', 'submitted', 'sent'))
               from messages",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(other, 0, "messages neither pending nor submitted");
        if pending == 0 {
            assert_eq!(
                done as usize, expected,
                "every accepted message was submitted"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} of {expected} messages still pending"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Submissions per worker, from the `submitted` events' evidence.
pub async fn submissions_per_worker(app: &TestApp) -> Vec<(String, i64)> {
    sqlx::query_as(
        "select substring(evidence from '\\(worker ([^)]+)\\)') as worker, count(*)
           from delivery_events where event = 'submitted' group by 1 order by 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

/// Two API processes with a limit of `limit` per minute share one window in Redis: the
/// `RateLimit-Remaining` they report counts down across both (the per-process fallback used
/// when Redis is unreachable would report 0), and request `limit + 1` is refused.
pub async fn rate_limit_counts_in_redis(app: &TestApp, limit: u32) {
    let per_minute = limit.to_string();
    let redis_url = app.settings.redis_url.expose_secret().to_owned();
    let overrides = [
        ("MAILAPI_RATE_LIMIT_PER_MINUTE", per_minute.as_str()),
        ("MAILAPI_REDIS_URL", redis_url.as_str()),
    ];
    let a = app.replica_with(&overrides).await;
    let b = app.replica_with(&overrides).await;
    let token = a.admin_token().await;
    for i in 0..limit {
        let target = if i % 2 == 0 { &a } else { &b };
        let resp = target.get("/tokens/me", Some(&token)).await;
        assert_eq!(resp.status(), 200, "request {i}");
        let remaining: u32 = resp.headers()["ratelimit-remaining"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(remaining, limit - 1 - i, "request {i} counted in Redis");
    }
    assert_error(b.get("/tokens/me", Some(&token)).await, 429, "RATE_LIMITED").await;
}

/// `token`'s next two requests on `app` are counted in Redis: `RateLimit-Remaining` goes down by
/// one (the per-process fallback reports 0). Nothing else may use `token` meanwhile.
pub async fn limiter_counts_in_redis(app: &TestApp, token: &str) {
    let remaining = || async {
        let resp = app.get("/tokens/me", Some(token)).await;
        assert_eq!(resp.status(), 200);
        resp.headers()["ratelimit-remaining"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let first = remaining().await;
        let second = remaining().await;
        if first > 0 && second == first - 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the rate limit never counted in Redis again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A token made and revoked through the API stops working at once.
pub async fn revoked_token_is_refused(app: &TestApp, admin: &str) {
    let resp = app
        .post_json(
            "/tokens",
            admin,
            &json!({"name": "revoke me", "token_type": "admin"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    let (secret, id) = (v["token"].as_str().unwrap(), v["id"].as_i64().unwrap());
    assert_eq!(app.get("/tokens/me", Some(secret)).await.status(), 200);
    let resp = app
        .http
        .delete(app.api(&format!("/tokens/{id}")))
        .header("X-MAILAPI-TOKEN", admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_error(
        app.get("/tokens/me", Some(secret)).await,
        401,
        "TOKEN_EXPIRED",
    )
    .await;
}
