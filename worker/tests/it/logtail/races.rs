//! Races with the worker, made deterministic: its `submitted` record against the follower's
//! commit, and the duplicate check against the follower's progress.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use testkit::fresh_database;
use uuid::Uuid;
use worker::logtail::Follower;

use super::{TempDir, append, message_status, mid, postfix_log, recipient};

/// Sessions of this test's database waiting for a row lock.
async fn lock_waiters(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'",
    )
    .fetch_one(pool)
    .await
    .expect("pg_stat_activity")
}

/// The race of issue 22, made deterministic: Postfix delivers and logs a message before the
/// worker's `submitted` record commits. A gate holds a key-share lock on the message's row (as a
/// follower inserting the message's events does) so that the worker's record takes its snapshot
/// first and waits; the follower then applies the delivery line; the gate opens. Whatever order the two commit in, the message must end `sent` like its only
/// recipient. (Before the fix the follower committed without waiting, skipped the roll-up of a
/// message still `pending`, and the worker's record, blind to that commit, left it `submitted`
/// for ever.)
#[tokio::test]
async fn the_message_follows_its_recipients_whoever_commits_last() {
    let (url, pool) = fresh_database().await;
    let dir = TempDir::new();
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into messages (id, from_email, from_domain, status, rfc_message_id, payload,
                               size_bytes, claimed_by, claimed_until, send_started_at)
         values ($1, 'alice@mailapi.test', 'mailapi.test', 'pending', $2, '{}', 100, 'w1',
                 now() + interval '5 minutes', now())",
    )
    .bind(id)
    .bind(mid("external_ok"))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into recipients (message_id, email, domain, kind)
         values ($1, 'carol@example.com', 'example.com', 'to')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    append(&dir.log(), &postfix_log("external_ok"));

    let mut gate = PgConnection::connect(&url).await.unwrap();
    sqlx::query("begin").execute(&mut gate).await.unwrap();
    // KEY SHARE, the lock the follower's own foreign-key checks take (inserting the events of
    // a message): it holds the worker's row lock back exactly as a follower mid-transaction
    // does, while letting a follower that does not lock the message row through.
    sqlx::query("select 1 from messages where id = $1 for key share")
        .bind(id)
        .execute(&mut gate)
        .await
        .unwrap();

    let record = worker::claim::SubmittedRecord {
        id,
        queue_id: Some("4jYHLY3rhwz5n8M".to_owned()),
        reply: "250 2.0.0 Ok: queued as 4jYHLY3rhwz5n8M".to_owned(),
    };
    let worker_pool = pool.clone();
    let worker = tokio::spawn(async move {
        worker::claim::record_submitted_many(&worker_pool, "w1", &[record]).await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock_waiters(&pool).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the worker's record never reached the gate"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let log = dir.log();
    let follower_url = url.clone();
    let follower = tokio::spawn(async move {
        let mut conn = PgConnection::connect(&follower_url).await.unwrap();
        let mut follower = Follower::load(&mut conn, &log, "test").await.unwrap();
        follower.ingest_available(&mut conn).await.map(|s| s.lines)
    });
    // The follower either finishes (it does not wait for the message's row) or queues behind
    // the gate too; either way it has done all it can before the gate opens.
    while !follower.is_finished() && lock_waiters(&pool).await < 2 {
        assert!(
            Instant::now() < deadline,
            "the follower neither finished nor waited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "DEBUG follower finished={} waiters={}",
        follower.is_finished(),
        lock_waiters(&pool).await
    );
    let st: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as("select state, wait_event_type, left(query, 60) from pg_stat_activity where datname = current_database()").fetch_all(&pool).await.unwrap();
    eprintln!("DEBUG {st:?}");
    sqlx::query("commit").execute(&mut gate).await.unwrap();

    worker.await.unwrap().expect("the worker's record commits");
    assert_eq!(follower.await.unwrap().expect("the follower commits"), 5);
    let r = recipient(&pool, id, "carol@example.com").await;
    assert_eq!(r.0, "sent");
    assert_eq!(message_status(&pool, id).await, ("sent".to_owned(), true));
}

/// The duplicate check's verdicts, decided on the database's clock: a follower that has not
/// finished a pass yet (`-infinity`) holds an interrupted attempt back (it used to panic the
/// send task: chrono cannot hold `-infinity`; found by the checker), one that read past the
/// attempt lets it be sent, the MTA's queue entry wins, and the wait ends after 300 s.
#[tokio::test]
async fn the_duplicate_check_decides_on_the_database_clock() {
    use worker::claim::{LogVerdict, check_log};
    let (_url, pool) = fresh_database().await;
    let started: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("select now()")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query(
        "insert into log_positions (log_name, file_id, byte_offset, updated_at)
         values ('a', 'f', 0, '-infinity')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let verdict = check_log(&pool, "<m@x.test>", started).await.unwrap();
    assert!(matches!(verdict, LogVerdict::Unknown), "{verdict:?}");
    // Past the margin: covered.
    sqlx::query("update log_positions set updated_at = now() + interval '4 seconds'")
        .execute(&pool)
        .await
        .unwrap();
    let verdict = check_log(&pool, "<m@x.test>", started).await.unwrap();
    assert!(matches!(verdict, LogVerdict::NotQueued), "{verdict:?}");
    // Every log counts: a second one still at `-infinity` holds it back again...
    sqlx::query(
        "insert into log_positions (log_name, file_id, byte_offset, updated_at)
         values ('b', 'f', 0, '-infinity')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let verdict = check_log(&pool, "<m@x.test>", started).await.unwrap();
    assert!(matches!(verdict, LogVerdict::Unknown), "{verdict:?}");
    // ... until the attempt is 300 s old by the database's clock.
    let long_ago = started - chrono::Duration::seconds(301);
    let verdict = check_log(&pool, "<m@x.test>", long_ago).await.unwrap();
    assert!(matches!(verdict, LogVerdict::NotQueued), "{verdict:?}");
    // A queue entry the MTA committed settles it whatever the positions say.
    sqlx::query(
        "insert into mta_queue_entries (queue_id, rfc_message_id, committed)
         values ('QID1', '<m@x.test>', true)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let verdict = check_log(&pool, "<m@x.test>", started).await.unwrap();
    assert!(
        matches!(verdict, LogVerdict::Queued(ref q) if q == "QID1"),
        "{verdict:?}"
    );
}
