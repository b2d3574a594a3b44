//! What a failing receiver gets: retries on the schedule, then a dead letter that a replay
//! delivers, and a 410 that disables the endpoint.

use std::time::Duration;

use serde_json::{Value, json};

use super::{endpoint_with_receiver, get_json, send, setup, start_webhooks};

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_event_once_more() {
    let (app, admin) = setup(&[]).await;
    let (id, receiver) = endpoint_with_receiver(
        &app,
        &admin,
        "fail-first=2",
        json!({"events": ["message.accepted"]}),
    )
    .await;
    let stop = start_webhooks(&app);
    send(&app, &admin, 0).await;
    receiver
        .wait_for(Duration::from_secs(20), "a success", |r| {
            r.iter().any(|x| x.status == 200)
        })
        .await;
    // Nothing more comes after the success.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = receiver.received();
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 200]);
    assert!(
        got.iter()
            .all(|r| r.verified && r.webhook_id == got[0].webhook_id)
    );
    let attempts = get_json(&app, &admin, &format!("/webhooks/{id}/attempts")).await;
    let codes: Vec<i64> = attempts["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![200, 500, 500], "newest first");
    assert_eq!(attempts["total"], 3);
    stop.cancel();
}

#[tokio::test]
async fn an_event_that_always_fails_is_dead_lettered_and_a_replay_delivers_it() {
    let (app, admin) = setup(&[]).await;
    let (id, receiver) = endpoint_with_receiver(
        &app,
        &admin,
        "always=503",
        json!({"events": ["message.accepted"]}),
    )
    .await;
    let stop = start_webhooks(&app);
    send(&app, &admin, 0).await;
    // The first attempt and the two retries of the schedule "1,1".
    let mut dead = json!(null);
    for _ in 0..100 {
        dead = get_json(&app, &admin, &format!("/webhooks/{id}/dead-letters")).await;
        if dead["total"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(dead["total"], 1, "{dead}");
    let event = dead["dead_letters"][0]["id"].as_i64().unwrap();
    assert_eq!(receiver.received().len(), 3);

    receiver.set_mode("ok").await;
    let resp = app
        .post_json(
            &format!("/webhooks/{id}/replay"),
            &admin,
            &json!({"dead_letters": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["replayed"], 1);
    let got = receiver
        .wait_for(Duration::from_secs(10), "the replay", |r| {
            r.iter().any(|x| x.status == 200)
        })
        .await;
    let replayed = got.iter().find(|r| r.status == 200).unwrap();
    assert_eq!(
        replayed.webhook_id,
        format!("evt_{event}"),
        "a replay keeps the event's id"
    );
    assert!(replayed.verified);
    let dead = get_json(&app, &admin, &format!("/webhooks/{id}/dead-letters")).await;
    assert_eq!(dead["total"], 0);
    stop.cancel();
}

#[tokio::test]
async fn a_410_disables_the_endpoint() {
    let (app, admin) = setup(&[]).await;
    let (id, receiver) = endpoint_with_receiver(&app, &admin, "always=410", json!({})).await;
    let stop = start_webhooks(&app);
    send(&app, &admin, 0).await;
    receiver
        .wait_for(Duration::from_secs(10), "a request", |r| !r.is_empty())
        .await;
    let mut hook = json!(null);
    for _ in 0..50 {
        hook = get_json(&app, &admin, &format!("/webhooks/{id}")).await;
        if hook["webhook"]["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hook["webhook"]["enabled"], false, "{hook}");
    assert!(
        hook["webhook"]["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410"),
        "{hook}"
    );
    // Disabled: nothing more is sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 1);
    stop.cancel();
}
