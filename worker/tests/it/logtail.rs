//! The log follower against a real Postgres: every sample outcome, rotation, truncation, restarts
//! mid-file, a half-written line, the lease and the fencing of a stale follower.
//!
//! Each test makes its own database `mailapi_test_<uuid>` from MAILAPI_DATABASE_URL (source
//! /etc/mailapi/mailapi.env) and its own log file in a temporary directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};
use testkit::fresh_database;
use uuid::Uuid;
use worker::logtail::{Follower, try_acquire_lease};

/// The real sample `worker/tests/fixtures/postfix-<name>.log`. `expired` begins with the lines of
/// `external_soft` (same queue id), so that file is covered by it.
fn postfix_log(name: &str) -> String {
    testkit::fixture(&format!("postfix-{name}.log"))
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("logtail-test-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
    fn log(&self) -> PathBuf {
        self.0.join("postfix.log")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log for append");
    f.write_all(text.as_bytes()).expect("append to log");
}

/// A submitted message from `from_email` with these recipients; returns its id.
async fn insert_message(pool: &PgPool, rfc_message_id: &str, recipients: &[&str]) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into messages (id, from_email, from_domain, status, rfc_message_id, payload,
                               size_bytes, submitted_at)
         values ($1, 'alice@mailapi.test', 'mailapi.test', 'submitted', $2, '{}', 100, now())",
    )
    .bind(id)
    .bind(rfc_message_id)
    .execute(pool)
    .await
    .expect("insert message");
    for r in recipients {
        let domain = r.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        sqlx::query(
            "insert into recipients (message_id, email, domain, kind) values ($1, $2, $3, 'to')",
        )
        .bind(id)
        .bind(r)
        .bind(domain)
        .execute(pool)
        .await
        .expect("insert recipient");
    }
    id
}

async fn recipient(
    pool: &PgPool,
    message: Uuid,
    email: &str,
) -> (String, Option<String>, Option<String>, bool) {
    sqlx::query_as(
        "select status, dsn_code, smtp_response, delivered_at is not null
           from recipients where message_id = $1 and email = $2",
    )
    .bind(message)
    .bind(email)
    .fetch_one(pool)
    .await
    .expect("recipient row")
}

async fn message_status(pool: &PgPool, message: Uuid) -> (String, bool) {
    sqlx::query_as("select status, completed_at is not null from messages where id = $1")
        .bind(message)
        .fetch_one(pool)
        .await
        .expect("message row")
}

/// Evidence of every delivery event, in the order they were stored.
async fn event_lines(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("select evidence from delivery_events order by id")
        .fetch_all(pool)
        .await
        .expect("events")
}

fn mid(sample_name: &str) -> String {
    format!("<verify-{sample_name}-20261123201756-24105@mailapi.test>")
}

#[tokio::test]
async fn every_sample_outcome() {
    let (url, pool) = fresh_database().await;
    let dir = TempDir::new();
    let m = |s| mid(s);
    let local = insert_message(&pool, &m("local"), &["alice@mailapi.test"]).await;
    let unknown = insert_message(&pool, &m("unknown_local"), &["nobody@mailapi.test"]).await;
    let ok = insert_message(&pool, &m("external_ok"), &["carol@example.com"]).await;
    let hard = insert_message(&pool, &m("external_hard"), &["dave@bounce.example"]).await;
    let soft = insert_message(&pool, &m("external_soft"), &["erin@defer.example"]).await;
    let down = insert_message(&pool, &m("external_down"), &["frank@down.example"]).await;
    let error = insert_message(&pool, &m("error_transport"), &["gina@error.example"]).await;
    let retry = insert_message(&pool, &m("retry_transport"), &["hank@retry.example"]).await;
    let alias = insert_message(&pool, &m("alias"), &["postmaster@mailapi.test"]).await;
    let sendmail = insert_message(&pool, &m("sendmail"), &["alice@mailapi.test"]).await;
    let multi_rcpts = [
        "nobody@mailapi.test",
        "ivan@example.com",
        "alice@mailapi.test",
        "bob@mailapi.test",
        "judy@defer.example",
    ];
    let multi = insert_message(&pool, &m("multi"), &multi_rcpts).await;

    let all = [
        "local",
        "unknown_local",
        "external_ok",
        "external_hard",
        "expired",
        "external_down",
        "error_transport",
        "retry_transport",
        "alias",
        "sendmail",
        "multi",
        "rcpt_reject",
    ]
    .map(postfix_log);
    for sample in &all {
        append(&dir.log(), sample);
    }
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let mut follower = Follower::load(&mut conn, &dir.log(), "test").await.unwrap();
    let stats = follower.ingest_available(&mut conn).await.unwrap();
    let total_lines: usize = all.iter().map(|s| s.lines().count()).sum();
    assert_eq!(stats.lines, total_lines);
    assert_eq!(stats.unparsed, 0);

    let sent = |r: (String, Option<String>, Option<String>, bool)| {
        assert_eq!(r.0, "sent");
        assert_eq!(r.1.as_deref(), Some("2.0.0"));
        assert!(r.3, "delivered_at is set");
    };
    sent(recipient(&pool, local, "alice@mailapi.test").await);
    sent(recipient(&pool, ok, "carol@example.com").await);
    sent(recipient(&pool, alias, "postmaster@mailapi.test").await);
    sent(recipient(&pool, sendmail, "alice@mailapi.test").await);
    for id in [local, ok, alias, sendmail] {
        assert_eq!(message_status(&pool, id).await, ("sent".to_owned(), true));
    }

    let r = recipient(&pool, unknown, "nobody@mailapi.test").await;
    assert_eq!((r.0.as_str(), r.1.as_deref()), ("bounced", Some("5.1.1")));
    assert!(r.2.unwrap().contains("User doesn't exist"));
    assert!(!r.3);
    let r = recipient(&pool, hard, "dave@bounce.example").await;
    assert_eq!((r.0.as_str(), r.1.as_deref()), ("bounced", Some("5.1.1")));
    let r = recipient(&pool, error, "gina@error.example").await;
    assert_eq!(r.2.as_deref(), Some("mailapi-lab: simulated unknown user"));
    for id in [unknown, hard, error] {
        assert_eq!(
            message_status(&pool, id).await,
            ("bounced".to_owned(), true)
        );
    }

    // Expired after a deferral: failed, keeping the last code, and the message bounced.
    let r = recipient(&pool, soft, "erin@defer.example").await;
    assert_eq!((r.0.as_str(), r.1.as_deref()), ("failed", Some("4.2.0")));
    assert!(r.2.unwrap().starts_with("force-expired"));
    assert_eq!(message_status(&pool, soft).await.0, "bounced");

    let r = recipient(&pool, down, "frank@down.example").await;
    assert_eq!((r.0.as_str(), r.1.as_deref()), ("deferred", Some("4.4.1")));
    assert_eq!(
        r.2.as_deref(),
        Some("connect to 127.0.0.1[127.0.0.1]:2529: Connection refused")
    );
    let r = recipient(&pool, retry, "hank@retry.example").await;
    assert_eq!(r.0, "deferred");
    for id in [down, retry] {
        assert_eq!(
            message_status(&pool, id).await,
            ("submitted".to_owned(), false)
        );
    }

    let mut got = Vec::new();
    for r in multi_rcpts {
        got.push(recipient(&pool, multi, r).await.0);
    }
    assert_eq!(got, ["bounced", "sent", "sent", "sent", "deferred"]);
    // Judy is still open (deferred), but one delivered and one bounced already make it partial.
    assert_eq!(
        message_status(&pool, multi).await,
        ("partial".to_owned(), false),
        "partial while judy is still open, and not completed"
    );

    // Hard bounces are suppressed for the sending domain; the soft one is not.
    let suppressed: Vec<String> = sqlx::query_scalar(
        "select email from suppressions where domain = 'mailapi.test' order by email",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        suppressed,
        [
            "dave@bounce.example",
            "gina@error.example",
            "nobody@mailapi.test"
        ]
    );

    // One event per status change, with the line as evidence, in log order.
    let expected: Vec<String> = all
        .iter()
        .flat_map(|s| s.lines())
        .filter(|l| {
            (l.contains(": to=<") && !l.contains("to=<bounces@mailapi.test>"))
                || l.contains("status=force-expired")
        })
        .map(str::to_owned)
        .collect();
    assert_eq!(event_lines(&pool).await, expected);

    // Only our queue ids are recorded, all committed.
    let (entries, committed): (i64, i64) =
        sqlx::query_as("select count(*), count(*) filter (where committed) from mta_queue_entries")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((entries, committed), (11, 11));

    // Inbound: the five bounce reports saved by LMTP, and the refusal on port 25.
    let inbound: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "select status, domain, recipient, sender_domain from inbound_events order by id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let accepted = inbound.iter().filter(|i| i.0 == "accepted").count();
    assert_eq!(accepted, 5);
    assert!(
        inbound
            .iter()
            .filter(|i| i.0 == "accepted")
            .all(|i| i.2 == "bounces@mailapi.test" && i.3.is_none())
    );
    let rejected: Vec<_> = inbound.iter().filter(|i| i.0 == "rejected").collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        (
            rejected[0].1.as_str(),
            rejected[0].2.as_str(),
            rejected[0].3.as_deref()
        ),
        ("mailapi.test", "nobody@mailapi.test", Some("mailapi.test"))
    );

    // Nothing more to read; a second pass changes nothing.
    let again = follower.ingest_available(&mut conn).await.unwrap();
    assert_eq!(again.lines, 0);
    assert_eq!(event_lines(&pool).await.len(), expected.len());
}

/// Lines of one generated message: queued, deferred once, then sent or bounced.
fn message_lines(n: usize) -> (String, String, Vec<String>) {
    let qid = format!("4jQ{n:012}");
    let message_id = format!("<m{n}@load.test>");
    let rcpt = format!("user{n}@example.com");
    let t = "Nov 23 20:17:57 mail";
    let last = if n.is_multiple_of(3) {
        format!("dsn=5.1.1, status=bounced (host x said: 550 5.1.1 unknown user {n})")
    } else {
        format!("dsn=2.0.0, status=sent (250 2.0.0 Ok {n})")
    };
    let lines = vec![
        format!("{t} postfix/submission/smtpd[1]: {qid}: client=localhost[127.0.0.1]"),
        format!("{t} postfix/cleanup[2]: {qid}: message-id={message_id}"),
        format!(
            "{t} postfix/qmgr[3]: {qid}: from=<bounces+x@b.test>, size=500, nrcpt=1 (queue active)"
        ),
        format!(
            "{t} postfix/smtp[4]: {qid}: to=<{rcpt}>, relay=127.0.0.1[127.0.0.1]:2527, delay=0.01, delays=0/0/0/0, dsn=4.2.0, status=deferred (450 4.2.0 busy {n})"
        ),
        format!(
            "{t} postfix/smtp[4]: {qid}: to=<{rcpt}>, relay=127.0.0.1[127.0.0.1]:2526, delay=0.02, delays=0/0/0/0, {last}"
        ),
        format!("{t} postfix/qmgr[3]: {qid}: removed"),
    ];
    (message_id, rcpt, lines)
}

async fn insert_generated(pool: &PgPool, count: usize) -> Vec<String> {
    let mut all = Vec::new();
    for n in 0..count {
        let (message_id, rcpt, lines) = message_lines(n);
        insert_message(pool, &message_id, &[&rcpt]).await;
        all.extend(lines);
    }
    all
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

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

/// The real Postfix: one message to a local mailbox, an unknown local user and the three sinks,
/// submitted on port 587 as the worker does, followed in the live log until every recipient
/// that can finish has its status.
#[tokio::test]
async fn real_postfix_outcomes() {
    use lettre::AsyncTransport as _;
    use secrecy::ExposeSecret as _;

    shared::install_crypto_provider();
    let (url, pool) = fresh_database().await;
    let map: std::collections::HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MAILAPI_"))
        .collect();
    let settings = shared::config::Settings::from_lookup(|k| map.get(k).cloned()).unwrap();
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
    let map: std::collections::HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MAILAPI_"))
        .chain([
            ("MAILAPI_DATABASE_URL".to_owned(), url.clone()),
            (
                "MAILAPI_MTA_LOG_PATH".to_owned(),
                dir.log().display().to_string(),
            ),
        ])
        .collect();
    let settings = shared::config::Settings::from_lookup(|k| map.get(k).cloned()).unwrap();
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

/// Time from a delivery line being appended to its status being committed, with the follower
/// task running as in production; run with `--ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark"]
async fn log_line_to_status_latency() {
    let (url, pool) = fresh_database().await;
    let dir = TempDir::new();
    let map: std::collections::HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MAILAPI_"))
        .chain([
            ("MAILAPI_DATABASE_URL".to_owned(), url.clone()),
            (
                "MAILAPI_MTA_LOG_PATH".to_owned(),
                dir.log().display().to_string(),
            ),
        ])
        .collect();
    let settings = shared::config::Settings::from_lookup(|k| map.get(k).cloned()).unwrap();
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
