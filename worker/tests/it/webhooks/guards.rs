//! The guards around receivers: the circuit breaker pauses an endpoint that fails everything and
//! resumes it with a probe, and an address that became internal is refused at connect time.

use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{endpoint_with_receiver, get_json, send, setup, start_webhooks};

async fn breaker(app: &testkit::TestApp, id: i64) -> (i32, bool) {
    sqlx::query_as(
        "select failures_in_a_row, coalesce(paused_until > now(), false)
           from webhook_endpoints where id = $1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_breaker_pauses_a_failing_endpoint_and_a_probe_resumes_it() {
    let (app, admin) = setup(&[
        ("MAILAPI_WEBHOOK_BREAKER_FAILURES", "3"),
        ("MAILAPI_WEBHOOK_CONCURRENCY", "1"),
        ("MAILAPI_WEBHOOK_RETRY_SCHEDULE_SECS", "1,1,1,1,1,1,1,1"),
    ])
    .await;
    let (id, receiver) = endpoint_with_receiver(
        &app,
        &admin,
        "always=500",
        json!({"events": ["message.accepted"]}),
    )
    .await;
    for i in 0..10 {
        send(&app, &admin, i).await;
    }
    let stop = start_webhooks(&app);
    let mut state = (0, false);
    for _ in 0..100 {
        state = breaker(&app, id).await;
        if state.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        state.1 && state.0 >= 3,
        "paused after 3 failures: {state:?}"
    );
    // Paused (5 s for the first pause): once what was already in flight or claimed ahead (one
    // each here) has landed, nothing is attempted and no retry is spent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_pause = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        receiver.received().len(),
        at_pause,
        "nothing sent while paused"
    );
    // The receiver recovers; the probe after the pause succeeds and sending resumes.
    receiver.set_mode("ok").await;
    // The pause doubles with each failure past the threshold, and failures already in flight
    // when it opened count too: wait for the pause the endpoint really has.
    let remaining: f64 = sqlx::query_scalar(
        "select greatest(0, extract(epoch from paused_until - now()))::float8
           from webhook_endpoints where id = $1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let got = receiver
        .wait_for(
            Duration::from_secs_f64(remaining + 20.0),
            "every event",
            |r| r.iter().filter(|x| x.status == 200).count() >= 10,
        )
        .await;
    assert!(got.iter().all(|r| r.verified));
    assert_eq!(
        breaker(&app, id).await,
        (0, false),
        "a success closes the breaker"
    );
    stop.cancel();
}

#[tokio::test]
async fn an_address_that_is_internal_at_connect_time_is_refused() {
    // Registered while private addresses were allowed; the worker does not allow them.
    let (app, admin) = setup(&[]).await;
    let (id, receiver) =
        endpoint_with_receiver(&app, &admin, "ok", json!({"events": ["message.accepted"]})).await;
    let mut settings = app.settings.clone();
    settings.webhooks.allow_private = false;
    let ctx = worker::context::WorkerContext::new(settings).unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(worker::webhooks::run(ctx, stop.clone()));
    send(&app, &admin, 0).await;
    let mut attempts = json!(null);
    for _ in 0..100 {
        attempts = get_json(&app, &admin, &format!("/webhooks/{id}/attempts")).await;
        if attempts["total"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = &attempts["attempts"][0];
    assert_eq!(first["status_code"], serde_json::Value::Null, "{attempts}");
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("refused address 127.0.0.1"),
        "{attempts}"
    );
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
    stop.cancel();
}
