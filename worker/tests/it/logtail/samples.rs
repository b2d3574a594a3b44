//! Every outcome of the real samples (`worker/tests/fixtures/postfix-*.log`) in one log.

use sqlx::{Connection, PgConnection};
use testkit::fresh_database;
use worker::logtail::Follower;

use super::{
    TempDir, append, event_lines, insert_message, message_status, mid, postfix_log, recipient,
};

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
