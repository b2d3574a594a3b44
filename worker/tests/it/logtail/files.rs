//! The log file as it really changes under the follower: rotation, truncation, restarts
//! mid-file, a half-written line; and two followers on one log: the fence and the lease.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use testkit::fresh_database;
use uuid::Uuid;
use worker::logtail::{Follower, try_acquire_lease};

use super::{TempDir, append, event_lines, insert_generated, joined};

#[tokio::test]
async fn rotation_truncation_and_restarts_apply_every_line_once() {
    let (url, pool) = fresh_database().await;
    let dir = TempDir::new();
    let log = dir.log();
    let lines = insert_generated(&pool, 200).await;
    let parts: Vec<&[String]> = lines.chunks(lines.len() / 6 + 1).collect();
    assert_eq!(parts.len(), 6);
    let mut conn = PgConnection::connect(&url).await.unwrap();

    // 1. Part 0 and half of a line: the half line waits for its newline.
    append(&log, &joined(parts[0]));
    let (half_a, half_b) = parts[1][0].split_at(40);
    append(&log, half_a);
    let mut f = Follower::load(&mut conn, &log, "rot").await.unwrap();
    f.set_batch_lines(7);
    let s = f.ingest_available(&mut conn).await.unwrap();
    assert_eq!(s.lines, parts[0].len());
    append(&log, &format!("{half_b}\n"));
    append(&log, &joined(&parts[1][1..]));

    // 2. Restart mid-file: stop after three small batches, drop the follower, resume.
    f.ingest_batches(&mut conn, 3).await.unwrap();
    drop(f);
    let mut f = Follower::load(&mut conn, &log, "rot").await.unwrap();
    f.set_batch_lines(11);
    f.ingest_available(&mut conn).await.unwrap();

    // 3. Rotation by rename; the writer logs a little more to the old file before reopening.
    append(&log, &joined(&parts[2][..10]));
    std::fs::rename(&log, dir.0.join("postfix.log.1")).unwrap();
    append(&dir.0.join("postfix.log.1"), &joined(&parts[2][10..]));
    append(&log, &joined(parts[3]));
    f.ingest_available(&mut conn).await.unwrap();

    // 4. Rotation while the follower is down: on restart it finishes the old file first.
    let cut = parts[4].len() / 2;
    append(&log, &joined(&parts[4][..cut]));
    f.ingest_batches(&mut conn, 1).await.unwrap();
    drop(f);
    std::fs::rename(&log, dir.0.join("postfix.log.2")).unwrap();
    append(&dir.0.join("postfix.log.2"), &joined(&parts[4][cut..]));
    let mut f = Follower::load(&mut conn, &log, "rot").await.unwrap();
    f.ingest_available(&mut conn).await.unwrap();
    let cut = parts[5].len() * 3 / 4;
    append(&log, &joined(&parts[5][..cut]));
    f.ingest_available(&mut conn).await.unwrap();

    // 5. Truncation (copytruncate): the file starts again, shorter than our offset when we
    // next look (what the follower sees when it polls faster than the log grows).
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    append(&log, &joined(&parts[5][cut..]));
    let s = f.ingest_available(&mut conn).await.unwrap();
    assert_eq!(s.lines, parts[5].len() - cut);

    // Every delivery line became exactly one event, in order.
    let expected: Vec<String> = lines
        .iter()
        .filter(|l| l.contains(": to=<"))
        .cloned()
        .collect();
    let got = event_lines(&pool).await;
    assert_eq!(
        got.len(),
        expected.len(),
        "no line skipped or applied twice"
    );
    assert_eq!(got, expected);
    let (sent, bounced): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where status = 'sent'), count(*) filter (where status = 'bounced')
           from messages",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((sent, bounced), (133, 67));
}

#[tokio::test]
async fn a_stale_follower_cannot_write() {
    let (url, pool) = fresh_database().await;
    let dir = TempDir::new();
    let lines = insert_generated(&pool, 5).await;
    append(&dir.log(), &joined(&lines));
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let mut a = Follower::load(&mut conn, &dir.log(), "fence")
        .await
        .unwrap();
    let mut b = Follower::load(&mut conn, &dir.log(), "fence")
        .await
        .unwrap();
    a.ingest_available(&mut conn).await.unwrap();
    let err = b.ingest_available(&mut conn).await.unwrap_err();
    assert!(format!("{err:#}").contains("moved under us"), "{err:#}");
    assert_eq!(event_lines(&pool).await.len(), 10);
}

#[tokio::test]
async fn the_lease_passes_on_when_its_holder_dies() {
    let (url, _pool) = fresh_database().await;
    let name = format!("lease-{}", Uuid::new_v4());
    let mut a = PgConnection::connect(&url).await.unwrap();
    let mut b = PgConnection::connect(&url).await.unwrap();
    assert!(try_acquire_lease(&mut a, &name).await.unwrap());
    assert!(!try_acquire_lease(&mut b, &name).await.unwrap());
    a.close().await.unwrap();
    let start = Instant::now();
    while !try_acquire_lease(&mut b, &name).await.unwrap() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "lease not released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
