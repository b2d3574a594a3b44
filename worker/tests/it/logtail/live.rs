//! The follower on the live Postfix log, and as the worker's task: one leads, another takes over.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use testkit::fresh_database;
use uuid::Uuid;
use worker::logtail::Follower;

use super::{
    TempDir, append, event_lines, insert_generated, insert_message, joined, message_status,
    recipient,
};

/// The real Postfix: one message to a local mailbox, an unknown local user and the three sinks,
/// submitted on port 587 as the worker does, followed in the live log until every recipient
/// that can finish has its status.
#[tokio::test]
async fn real_postfix_outcomes() {
    use lettre::AsyncTransport as _;
    use secrecy::ExposeSecret as _;

    shared::install_crypto_provider();
    let (url, pool) = fresh_database().await;
    let settings = testkit::env_settings(&[]);
    let log = settings.mta_log_path.clone();

    // A local domain with one mailbox, in the database Postfix reads; removed at the end.
    let domain = format!("lt-{}.test", &Uuid::new_v4().simple().to_string()[..12]);
    let main = PgPool::connect(settings.database_url.expose_secret())
        .await
        .unwrap();
    worker::bounces::ensure_bounce_mailbox(&main, &domain)
        .await
        .unwrap();

    let local = format!("bounces@{domain}");
    let unknown = format!("nobody@{domain}");
    let rcpts = [
        local.as_str(),
        unknown.as_str(),
        "ok@sink-ok.test",
        "hard@sink-hard.test",
        "soft@sink-soft.test",
    ];
    let id = Uuid::new_v4();
    let rfc_id = format!("<{}@{domain}>", id.simple());
    let message = insert_message(&pool, &rfc_id, &rcpts).await;

    // Start following at the current end of the live log.
    let meta = std::fs::metadata(&log).expect("the Postfix log (run deploy/infra-up.sh)");
    let log_name = format!("real-{}", Uuid::new_v4());
    {
        use std::os::unix::fs::MetadataExt as _;
        sqlx::query(
            "insert into log_positions (log_name, file_id, byte_offset) values ($1, $2, $3)",
        )
        .bind(&log_name)
        .bind(format!("{}:{}", meta.dev(), meta.ino()))
        .bind(meta.len() as i64)
        .execute(&pool)
        .await
        .unwrap();
    }

    let smtp = &settings.smtp;
    let mut builder =
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port);
    if let (Some(user), Some(pass)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
            user.clone(),
            pass.expose_secret().to_owned(),
        ));
    }
    let transport = builder.build();
    let envelope = lettre::address::Envelope::new(
        Some(format!("bounces+{}@{domain}", id.simple()).parse().unwrap()),
        rcpts.iter().map(|r| r.parse().unwrap()).collect(),
    )
    .unwrap();
    let body = format!(
        "From: app@{domain}\r\nTo: undisclosed-recipients:;\r\nSubject: logtail test\r\n\
         Message-ID: {rfc_id}\r\n\r\nhello\r\n"
    );
    transport
        .send_raw(&envelope, body.as_bytes())
        .await
        .expect("submission on port 587");

    let mut conn = PgConnection::connect(&url).await.unwrap();
    let mut follower = Follower::load(&mut conn, &log, &log_name).await.unwrap();
    let start = Instant::now();
    let want = [
        ("bounced", Some("5.1.1")),
        ("sent", Some("2.0.0")),
        ("bounced", Some("5.1.1")),
        ("deferred", Some("4.2.0")),
        ("sent", Some("2.0.0")),
    ];
    let order = [
        unknown.as_str(),
        local.as_str(),
        "hard@sink-hard.test",
        "soft@sink-soft.test",
        "ok@sink-ok.test",
    ];
    let mut got = Vec::new();
    while start.elapsed() < Duration::from_secs(15) {
        follower.ingest_available(&mut conn).await.unwrap();
        got.clear();
        for r in order {
            let (status, dsn, _, _) = recipient(&pool, message, r).await;
            got.push((status, dsn));
        }
        if got.iter().all(|(s, _)| s != "pending") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = sqlx::query("delete from domains where domain = $1")
        .bind(&domain)
        .execute(&main)
        .await;
    let got: Vec<(&str, Option<&str>)> = got
        .iter()
        .map(|(s, d)| (s.as_str(), d.as_deref()))
        .collect();
    assert_eq!(got, want, "statuses of {order:?}");
    let (status, _) = message_status(&pool, message).await;
    assert_eq!(
        status, "partial",
        "delivered and bounced recipients make it partial while the deferred one stays open"
    );
    let (committed,): (bool,) =
        sqlx::query_as("select committed from mta_queue_entries where rfc_message_id = $1")
            .bind(&rfc_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(committed);
}

/// Two workers run the follower task on one log: the first leads, the second takes over when
/// the first stops, and every line is still applied exactly once.
#[tokio::test]
async fn a_second_worker_takes_over_the_log() {
    let (url, pool) = fresh_database().await;
    let dir = TempDir::new();
    let lines = insert_generated(&pool, 40).await;
    let (first, second) = lines.split_at(lines.len() / 2);
    let log_path = dir.log().display().to_string();
    let settings = testkit::env_settings(&[
        ("MAILAPI_DATABASE_URL", &url),
        ("MAILAPI_MTA_LOG_PATH", &log_path),
    ]);
    let ctx =
        |s: &shared::config::Settings| worker::context::WorkerContext::new(s.clone()).unwrap();
    let expected: Vec<String> = lines
        .iter()
        .filter(|l| l.contains(": to=<"))
        .cloned()
        .collect();
    let wait_for = async |n: usize| {
        let start = Instant::now();
        loop {
            let got = event_lines(&pool).await;
            if got.len() >= n || start.elapsed() > Duration::from_secs(10) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    append(&dir.log(), &joined(first));
    let stop_a = tokio_util::sync::CancellationToken::new();
    let a = tokio::spawn(worker::logtail::run(ctx(&settings), stop_a.clone()));
    let half = first.iter().filter(|l| l.contains(": to=<")).count();
    assert_eq!(
        wait_for(half).await.len(),
        half,
        "the first worker follows the log"
    );

    let stop_b = tokio_util::sync::CancellationToken::new();
    let b = tokio::spawn(worker::logtail::run(ctx(&settings), stop_b.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_a.cancel();
    a.await.unwrap().unwrap();
    append(&dir.log(), &joined(second));
    let start = Instant::now();
    let got = wait_for(expected.len()).await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "takeover took {:?}",
        start.elapsed()
    );
    stop_b.cancel();
    b.await.unwrap().unwrap();
    assert_eq!(got, expected);
}
