//! The log follower against a real Postgres: every sample outcome, rotation, truncation, restarts
//! mid-file, a half-written line, the lease and the fencing of a stale follower.
//!
//! Each test makes its own database `mailapi_test_<uuid>` from MAILAPI_DATABASE_URL (source
//! /etc/mailapi/mailapi.env) and its own log file in a temporary directory.

mod bench;
mod files;
mod live;
mod races;
mod samples;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sqlx::PgPool;
use uuid::Uuid;

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
