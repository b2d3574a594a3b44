//! Status writes against a real Postgres (a fresh `mailapi_test_<uuid>` database from
//! MAILAPI_DATABASE_URL; source /etc/mailapi/mailapi.env).

use chrono::Utc;
use shared::delivery::{
    EventSource, RecipientChange, RecipientStatus, apply_recipient_status,
    apply_recipient_statuses, rollup_message,
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// One connection to a fresh migrated database (testkit's).
async fn fresh_database() -> PgConnection {
    let (url, _pool) = testkit::fresh_database().await;
    PgConnection::connect(&url)
        .await
        .expect("connect to test database")
}

/// A message in `status` with recipients; returns its id and the recipients' ids.
async fn message(conn: &mut PgConnection, status: &str, rcpts: &[&str]) -> (Uuid, Vec<i64>) {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into messages (id, from_email, from_domain, status, rfc_message_id, payload, size_bytes)
         values ($1, 'a@sender.test', 'sender.test', $2, $3, '{}', 1)",
    )
    .bind(id)
    .bind(status)
    .bind(format!("<{}@sender.test>", id.simple()))
    .execute(&mut *conn)
    .await
    .unwrap();
    let mut ids = Vec::new();
    for r in rcpts {
        let rid: i64 = sqlx::query_scalar(
            "insert into recipients (message_id, email, domain, kind)
             values ($1, $2, 'x.test', 'to') returning id",
        )
        .bind(id)
        .bind(r)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        ids.push(rid);
    }
    (id, ids)
}

fn change(message: Uuid, recipient: i64, status: RecipientStatus, dsn: &str) -> RecipientChange {
    RecipientChange {
        recipient_id: recipient,
        message_id: message,
        status,
        dsn_code: Some(dsn.to_owned()),
        smtp_response: Some(format!("{dsn} response")),
        occurred_at: Utc::now(),
        source: EventSource::Log,
        evidence: Some(format!("line {dsn}")),
    }
}

async fn events(conn: &mut PgConnection, recipient: i64) -> Vec<String> {
    sqlx::query_scalar("select status from delivery_events where recipient_id = $1 order by id")
        .bind(recipient)
        .fetch_all(conn)
        .await
        .unwrap()
}

async fn status(conn: &mut PgConnection, recipient: i64) -> (String, Option<String>, bool) {
    sqlx::query_as(
        "select status, dsn_code, delivered_at is not null from recipients where id = $1",
    )
    .bind(recipient)
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn final_statuses_are_kept_and_not_repeated() {
    let mut conn = fresh_database().await;
    let (m, r) = message(&mut conn, "submitted", &["a@x.test"]).await;
    let r = r[0];
    let deferred = change(m, r, RecipientStatus::Deferred, "4.2.0");
    let sent = change(m, r, RecipientStatus::Sent, "2.0.0");
    assert!(apply_recipient_status(&mut conn, &deferred).await.unwrap());
    assert!(apply_recipient_status(&mut conn, &deferred).await.unwrap());
    assert!(apply_recipient_status(&mut conn, &sent).await.unwrap());
    assert_eq!(
        status(&mut conn, r).await,
        ("sent".to_owned(), Some("2.0.0".to_owned()), true)
    );
    assert!(!apply_recipient_status(&mut conn, &sent).await.unwrap());
    assert!(!apply_recipient_status(&mut conn, &deferred).await.unwrap());
    assert_eq!(events(&mut conn, r).await, ["deferred", "deferred", "sent"]);
    let evidence: String = sqlx::query_scalar(
        "select evidence from delivery_events where recipient_id = $1 order by id desc limit 1",
    )
    .bind(r)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(evidence, "line 2.0.0");
    // A change naming another message's recipient is refused.
    let wrong = change(Uuid::new_v4(), r, RecipientStatus::Bounced, "5.1.1");
    assert!(!apply_recipient_status(&mut conn, &wrong).await.unwrap());
}

/// domain, email, reason, dsn_code, message_id
type SuppressionRow = (String, String, String, Option<String>, Option<Uuid>);

#[tokio::test]
async fn a_batch_applies_in_order_and_suppresses_hard_bounces() {
    let mut conn = fresh_database().await;
    let (m, r) = message(&mut conn, "submitted", &["Hard@X.test", "soft@x.test"]).await;
    let batch = [
        change(m, r[0], RecipientStatus::Deferred, "4.2.0"),
        change(m, r[0], RecipientStatus::Bounced, "5.1.1"),
        change(m, r[0], RecipientStatus::Deferred, "4.2.0"),
        change(m, r[1], RecipientStatus::Failed, "4.4.1"),
    ];
    let applied = apply_recipient_statuses(&mut conn, &batch).await.unwrap();
    assert_eq!(applied, [true, true, false, true]);
    assert_eq!(events(&mut conn, r[0]).await, ["deferred", "bounced"]);
    let suppressed: Vec<SuppressionRow> = sqlx::query_as(
        "select domain, email, reason, dsn_code, message_id from suppressions order by id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        suppressed,
        [(
            "sender.test".to_owned(),
            "hard@x.test".to_owned(),
            "5.1.1 response".to_owned(),
            Some("5.1.1".to_owned()),
            Some(m)
        )]
    );
    // The same address bouncing again for another message is not an error.
    let (m2, r2) = message(&mut conn, "submitted", &["hard@x.test"]).await;
    let again = change(m2, r2[0], RecipientStatus::Bounced, "5.1.1");
    assert!(apply_recipient_status(&mut conn, &again).await.unwrap());
    let count: i64 = sqlx::query_scalar("select count(*) from suppressions")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn rollup_follows_the_mta_and_waits_for_open_recipients() {
    let mut conn = fresh_database().await;
    // Nothing the MTA said yet: a pending message stays pending, even with a recipient the
    // API suppressed at accept.
    let (quiet, r) = message(&mut conn, "pending", &["q@x.test", "s@x.test"]).await;
    apply_recipient_status(
        &mut conn,
        &change(quiet, r[1], RecipientStatus::Suppressed, "5.1.1"),
    )
    .await
    .unwrap();
    assert_eq!(rollup_message(&mut conn, quiet).await.unwrap(), None);

    // The log ran ahead of the worker: the message is still pending, but the MTA has it.
    let (m, r) = message(&mut conn, "pending", &["a@x.test", "b@x.test"]).await;
    apply_recipient_status(&mut conn, &change(m, r[0], RecipientStatus::Sent, "2.0.0"))
        .await
        .unwrap();
    apply_recipient_status(
        &mut conn,
        &change(m, r[1], RecipientStatus::Deferred, "4.2.0"),
    )
    .await
    .unwrap();
    assert_eq!(
        rollup_message(&mut conn, m).await.unwrap().as_deref(),
        Some("submitted"),
        "the MTA reported on a recipient"
    );
    assert_eq!(
        rollup_message(&mut conn, m).await.unwrap(),
        None,
        "b is open"
    );
    apply_recipient_status(
        &mut conn,
        &change(m, r[1], RecipientStatus::Bounced, "5.1.1"),
    )
    .await
    .unwrap();
    assert_eq!(
        rollup_message(&mut conn, m).await.unwrap().as_deref(),
        Some("partial")
    );
    let completed: bool =
        sqlx::query_scalar("select completed_at is not null from messages where id = $1")
            .bind(m)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(completed);
    assert_eq!(
        rollup_message(&mut conn, m).await.unwrap(),
        None,
        "done once"
    );

    let (all_sent, r) = message(&mut conn, "submitted", &["c@x.test"]).await;
    apply_recipient_status(
        &mut conn,
        &change(all_sent, r[0], RecipientStatus::Sent, "2.0.0"),
    )
    .await
    .unwrap();
    assert_eq!(
        rollup_message(&mut conn, all_sent)
            .await
            .unwrap()
            .as_deref(),
        Some("sent")
    );
    let (none_sent, r) = message(&mut conn, "submitted", &["d@x.test", "e@x.test"]).await;
    let batch = [
        change(none_sent, r[0], RecipientStatus::Failed, "4.4.1"),
        change(none_sent, r[1], RecipientStatus::Suppressed, "5.1.1"),
    ];
    apply_recipient_statuses(&mut conn, &batch).await.unwrap();
    assert_eq!(
        rollup_message(&mut conn, none_sent)
            .await
            .unwrap()
            .as_deref(),
        Some("bounced")
    );
}
