//! Mail for the statistics tests, written through the real pipeline: `POST /mail/send`, the
//! worker's claim / record_submitted / record_failed, and the shared status writes the log
//! follower and bounce reader use (`apply_recipient_statuses` + `rollup_messages`, one
//! transaction per batch). And the direct SQL counts every figure is compared with.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::delivery::{EventSource, RecipientChange, RecipientStatus};
use sqlx::PgPool;
use uuid::Uuid;

use crate::app::TestApp;

const WORKER: &str = "stats-test-worker";

/// `POST /mail/send` as an admin; returns the message id.
pub async fn send(app: &TestApp, admin: &str, from: &str, to: &[&str], bcc: &[&str]) -> Uuid {
    let body = json!({
        "from": from,
        "to": to,
        "bcc": bcc,
        "subject": "stats",
        "body": {"text": "hello"},
    });
    let resp = app.post_json("/mail/send", admin, &body).await;
    assert_eq!(resp.status().as_u16(), 202, "send from {from}");
    let v: Value = resp.json().await.unwrap();
    v["message_id"].as_str().unwrap().parse().unwrap()
}

/// Moves a just-accepted message to another creation time, before any of its recipients has
/// left `pending` (nothing is counted yet, so the rollups follow): lets one test cover days.
pub async fn backdate(db: &PgPool, id: Uuid, at: DateTime<Utc>) {
    let counted: i64 = sqlx::query_scalar(
        "select count(*) from recipients where message_id = $1 and status <> 'pending'",
    )
    .bind(id)
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!(
        counted, 0,
        "backdate only messages with nothing counted yet"
    );
    sqlx::query("update messages set created_at = $2 where id = $1")
        .bind(id)
        .bind(at)
        .execute(db)
        .await
        .unwrap();
}

/// The worker's part: claim, then the MTA's 250 (`submitted`).
pub async fn submit(db: &PgPool, id: Uuid) {
    let claimed = worker::claim::claim(db, id, WORKER, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(claimed.is_some(), "message {id} can be claimed");
    worker::claim::record_submitted(db, id, WORKER, Some("QTEST"), "250 2.0.0 Ok: queued")
        .await
        .unwrap();
}

/// The worker's part for a message the MTA refused for good: every pending recipient `failed`.
pub async fn submit_refused(db: &PgPool, id: Uuid) {
    let claimed = worker::claim::claim(db, id, WORKER, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(claimed.is_some(), "message {id} can be claimed");
    worker::claim::record_failed(db, id, WORKER, "554 5.7.1 refused", Some("5.7.1"))
        .await
        .unwrap();
}

/// The follower's part: one batch of (message, recipient address, new status) in one
/// transaction, then the message roll-up, exactly as the log follower commits a batch.
pub async fn statuses(db: &PgPool, batch: &[(Uuid, &str, RecipientStatus)]) {
    let mut tx = db.begin().await.unwrap();
    let mut changes = Vec::new();
    for (message_id, email, status) in batch {
        let recipient_id: i64 =
            sqlx::query_scalar("select id from recipients where message_id = $1 and email = $2")
                .bind(message_id)
                .bind(email)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        let dsn = match status {
            RecipientStatus::Sent => "2.0.0",
            RecipientStatus::Deferred => "4.4.1",
            _ => "5.1.1",
        };
        changes.push(RecipientChange {
            recipient_id,
            message_id: *message_id,
            status: *status,
            dsn_code: Some(dsn.to_owned()),
            smtp_response: Some(format!("{dsn} test")),
            occurred_at: Utc::now(),
            source: EventSource::Log,
            evidence: Some("test".to_owned()),
        });
    }
    let applied = shared::delivery::apply_recipient_statuses(&mut tx, &changes)
        .await
        .unwrap();
    assert!(
        applied.iter().all(|a| *a),
        "every change applies: {batch:?}"
    );
    let mut ids: Vec<Uuid> = batch.iter().map(|(m, _, _)| *m).collect();
    ids.dedup();
    shared::delivery::rollup_messages(&mut tx, &ids)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Inbound events as the log follower inserts them (one multi-row statement).
pub async fn inbound(db: &PgPool, rows: &[(&str, Option<&str>, &str, DateTime<Utc>)]) {
    let mut domain = Vec::new();
    let mut recipient = Vec::new();
    let mut sender = Vec::new();
    let mut sender_domain = Vec::new();
    let mut status = Vec::new();
    let mut at = Vec::new();
    for (to, from, st, when) in rows {
        domain.push(to.rsplit_once('@').unwrap().1.to_owned());
        recipient.push(to.to_string());
        sender.push(from.map(str::to_owned));
        sender_domain.push(from.map(|f| f.rsplit_once('@').unwrap().1.to_owned()));
        status.push(st.to_string());
        at.push(*when);
    }
    sqlx::query(
        "insert into inbound_events (domain, recipient, sender, sender_domain, status, occurred_at)
         select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::timestamptz[])",
    )
    .bind(&domain)
    .bind(&recipient)
    .bind(&sender)
    .bind(&sender_domain)
    .bind(&status)
    .bind(&at)
    .execute(db)
    .await
    .unwrap();
}

/// What a breakdown row or a summary holds, counted straight from the raw rows. `total` is every
/// counted recipient (the summary's `total_sent`; a row's `sent + rejected`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub total: i64,
    pub delivered: i64,
    pub bounced: i64,
    pub deferred: i64,
    pub rejected: i64,
}

/// How to group the direct count.
#[derive(Clone, Copy)]
pub enum Key {
    All,
    Day,
    Hour,
    RcptDomain,
}

/// Direct SQL count over recipients of messages created in `[start, end]` (seconds, as the
/// API's `period` shows them), optionally of one sending domain or address.
pub async fn direct(
    db: &PgPool,
    start: &str,
    end: &str,
    from_domain: Option<&str>,
    from_email: Option<&str>,
    key: Key,
) -> HashMap<String, Figures> {
    let key_sql = match key {
        Key::All => "''",
        Key::Day => "to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD')",
        Key::Hour => "to_char(m.created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')",
        Key::RcptDomain => "r.domain",
    };
    let sql = format!(
        "select {key_sql} as k,
                count(*) filter (where r.status <> 'pending'),
                count(*) filter (where r.status = 'sent'),
                count(*) filter (where r.status = 'bounced'),
                count(*) filter (where r.status = 'deferred'),
                count(*) filter (where r.status in ('failed', 'suppressed'))
           from recipients r join messages m on m.id = r.message_id
          where m.created_at >= $1::timestamptz
            and m.created_at < $2::timestamptz + interval '1 second'
            and ($3::text is null or m.from_domain = $3)
            and ($4::text is null or m.from_email = $4)
          group by 1
         having count(*) filter (where r.status <> 'pending') > 0"
    );
    let rows: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(start)
        .bind(end)
        .bind(from_domain)
        .bind(from_email)
        .fetch_all(db)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(k, total, delivered, bounced, deferred, rejected)| {
            (
                k,
                Figures {
                    total,
                    delivered,
                    bounced,
                    deferred,
                    rejected,
                },
            )
        })
        .collect()
}

/// The figures of one API breakdown row. A row's `sent` is delivered + bounced + deferred, as in
/// the spec's example (until issue 15 it included rejected), and `rejected` is shown beside it.
pub fn row_figures(row: &Value) -> Figures {
    let f = |k: &str| row[k].as_i64().unwrap_or_else(|| panic!("{k} in {row}"));
    assert_eq!(
        f("sent"),
        f("delivered") + f("bounced") + f("deferred"),
        "sent = delivered + bounced + deferred: {row}"
    );
    Figures {
        total: f("sent") + f("rejected"),
        delivered: f("delivered"),
        bounced: f("bounced"),
        deferred: f("deferred"),
        rejected: f("rejected"),
    }
}

pub fn summary_figures(summary: &Value) -> Figures {
    let f = |k: &str| {
        summary[k]
            .as_i64()
            .unwrap_or_else(|| panic!("{k} in {summary}"))
    };
    Figures {
        total: f("total_sent"),
        delivered: f("delivered"),
        bounced: f("bounced"),
        deferred: f("deferred"),
        rejected: f("rejected"),
    }
}
