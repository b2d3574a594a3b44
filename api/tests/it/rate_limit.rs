//! The per-token rate limit holds across API processes that share Redis.

use testkit::{TestApp, assert_error};

#[tokio::test]
async fn two_processes_share_one_limit() {
    let app = TestApp::spawn(&[("MAILAPI_RATE_LIMIT_PER_MINUTE", "100")]).await;
    let other = app.replica().await;
    let token = app.admin_token().await;

    let mut ok = 0;
    let mut limited = 0;
    for i in 0..150 {
        let target = if i % 2 == 0 { &app } else { &other };
        let resp = target.get("/tokens/me", Some(&token)).await;
        match resp.status().as_u16() {
            200 => {
                assert!(resp.headers().contains_key("ratelimit-remaining"));
                ok += 1;
            }
            429 => {
                let retry: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&retry), "retry-after {retry}");
                assert_error(resp, 429, "RATE_LIMITED").await;
                limited += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(
        ok, 100,
        "exactly the minute's quota gets through across both processes"
    );
    assert_eq!(limited, 50);

    // Another token has its own quota.
    let second = app.admin_token().await;
    assert_eq!(other.get("/tokens/me", Some(&second)).await.status(), 200);
}

#[tokio::test]
async fn hourly_limit_applies_too() {
    let app = TestApp::spawn(&[
        ("MAILAPI_RATE_LIMIT_PER_MINUTE", "50"),
        ("MAILAPI_RATE_LIMIT_PER_HOUR", "10"),
    ])
    .await;
    let token = app.admin_token().await;
    for _ in 0..10 {
        assert_eq!(app.get("/tokens/me", Some(&token)).await.status(), 200);
    }
    let resp = app.get("/tokens/me", Some(&token)).await;
    let body = assert_error(resp, 429, "RATE_LIMITED").await;
    assert!(body["message"].as_str().unwrap().contains("hour"), "{body}");
}
