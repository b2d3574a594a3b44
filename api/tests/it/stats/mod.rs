//! `GET /stats/delivery` and `GET /stats/domain/{domain}`: every figure equals a direct SQL
//! count over the raw rows, for mail written through the real pipeline (send, submit, sent,
//! bounced, deferred then sent, refused, suppressed, inbound); the rollups equal a rebuild from
//! scratch; who may see what; and each 400.

mod figures;
mod requests;

use chrono::{Duration, DurationRound, Utc};
use serde_json::Value;
use shared::delivery::RecipientStatus::{Bounced, Deferred, Failed, Sent};
use testkit::TestApp;

async fn get_ok(app: &TestApp, path: &str, token: &str) -> Value {
    let resp = app.get(path, Some(token)).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(body["success"], true, "{body}");
    body
}

/// The scenario: two domains, three senders, mail over 40 days in every status.
struct World {
    app: TestApp,
    admin: String,
    alice: String,
}

async fn world() -> World {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    let a = app.domain("a.test", true).await;
    let b = app.domain("b.test", true).await;
    let alice = app.mailbox_with_token("alice@a.test", a).await;
    app.mailbox_with_token("carol@a.test", a).await;
    app.mailbox_with_token("bob@b.test", b).await;
    let db = &app.db;
    let now = Utc::now();
    let hour = now.duration_trunc(Duration::hours(1)).unwrap();
    let send = |from: &'static str, to: &'static [&'static str], bcc: &'static [&'static str]| {
        testkit::stats::send(&app, &admin, from, to, bcc)
    };

    // An address the API stores as `suppressed` at once.
    sqlx::query("insert into suppressions (domain, email, reason) values ('a.test', 's1@gmail.test', 'test')")
        .execute(db)
        .await
        .unwrap();

    let m1 = send(
        "alice@a.test",
        &["x1@gmail.test", "x2@outlook.test", "x3@gmail.test"],
        &[],
    )
    .await;
    let m2 = send("alice@a.test", &["y1@gmail.test"], &["y2@yahoo.test"]).await;
    testkit::stats::backdate(db, m2, hour - Duration::days(2) + Duration::minutes(30)).await;
    let m3 = send("carol@a.test", &["z1@outlook.test", "z2@gmail.test"], &[]).await;
    // Ten minutes before a midnight three days ago: the edge of day and hour ranges.
    let midnight = now.duration_trunc(Duration::days(1)).unwrap() - Duration::days(2);
    testkit::stats::backdate(db, m3, midnight - Duration::minutes(10)).await;
    let m4 = send("bob@b.test", &["w1@gmail.test", "w2@proton.test"], &[]).await;
    let m5 = send("alice@a.test", &["s1@gmail.test", "s2@gmail.test"], &[]).await;
    let m6 = send("alice@a.test", &["old@gmail.test"], &[]).await;
    testkit::stats::backdate(db, m6, now - Duration::days(40)).await;
    let _pending = send("bob@b.test", &["p@gmail.test"], &[]).await;
    let m8 = send("alice@a.test", &["f1@gmail.test", "f2@yahoo.test"], &[]).await;
    testkit::stats::backdate(db, m8, hour - Duration::hours(5) + Duration::minutes(59)).await;

    for m in [m1, m2, m3, m4, m5, m6] {
        testkit::stats::submit(db, m).await;
    }
    testkit::stats::submit_refused(db, m8).await;
    // The log follower's batches: first deferrals and some outcomes, then the deferred ones
    // delivered (each must move from `deferred` to `sent`, counted once).
    testkit::stats::statuses(
        db,
        &[
            (m1, "x1@gmail.test", Sent),
            (m1, "x2@outlook.test", Deferred),
            (m2, "y1@gmail.test", Deferred),
            (m4, "w1@gmail.test", Deferred),
            (m3, "z1@outlook.test", Sent),
        ],
    )
    .await;
    testkit::stats::statuses(
        db,
        &[
            (m1, "x2@outlook.test", Sent),
            (m1, "x3@gmail.test", Bounced),
            (m2, "y2@yahoo.test", Sent),
            (m3, "z2@gmail.test", Failed),
            (m4, "w1@gmail.test", Sent),
            (m4, "w2@proton.test", Bounced),
            (m5, "s2@gmail.test", Sent),
            (m6, "old@gmail.test", Sent),
        ],
    )
    .await;

    // Inbound, as the follower records it (spam is accepted and flagged; null sender = bounce).
    testkit::stats::inbound(
        db,
        &[
            ("alice@a.test", Some("u1@gmail.test"), "accepted", now),
            (
                "alice@a.test",
                Some("u2@gmail.test"),
                "accepted",
                now - Duration::days(1),
            ),
            (
                "carol@a.test",
                Some("u3@gmail.test"),
                "accepted",
                midnight - Duration::minutes(5),
            ),
            ("carol@a.test", Some("u4@outlook.test"), "accepted", now),
            ("alice@a.test", Some("x@spam.test"), "spam", now),
            (
                "alice@a.test",
                Some("y@spam.test"),
                "spam",
                now - Duration::hours(30),
            ),
            ("alice@a.test", Some("z@bad.test"), "rejected", now),
            ("alice@a.test", None, "accepted", now),
            (
                "alice@a.test",
                Some("u5@gmail.test"),
                "accepted",
                now - Duration::days(10),
            ),
            ("bob@b.test", Some("u6@gmail.test"), "accepted", now),
        ],
    )
    .await;
    World { app, admin, alice }
}
