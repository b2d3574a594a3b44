//! Statistics periods to the second: a period from 10:17:00 counts nothing accepted (or received)
//! from 10:00:00 to 10:16:59.999, and its end second is included whole. The whole hours come from
//! the rollups and the partial hours at the edges from the raw rows; every figure, in every
//! grouping and scope, equals a direct count, and the figures are also spelled out.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::Value;
use shared::delivery::RecipientStatus::{Bounced, Deferred, Sent};
use testkit::TestApp;
use testkit::stats::{Figures, Key, direct, row_figures, summary_figures};
use uuid::Uuid;

async fn get_ok(app: &TestApp, path: &str, token: &str) -> Value {
    let resp = app.get(path, Some(token)).await;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Sends one message and moves it to `at` (to the microsecond) before anything is counted.
async fn sent_at(app: &TestApp, admin: &str, from: &str, to: &[&str], at: DateTime<Utc>) -> Uuid {
    let id = testkit::stats::send(app, admin, from, to, &[]).await;
    testkit::stats::backdate(&app.db, id, at).await;
    id
}

struct Edges {
    app: TestApp,
    admin: String,
    /// 10:00 UTC three days ago: the hour the period starts in, at 10:17:00.
    ten: DateTime<Utc>,
}

/// Mail on both sides of each edge of the period 10:17:00 .. 13:44:59 three days ago.
async fn edges() -> Edges {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    let a = app.domain("a.test", true).await;
    let b = app.domain("b.test", true).await;
    app.mailbox_with_token("alice@a.test", a).await;
    app.mailbox_with_token("bob@b.test", b).await;
    let day = Utc::now().duration_trunc(Duration::days(1)).unwrap() - Duration::days(3);
    let ten = day + Duration::hours(10);
    let at = |h: i64, m: i64, s: i64, ms: i64| {
        ten + Duration::hours(h)
            + Duration::minutes(m)
            + Duration::seconds(s)
            + Duration::milliseconds(ms)
    };
    let db = &app.db;
    let send = |to: &'static [&'static str], when| sent_at(&app, &admin, "alice@a.test", to, when);

    // Before the start, in its hour: in the 10:00 rollup row, never in the period.
    let early = send(&["e1@gmail.test", "e2@outlook.test"], at(0, 16, 59, 900)).await;
    // The first second, and the last instant of the first hour.
    let first = send(&["f1@gmail.test", "f2@yahoo.test"], at(0, 17, 0, 0)).await;
    let refused = send(&["r1@gmail.test"], at(0, 59, 59, 999)).await;
    // A whole hour.
    let whole = send(&["w1@outlook.test"], at(1, 30, 0, 0)).await;
    // The last hour: its first instant and the end second (included whole), then just after.
    let tail = send(&["t1@gmail.test"], at(3, 0, 0, 0)).await;
    let last = send(&["l1@yahoo.test"], at(3, 44, 59, 700)).await;
    let late = send(&["z1@gmail.test"], at(3, 45, 0, 0)).await;
    // Another sender inside the head edge: in the figures for all mail only.
    let bob = sent_at(
        &app,
        &admin,
        "bob@b.test",
        &["b1@gmail.test"],
        at(0, 20, 0, 0),
    )
    .await;

    for m in [early, first, whole, tail, last, late, bob] {
        testkit::stats::submit(db, m).await;
    }
    testkit::stats::submit_refused(db, refused).await;
    testkit::stats::statuses(
        db,
        &[
            (early, "e1@gmail.test", Sent),
            (early, "e2@outlook.test", Sent),
            (first, "f1@gmail.test", Sent),
            (first, "f2@yahoo.test", Bounced),
            (whole, "w1@outlook.test", Sent),
            (tail, "t1@gmail.test", Bounced),
            (last, "l1@yahoo.test", Deferred),
            (late, "z1@gmail.test", Sent),
            (bob, "b1@gmail.test", Sent),
        ],
    )
    .await;
    testkit::stats::inbound(
        db,
        &[
            (
                "alice@a.test",
                Some("x@early.test"),
                "accepted",
                at(0, 16, 59, 999),
            ),
            (
                "alice@a.test",
                Some("x@first.test"),
                "accepted",
                at(0, 17, 0, 0),
            ),
            ("alice@a.test", Some("x@whole.test"), "spam", at(2, 0, 0, 0)),
            (
                "alice@a.test",
                Some("x@last.test"),
                "rejected",
                at(3, 44, 59, 500),
            ),
            (
                "alice@a.test",
                Some("x@late.test"),
                "accepted",
                at(3, 45, 0, 0),
            ),
        ],
    )
    .await;
    Edges { app, admin, ten }
}

fn figures(total: i64, delivered: i64, bounced: i64, deferred: i64, rejected: i64) -> Figures {
    Figures {
        total,
        delivered,
        bounced,
        deferred,
        rejected,
    }
}

#[tokio::test]
async fn a_period_from_10_17_counts_nothing_from_10_00_to_10_16() {
    let e = edges().await;
    let (app, admin, ten) = (&e.app, e.admin.as_str(), e.ten);
    let start = iso(ten + Duration::minutes(17));
    let end = iso(ten + Duration::hours(3) + Duration::minutes(44) + Duration::seconds(59));
    let range = format!("start_date={start}&end_date={end}");

    let hours = get_ok(
        app,
        &format!("/stats/delivery?{range}&group_by=hour&sender=a.test"),
        admin,
    )
    .await;
    assert_eq!(hours["period"]["start"], start.as_str());
    assert_eq!(hours["period"]["end"], end.as_str());
    // first (sent, bounced) and refused (rejected); whole (sent); tail (bounced), last (deferred).
    // Not early (10:16:59.9) or late (13:45:00).
    assert_eq!(
        summary_figures(&hours["summary"]),
        figures(6, 2, 2, 1, 1),
        "{hours}"
    );
    let rows: Vec<(String, Figures)> = hours["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["hour"].as_str().unwrap().to_owned(), row_figures(r)))
        .collect();
    let hour = |h: i64| iso(ten + Duration::hours(h));
    assert_eq!(
        rows,
        [
            (hour(3), figures(2, 0, 1, 1, 0)),
            (hour(2), figures(0, 0, 0, 0, 0)),
            (hour(1), figures(1, 1, 0, 0, 0)),
            (hour(0), figures(3, 1, 1, 0, 1)),
        ],
        "{hours}"
    );
    // The rollups alone would have counted `early`: a period from 10:00:00 does.
    let from_ten = get_ok(
        app,
        &format!(
            "/stats/delivery?start_date={}&end_date={end}&sender=a.test",
            iso(ten)
        ),
        admin,
    )
    .await;
    assert_eq!(
        summary_figures(&from_ten["summary"]),
        figures(8, 4, 2, 1, 1),
        "{from_ten}"
    );

    // Other periods, for every way an edge is counted (docs/STATS.md, "Periods"): the figures of
    // a.test by name, and every grouping and scope against the direct count.
    let at = |h: i64, m: i64, s: i64| {
        iso(ten + Duration::hours(h) + Duration::minutes(m) + Duration::seconds(s))
    };
    for (start, end, a_test) in [
        // Both edges longer than half an hour: their hours minus 10:00-10:16:59 (early) and
        // 13:45:00-13:59:59 (late).
        (at(0, 17, 0), at(3, 44, 59), figures(6, 2, 2, 1, 1)),
        // Both edges shorter: counted directly. refused, whole and tail; not first or last.
        (at(0, 45, 0), at(3, 14, 59), figures(3, 1, 1, 0, 1)),
        // Inside one hour, short: directly. Only first (10:17:00).
        (at(0, 17, 0), at(0, 44, 59), figures(2, 1, 1, 0, 0)),
        // Inside one hour, long: the hour minus 10:00-10:04:59 and 10:55:00-10:59:59, which
        // holds refused (10:59:59.999). early and first.
        (at(0, 5, 0), at(0, 54, 59), figures(4, 3, 1, 0, 0)),
        // Ending at the end of an hour: first and refused.
        (at(0, 17, 0), at(0, 59, 59), figures(3, 1, 1, 0, 1)),
    ] {
        let range = format!("start_date={start}&end_date={end}");
        let a = get_ok(
            app,
            &format!("/stats/delivery?{range}&sender=a.test"),
            admin,
        )
        .await;
        assert_eq!(summary_figures(&a["summary"]), a_test, "{range}: {a}");
        for (scope, from_domain, from_email) in [
            ("", None, None),
            ("&sender=a.test", Some("a.test"), None),
            ("&sender=alice@a.test", None, Some("alice@a.test")),
            ("&sender=b.test", Some("b.test"), None),
        ] {
            for (group, key, field) in [
                ("day", Key::Day, "date"),
                ("hour", Key::Hour, "hour"),
                ("domain", Key::RcptDomain, "domain"),
            ] {
                let q = format!("/stats/delivery?{range}&group_by={group}{scope}");
                let body = get_ok(app, &q, admin).await;
                let all = direct(&app.db, &start, &end, from_domain, from_email, Key::All).await;
                let want_total = all.get("").copied().unwrap_or_default();
                assert_eq!(summary_figures(&body["summary"]), want_total, "{q}: {body}");
                let want = direct(&app.db, &start, &end, from_domain, from_email, key).await;
                let mut sum = Figures::default();
                for row in body["breakdown"].as_array().unwrap() {
                    let f = row_figures(row);
                    sum.total += f.total;
                    sum.delivered += f.delivered;
                    sum.bounced += f.bounced;
                    sum.deferred += f.deferred;
                    sum.rejected += f.rejected;
                    if f != Figures::default() {
                        let k = row[field].as_str().unwrap();
                        assert_eq!(want.get(k), Some(&f), "{q}: {k} in {body}");
                    }
                }
                assert_eq!(sum, want_total, "the rows of {q} add up to the summary");
            }
        }
    }
}

#[tokio::test]
async fn domain_statistics_honour_the_edges_outbound_and_inbound() {
    let e = edges().await;
    let (app, admin, ten) = (&e.app, e.admin.as_str(), e.ten);
    let start = iso(ten + Duration::minutes(17));
    let end = iso(ten + Duration::hours(3) + Duration::minutes(44) + Duration::seconds(59));
    let body = get_ok(
        app,
        &format!("/stats/domain/a.test?start_date={start}&end_date={end}"),
        admin,
    )
    .await;
    assert_eq!(body["period"]["start"], start.as_str());
    assert_eq!(body["period"]["end"], end.as_str());
    let out = &body["outbound"];
    assert_eq!(
        (out["total"].as_i64(), out["delivered"].as_i64()),
        (Some(6), Some(2)),
        "{body}"
    );
    assert_eq!(
        (out["bounced"].as_i64(), out["deferred"].as_i64()),
        (Some(2), Some(1)),
        "{body}"
    );
    let top: Vec<(&str, i64)> = out["top_recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["domain"].as_str().unwrap(), r["count"].as_i64().unwrap()))
        .collect();
    // early's outlook.test recipient is outside: outlook.test has only `whole`'s.
    assert_eq!(
        top,
        [("gmail.test", 3), ("yahoo.test", 2), ("outlook.test", 1)],
        "{body}"
    );
    let inb = &body["inbound"];
    // first (accepted), whole (spam, accepted too), last (rejected); not early or late.
    assert_eq!(
        (
            inb["total"].as_i64(),
            inb["accepted"].as_i64(),
            inb["spam"].as_i64(),
            inb["rejected"].as_i64()
        ),
        (Some(3), Some(2), Some(1), Some(1)),
        "{body}"
    );
    let senders: Vec<&str> = inb["top_senders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["domain"].as_str().unwrap())
        .collect();
    assert_eq!(senders, ["first.test", "last.test", "whole.test"], "{body}");
}
