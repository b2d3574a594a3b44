//! The bounce reader against the real stack: reports are delivered by Postfix (port 25) into the
//! `bounces` mailbox of a per-test bounce domain, read over IMAP from Dovecot as the master user,
//! and applied to recipients. Dovecot reads the main `mailapi` database, so the test works there
//! with its own domain and message, and deletes them afterwards.
//!
//! Needs the stack from `deploy/infra-up.sh` and `source /etc/mailapi/mailapi.env`.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use shared::config::Settings;
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use uuid::Uuid;
use worker::bounces::{self, PollStats};

/// A real report from `worker/tests/fixtures/`, as Postfix's bounce daemon wrote it: the file is
/// the copy Dovecot stored in the bounce mailbox, so the headers its final delivery added
/// (`Return-Path`, `Delivered-To` and the LMTP `Received`, everything above Postfix's own
/// `Received: by`) are taken off, and its CRLF line ends are made LF.
fn report(name: &str) -> String {
    let stored = testkit::fixture(name).replace("\r\n", "\n");
    let postfix = stored
        .find("Received: by mail.mailapi.test (Postfix)")
        .expect("Postfix's own Received header");
    stored[postfix..].to_owned()
}

/// A hard bounce: 550 5.1.1 for dave@bounce.example.
fn hard_report() -> String {
    report("dsn-verify-external_hard-20261123201756-24105.eml")
}

/// A report of a message that expired after 450 4.2.0 deferrals for erin@defer.example.
fn soft_report() -> String {
    report("dsn-verify-external_soft-20261123201756-24105.eml")
}

fn settings(bounce_domain: &str) -> Settings {
    testkit::env_settings(&[("MAILAPI_BOUNCE_DOMAIN", bounce_domain)])
}

/// Sends `body` to `rcpt` with a null sender over plain SMTP, as a remote MTA's report would come.
async fn deliver(rcpt: &str, body: &str) {
    let host = std::env::var("MAILAPI_MX_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("MAILAPI_MX_PORT").unwrap_or_else(|_| "25".into());
    let stream = TcpStream::connect(format!("{host}:{port}"))
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach Postfix at {host}:{port} ({e}); run deploy/infra-up.sh")
        });
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    async fn reply(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            read.read_line(&mut line).await.expect("smtp reply");
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }
    let mut expect = async |cmd: Option<String>, code: char| {
        if let Some(cmd) = &cmd {
            write.write_all(cmd.as_bytes()).await.unwrap();
        }
        let r = reply(&mut read).await;
        assert!(r.starts_with(code), "{cmd:?} -> {r}");
    };
    expect(None, '2').await;
    expect(Some("EHLO bounces-test.local\r\n".into()), '2').await;
    expect(Some("MAIL FROM:<>\r\n".into()), '2').await;
    expect(Some(format!("RCPT TO:<{rcpt}>\r\n")), '2').await;
    expect(Some("DATA\r\n".into()), '3').await;
    let mut data = String::new();
    for line in body.lines() {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    data.push_str(".\r\n");
    expect(Some(data), '2').await;
    expect(Some("QUIT\r\n".into()), '2').await;
}

async fn imap_session(settings: &Settings) -> async_imap::Session<TcpStream> {
    let stream = TcpStream::connect((settings.imap.host.as_str(), settings.imap.port))
        .await
        .expect("reach Dovecot");
    let mut client = async_imap::Client::new(stream);
    client.read_response().await.unwrap();
    let user = format!(
        "bounces@{}*{}",
        settings.bounce_domain, settings.imap.master_user
    );
    let password = settings
        .imap
        .master_password
        .as_ref()
        .expect("MAILAPI_IMAP_MASTER_PASSWORD");
    client
        .login(&user, password.expose_secret())
        .await
        .map_err(|(e, _)| e)
        .expect("master login")
}

/// Messages in each folder of the bounce mailbox.
async fn folder_counts(settings: &Settings) -> (usize, usize, usize) {
    let mut session = imap_session(settings).await;
    let mut counts = Vec::new();
    for folder in ["INBOX", bounces::PROCESSED, bounces::UNPARSED] {
        session.select(folder).await.expect("select");
        counts.push(session.uid_search("ALL").await.unwrap().len());
    }
    let _ = session.logout().await;
    (counts[0], counts[1], counts[2])
}

async fn cleanup(db: &PgPool, domain: &str, message: Uuid) {
    let _ = sqlx::query("delete from messages where id = $1")
        .bind(message)
        .execute(db)
        .await;
    let _ = sqlx::query("delete from suppressions where domain = $1")
        .bind(domain)
        .execute(db)
        .await;
    let _ = sqlx::query("delete from domains where domain = $1")
        .bind(domain)
        .execute(db)
        .await;
}

#[tokio::test]
async fn reports_in_the_bounce_mailbox_update_recipients() {
    let domain = format!("bt-{}.test", &Uuid::new_v4().simple().to_string()[..12]);
    let settings = settings(&domain);
    let db = PgPool::connect(settings.database_url.expose_secret())
        .await
        .expect("reach Postgres at MAILAPI_DATABASE_URL; run deploy/infra-up.sh");
    bounces::ensure_bounce_mailbox(&db, &domain).await.unwrap();
    bounces::ensure_bounce_mailbox(&db, &domain).await.unwrap();

    let message = Uuid::new_v4();
    let rfc_id = format!("<{}@{domain}>", message.simple());
    sqlx::query(
        "insert into messages (id, from_email, from_domain, status, rfc_message_id, payload,
                               size_bytes, submitted_at)
         values ($1, $2, $3, 'submitted', $4, '{}', 1, now())",
    )
    .bind(message)
    .bind(format!("app@{domain}"))
    .bind(&domain)
    .bind(&rfc_id)
    .execute(&db)
    .await
    .unwrap();
    for (email, status) in [
        ("dave@bounce.example", "pending"),
        ("erin@defer.example", "deferred"),
        ("carol@example.com", "sent"),
    ] {
        sqlx::query(
            "insert into recipients (message_id, email, domain, kind, status)
             values ($1, $2, 'x', 'to', $3)",
        )
        .bind(message)
        .bind(email)
        .bind(status)
        .execute(&db)
        .await
        .unwrap();
    }

    let (db2, domain2) = (db.clone(), domain.clone());
    let result = async move {
        let (db, domain) = (db2, domain2);
        // The hard bounce reaches us through the VERP address only (its original is not ours);
        // the soft one comes to the plain address and is matched by the original's Message-ID.
        let hard = hard_report().replace(
            "<verify-external_hard-20261123201756-24105@mailapi.test>",
            "<somebody-else@example.org>",
        );
        deliver(&format!("bounces+{}@{domain}", message.simple()), &hard).await;
        let soft = soft_report().replace(
            "<verify-external_soft-20261123201756-24105@mailapi.test>",
            &rfc_id,
        );
        deliver(&format!("bounces@{domain}"), &soft).await;
        deliver(
            &format!("bounces@{domain}"),
            "Subject: hello\n\nnot a report\n",
        )
        .await;

        let mut total = PollStats::default();
        let start = Instant::now();
        while total.fetched < 3 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "reports not seen: {total:?}"
            );
            let s = bounces::poll_once(&settings, &db)
                .await
                .expect("poll the bounce mailbox");
            total.fetched += s.fetched;
            total.matched += s.matched;
            total.applied += s.applied;
            total.unparsed += s.unparsed;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert_eq!(
            total,
            PollStats {
                fetched: 3,
                matched: 2,
                applied: 2,
                unparsed: 1
            }
        );

        let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "select email, status, dsn_code, smtp_response from recipients
              where message_id = $1 order by email",
        )
        .bind(message)
        .fetch_all(&db)
        .await
        .unwrap();
        assert_eq!(rows[0].1, "sent");
        assert_eq!(
            (rows[1].1.as_str(), rows[1].2.as_deref()),
            ("bounced", Some("5.1.1"))
        );
        assert_eq!(
            rows[1].3.as_deref(),
            Some("550 5.1.1 Recipient address rejected: User unknown (smtp-sink)")
        );
        assert_eq!(
            (rows[2].1.as_str(), rows[2].2.as_deref()),
            ("failed", Some("4.2.0"))
        );
        let status: String = sqlx::query_scalar("select status from messages where id = $1")
            .bind(message)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(status, "partial");
        let evidence: Vec<(String, String)> = sqlx::query_as(
            "select source, evidence from delivery_events where message_id = $1 order by id",
        )
        .bind(message)
        .fetch_all(&db)
        .await
        .unwrap();
        assert_eq!(evidence.len(), 2);
        assert!(evidence.iter().all(|(s, _)| s == "dsn"));
        // Reports arrive in either order; each event carries its report's fields.
        let fields: Vec<&str> = evidence.iter().map(|(_, e)| e.as_str()).collect();
        assert!(
            fields.iter().any(
                |e| e.contains("Final-Recipient: rfc822; dave@bounce.example")
                    && e.contains("Status: 5.1.1")
            ),
            "{fields:?}"
        );
        assert!(
            fields.iter().any(
                |e| e.contains("Final-Recipient: rfc822; erin@defer.example")
                    && e.contains("Status: 4.2.0")
            ),
            "{fields:?}"
        );
        let suppressed: Vec<String> =
            sqlx::query_scalar("select email from suppressions where domain = $1")
                .bind(&domain)
                .fetch_all(&db)
                .await
                .unwrap();
        assert_eq!(suppressed, ["dave@bounce.example"]);

        // A report processed long ago is pruned from `Processed` by the next poll.
        let mut session = imap_session(&settings).await;
        session
            .append(
                bounces::PROCESSED,
                Some("(\\Seen)"),
                Some("\"01-Jan-2020 00:00:00 +0000\""),
                hard_report().replace('\n', "\r\n"),
            )
            .await
            .expect("append an old report");
        let _ = session.logout().await;
        assert_eq!(folder_counts(&settings).await, (0, 3, 1));

        // Read again: nothing new, nothing applied twice; the inbox is empty.
        let again = bounces::poll_once(&settings, &db).await.unwrap();
        assert_eq!(again, PollStats::default());
        assert_eq!(folder_counts(&settings).await, (0, 2, 1));
    };
    // Clean up the shared database whether or not the assertions held.
    let outcome = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(60), result)
            .await
            .expect("the test finishes within a minute")
    })
    .await;
    cleanup(&db, &domain, message).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
