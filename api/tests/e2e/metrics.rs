//! Traffic shows up in both services' `/metrics` with the values it should have.

use std::time::Duration;

use serde_json::json;
use testkit::TestApp;

/// The value of the series whose line starts with `name{` and contains every label given.
fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .find_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
}

#[tokio::test]
async fn both_services_count_what_happened() {
    let port = testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let app = TestApp::spawn(&[
        ("MAILAPI_RATE_LIMIT_PER_MINUTE", "5"),
        ("MAILAPI_WORKER_METRICS_LISTEN", &listen),
    ])
    .await;
    app.domain("metrics.test", true).await;
    let admin = app.admin_token().await;
    let stop = app.start_worker().stop;

    let tag = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..3 {
        let body = json!({"from": "m@metrics.test", "to": [format!("m{i}-{tag}@sink-ok.test")],
                          "body": {"text": "metrics"}});
        assert_eq!(
            app.post_json("/mail/send", &admin, &body).await.status(),
            202
        );
    }
    let bad = json!({"from": "m@metrics.test", "to": [], "body": {"text": "x"}});
    assert_eq!(
        app.post_json("/mail/send", &admin, &bad).await.status(),
        400
    );
    assert_eq!(app.get("/tokens/me", Some(&admin)).await.status(), 200);
    // The sixth request in the minute is refused.
    assert_eq!(app.get("/tokens/me", Some(&admin)).await.status(), 429);

    let api = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sends = value(
        &api,
        "mailapi_http_requests_total",
        &[r#"route="/api/v1/mail/send""#, r#"status="202""#],
    );
    assert_eq!(sends, Some(3.0), "{api}");
    let rejected = value(
        &api,
        "mailapi_http_requests_total",
        &[r#"route="/api/v1/mail/send""#, r#"status="400""#],
    );
    assert_eq!(rejected, Some(1.0));
    assert_eq!(
        value(
            &api,
            "mailapi_http_requests_total",
            &[r#"route="/api/v1/tokens/me""#, r#"status="429""#]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &api,
            "mailapi_rate_limit_rejections_total",
            &[r#"window="minute""#]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&api, "mailapi_messages_accepted_total", &[]),
        Some(3.0)
    );
    // Sent one after another, each was its own group-commit batch.
    assert_eq!(
        value(&api, "mailapi_accept_batch_messages_sum", &[]),
        Some(3.0)
    );
    assert_eq!(
        value(&api, "mailapi_accept_batch_messages_bucket", &[r#"le="1""#]),
        Some(3.0)
    );
    assert_eq!(
        value(&api, "mailapi_accept_batch_duration_seconds_count", &[]),
        Some(3.0)
    );
    assert!(
        value(
            &api,
            "mailapi_http_request_duration_seconds_count",
            &[r#"route="/api/v1/mail/send""#]
        )
        .unwrap()
            >= 4.0
    );

    // The worker submits the three and the log follower sees them delivered.
    let worker_url = format!("http://{listen}/metrics");
    let mut text = String::new();
    for _ in 0..300 {
        text = match app.http.get(&worker_url).send().await {
            Ok(r) => r.text().await.unwrap(),
            Err(_) => String::new(),
        };
        let submitted = value(
            &text,
            "mailapi_smtp_submissions_total",
            &[r#"outcome="accepted""#],
        );
        let delivered = value(
            &text,
            "mailapi_deliveries_total",
            &[r#"status="sent""#, r#"source="log""#],
        );
        if submitted == Some(3.0) && delivered == Some(3.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        value(
            &text,
            "mailapi_smtp_submissions_total",
            &[r#"outcome="accepted""#]
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "mailapi_deliveries_total",
            &[r#"status="sent""#, r#"source="log""#]
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "mailapi_smtp_submission_duration_seconds_count", &[]),
        Some(3.0)
    );
    for gauge in [
        "mailapi_stream_length",
        "mailapi_stream_consumer_group_lag",
        "mailapi_stream_pending_entries",
        "mailapi_log_follower_lag_bytes",
        "mailapi_log_follower_lag_seconds",
    ] {
        let labels: &[&str] = if gauge.starts_with("mailapi_stream") {
            &[r#"shard="0""#]
        } else {
            &[]
        };
        assert!(
            value(&text, gauge, labels).is_some(),
            "{gauge} missing in {text}"
        );
    }
    assert!(value(&text, "mailapi_log_follower_lines_total", &[]).unwrap() > 0.0);
    stop.cancel();
}
