//! Benchmarks, ignored in the test command: ingest rate, and a line's way to a committed status.
//! `bench/run.sh` runs them (`--run-ignored only`, or libtest's `--ignored`).

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use testkit::fresh_database;
use uuid::Uuid;
use worker::logtail::Follower;

use super::{TempDir, append, event_lines, insert_message, joined, message_lines, recipient};

/// Ingest rate with the real batching; run with `--ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark"]
async fn ingest_throughput() {
    let (url, pool) = fresh_database().await;
    let dir = TempDir::new();
    let count = 10_000;
    // Recipients in bulk: the per-row inserts of the harness would dominate.
    let mut lines = Vec::new();
    let (mut ids, mut mids, mut rcpts) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..count {
        let (message_id, rcpt, l) = message_lines(n);
        ids.push(Uuid::new_v4());
        mids.push(message_id);
        rcpts.push(rcpt);
        lines.extend(l);
    }
    sqlx::query(
        "insert into messages (id, from_email, from_domain, status, rfc_message_id, payload, size_bytes)
         select id, 'a@mailapi.test', 'mailapi.test', 'submitted', mid, '{}', 1
           from unnest($1::uuid[], $2::text[]) as u(id, mid)",
    )
    .bind(&ids)
    .bind(&mids)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into recipients (message_id, email, domain, kind)
         select id, r, 'example.com', 'to' from unnest($1::uuid[], $2::text[]) as u(id, r)",
    )
    .bind(&ids)
    .bind(&rcpts)
    .execute(&pool)
    .await
    .unwrap();
    append(&dir.log(), &joined(&lines));
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let mut f = Follower::load(&mut conn, &dir.log(), "bench")
        .await
        .unwrap();
    let start = Instant::now();
    let s = f.ingest_available(&mut conn).await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} lines in {:.2}s = {:.0} lines/s ({} batches, {} changes)",
        s.lines,
        secs,
        s.lines as f64 / secs,
        s.batches,
        s.changes
    );
    assert_eq!(s.lines, lines.len());
    assert_eq!(event_lines(&pool).await.len(), 2 * count);
}

/// Time from a delivery line being appended to its status being committed, with the follower
/// task running as in production; run with `--ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark"]
async fn log_line_to_status_latency() {
    let (url, pool) = fresh_database().await;
    let dir = TempDir::new();
    let log_path = dir.log().display().to_string();
    let settings = testkit::env_settings(&[
        ("MAILAPI_DATABASE_URL", &url),
        ("MAILAPI_MTA_LOG_PATH", &log_path),
    ]);
    append(&dir.log(), "");
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(worker::logtail::run(
        worker::context::WorkerContext::new(settings).unwrap(),
        stop.clone(),
    ));
    let mut samples = Vec::new();
    for n in 0..200 {
        let (message_id, rcpt, lines) = message_lines(n);
        let message = insert_message(&pool, &message_id, &[&rcpt]).await;
        append(&dir.log(), &joined(&lines[..3]));
        let start = Instant::now();
        append(&dir.log(), &joined(&lines[4..5]));
        loop {
            let (status, _, _, _) = recipient(&pool, message, &rcpt).await;
            if status != "pending" {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "line not applied");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        samples.push(start.elapsed());
    }
    stop.cancel();
    task.await.unwrap().unwrap();
    samples.sort();
    let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    println!(
        "log line -> status committed: p50 {:?}, p99 {:?}, max {:?}",
        pct(50),
        pct(99),
        samples[samples.len() - 1]
    );
}
