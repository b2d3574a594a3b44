//! `GET /stats/delivery` and `GET /stats/domain/{domain}`: every figure equals a direct SQL
//! count over the raw rows, for mail written through the real pipeline (send, submit, sent,
//! bounced, deferred then sent, refused, suppressed, inbound); the rollups equal a rebuild from
//! scratch; who may see what; and each 400.

use std::collections::HashMap;

use chrono::{Duration, DurationRound, Utc};
use serde_json::Value;
use shared::delivery::RecipientStatus::{Bounced, Deferred, Failed, Sent};
use testkit::stats::{Figures, Key, direct, row_figures, summary_figures};
use testkit::{TestApp, assert_error};

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

/// Checks one `/stats/delivery` answer against direct counts over its own `period`.
async fn check_delivery(
    w: &World,
    query: &str,
    token: &str,
    from: (Option<&str>, Option<&str>),
) -> Value {
    let body = get_ok(&w.app, &format!("/stats/delivery?{query}"), token).await;
    let start = body["period"]["start"].as_str().unwrap().to_owned();
    let end = body["period"]["end"].as_str().unwrap().to_owned();
    let db = &w.app.db;
    let total = direct(db, &start, &end, from.0, from.1, Key::All).await;
    let expected = total.get("").copied().unwrap_or_default();
    assert_eq!(
        summary_figures(&body["summary"]),
        expected,
        "summary of {query}: {body}"
    );
    let rate = if expected.total == 0 {
        0.0
    } else {
        (expected.delivered as f64 * 1000.0 / expected.total as f64).round() / 10.0
    };
    assert_eq!(
        body["summary"]["delivery_rate"].as_f64(),
        Some(rate),
        "{query}"
    );

    let (key, field) = if query.contains("group_by=hour") {
        (Key::Hour, "hour")
    } else if query.contains("group_by=domain") {
        (Key::RcptDomain, "domain")
    } else {
        (Key::Day, "date")
    };
    let want = direct(db, &start, &end, from.0, from.1, key).await;
    let mut got: HashMap<String, Figures> = HashMap::new();
    for row in body["breakdown"].as_array().unwrap() {
        let f = row_figures(row);
        let k = row[field].as_str().unwrap().to_owned();
        assert!(got.insert(k, f).is_none(), "one row per {field}: {body}");
    }
    got.retain(|_, f| *f != Figures::default());
    assert_eq!(got, want, "breakdown of {query}");
    // Every grouping adds up to the summary.
    let sum = got.values().fold(Figures::default(), |a, f| Figures {
        total: a.total + f.total,
        delivered: a.delivered + f.delivered,
        bounced: a.bounced + f.bounced,
        deferred: a.deferred + f.deferred,
        rejected: a.rejected + f.rejected,
    });
    assert_eq!(sum, expected, "the rows of {query} add up to the summary");
    body
}

#[tokio::test]
async fn every_figure_equals_a_direct_count() {
    let w = world().await;
    let now = Utc::now();
    let (start, end) = (
        (now - Duration::days(3) + Duration::minutes(20)).format("%Y-%m-%dT%H:%M:%SZ"),
        now.format("%Y-%m-%dT%H:%M:%SZ"),
    );
    let ranges = [
        String::new(),
        // Not on whole hours or days: the partial first and last day come from hourly rows, the
        // partial first and last hour from the raw rows.
        format!("start_date={start}&end_date={end}"),
        format!(
            "start_date={}&end_date={}",
            (now - Duration::days(45)).format("%Y-%m-%d"),
            now.format("%Y-%m-%d")
        ),
    ];
    for range in &ranges {
        for group in ["day", "hour", "domain"] {
            let q = format!("{range}&group_by={group}");
            let all = check_delivery(&w, &q, &w.admin, (None, None)).await;
            assert!(all["summary"]["total_sent"].as_i64().unwrap() > 0, "{all}");
            if range == &ranges[1] {
                // The period echoes the requested bounds, to the second.
                assert_eq!(all["period"]["start"], start.to_string(), "{all}");
                assert_eq!(all["period"]["end"], end.to_string(), "{all}");
            }
            check_delivery(
                &w,
                &format!("{q}&sender=a.test"),
                &w.admin,
                (Some("a.test"), None),
            )
            .await;
            check_delivery(
                &w,
                &format!("{q}&sender=alice@a.test"),
                &w.admin,
                (None, Some("alice@a.test")),
            )
            .await;
            check_delivery(
                &w,
                &format!("{q}&sender=bob@b.test"),
                &w.admin,
                (None, Some("bob@b.test")),
            )
            .await;
            // A user token without view_stats: its own sending.
            check_delivery(&w, &q, &w.alice, (None, Some("alice@a.test"))).await;
        }
    }
    // The 45-day range holds every status, the 40-day-old message and the suppressed address.
    let all = check_delivery(
        &w,
        &format!("{}&group_by=day", ranges[2]),
        &w.admin,
        (None, None),
    )
    .await;
    let s = &all["summary"];
    assert_eq!(
        (s["delivered"].as_i64(), s["bounced"].as_i64()),
        (Some(7), Some(2)),
        "{s}"
    );
    assert_eq!(
        (s["deferred"].as_i64(), s["rejected"].as_i64()),
        (Some(1), Some(4)),
        "{s}"
    );
    assert_eq!(s["total_sent"].as_i64(), Some(14), "{s}");
    assert_eq!(s["delivery_rate"].as_f64(), Some(50.0), "{s}");
    // The default period: the 7 days up to now (this second included), and dense day rows
    // (zeros included).
    let before = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let default = get_ok(&w.app, "/stats/delivery", &w.admin).await;
    let after = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert!(
        default["breakdown"].as_array().unwrap().len() >= 7,
        "{default}"
    );
    let end = default["period"]["end"].as_str().unwrap();
    assert!(before.as_str() <= end && end <= after.as_str(), "{default}");
    let end: chrono::DateTime<Utc> = end.parse().unwrap();
    let start: chrono::DateTime<Utc> = default["period"]["start"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        end - start,
        Duration::days(7) - Duration::seconds(1),
        "{default}"
    );
}

#[tokio::test]
async fn domain_statistics_equal_direct_counts() {
    let w = world().await;
    let db = &w.app.db;
    let now = Utc::now();
    let ranges = [
        String::new(),
        format!(
            "?start_date={}&end_date={}",
            (now - Duration::days(2) - Duration::minutes(90)).format("%Y-%m-%dT%H:%M:%SZ"),
            now.format("%Y-%m-%dT%H:%M:%SZ")
        ),
    ];
    for range in &ranges {
        let body = get_ok(&w.app, &format!("/stats/domain/a.test{range}"), &w.admin).await;
        assert_eq!(body["domain"], "a.test");
        let start = body["period"]["start"].as_str().unwrap();
        let end = body["period"]["end"].as_str().unwrap();
        let total = direct(db, start, end, Some("a.test"), None, Key::All).await;
        let t = total.get("").copied().unwrap_or_default();
        let out = &body["outbound"];
        assert_eq!(out["total"].as_i64(), Some(t.total), "{body}");
        assert_eq!(out["delivered"].as_i64(), Some(t.delivered), "{body}");
        assert_eq!(out["bounced"].as_i64(), Some(t.bounced), "{body}");
        assert_eq!(out["deferred"].as_i64(), Some(t.deferred), "{body}");
        assert_eq!(out["rejected"].as_i64(), Some(t.rejected), "{body}");
        assert_eq!(t.total, t.delivered + t.bounced + t.deferred + t.rejected);
        let by_domain = direct(db, start, end, Some("a.test"), None, Key::RcptDomain).await;
        let mut want: Vec<(String, i64)> =
            by_domain.into_iter().map(|(d, f)| (d, f.total)).collect();
        want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let got: Vec<(String, i64)> = out["top_recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["domain"].as_str().unwrap().to_owned(),
                    r["count"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{body}");

        let (accepted, spam, rejected, senders): (i64, i64, i64, Vec<(String, i64)>) = {
            let row: (i64, i64, i64) = sqlx::query_as(
                "select count(*) filter (where status in ('accepted', 'spam')),
                        count(*) filter (where status = 'spam'),
                        count(*) filter (where status = 'rejected')
                   from inbound_events
                  where domain = 'a.test' and occurred_at >= $1::timestamptz
                    and occurred_at < $2::timestamptz + interval '1 second'",
            )
            .bind(start)
            .bind(end)
            .fetch_one(db)
            .await
            .unwrap();
            let senders = sqlx::query_as(
                "select sender_domain, count(*) from inbound_events
                  where domain = 'a.test' and sender_domain is not null
                    and occurred_at >= $1::timestamptz
                    and occurred_at < $2::timestamptz + interval '1 second'
                  group by 1 order by 2 desc, 1",
            )
            .bind(start)
            .bind(end)
            .fetch_all(db)
            .await
            .unwrap();
            (row.0, row.1, row.2, senders)
        };
        let inb = &body["inbound"];
        assert_eq!(inb["total"].as_i64(), Some(accepted + rejected), "{body}");
        assert_eq!(inb["accepted"].as_i64(), Some(accepted), "{body}");
        assert_eq!(inb["spam"].as_i64(), Some(spam), "{body}");
        assert_eq!(inb["rejected"].as_i64(), Some(rejected), "{body}");
        let got: Vec<(String, i64)> = inb["top_senders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["domain"].as_str().unwrap().to_owned(),
                    r["count"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, senders, "{body}");
        assert!(accepted > 0 && spam > 0 && rejected > 0, "{body}");
    }
}

#[tokio::test]
async fn rollups_equal_a_rebuild_from_the_raw_rows() {
    let w = world().await;
    let db = &w.app.db;
    // A batch UPDATE of many rows at once (one trigger run), moving counts between statuses.
    sqlx::query("update recipients set status = 'deferred' where status = 'sent'")
        .execute(db)
        .await
        .unwrap();
    sqlx::query(
        "update recipients set status = 'sent' where status = 'deferred' and email like '%gmail%'",
    )
    .execute(db)
    .await
    .unwrap();
    // Rows whose counts all went back to zero stay behind in the incremental tables only.
    let outbound = "(sent, bounced, deferred, failed, suppressed) <> (0, 0, 0, 0, 0)";
    let inbound = "(accepted, rejected, spam) <> (0, 0, 0)";
    let tables = [
        ("stats_outbound_hourly", outbound),
        ("stats_outbound_hourly_rcpt", outbound),
        ("stats_outbound_daily_rcpt", outbound),
        ("stats_inbound_hourly", inbound),
        ("stats_inbound_hourly_sender", inbound),
        ("stats_inbound_daily_sender", inbound),
    ];
    let snapshot = || async {
        let mut all = Vec::new();
        for (t, nonzero) in tables {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "select t::text from {t} t where {nonzero} order by 1"
            )))
            .fetch_all(db)
            .await
            .unwrap();
            assert!(!rows.is_empty(), "{t} has rows");
            all.push(rows);
        }
        all
    };
    let incremental = snapshot().await;
    sqlx::query("select stats_rebuild()")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(snapshot().await, incremental);
}

#[tokio::test]
async fn access_follows_tokens_and_view_stats() {
    let w = world().await;
    let app = &w.app;
    // A user token without view_stats: only its own address.
    let own = get_ok(app, "/stats/delivery?sender=alice@a.test", &w.alice).await;
    let mine = get_ok(app, "/stats/delivery", &w.alice).await;
    assert_eq!(own["summary"], mine["summary"]);
    for denied in [
        "/stats/delivery?sender=a.test",
        "/stats/delivery?sender=carol@a.test",
        "/stats/delivery?sender=b.test",
        "/stats/domain/a.test",
        "/stats/domain/b.test",
    ] {
        assert_error(app.get(denied, Some(&w.alice)).await, 403, "ACCESS_DENIED").await;
    }
    // view_stats on a.test: that domain and its addresses (and it is the default), not b.test.
    sqlx::query(
        "insert into permissions (mailbox_id, domain_id, permission)
         select m.id, d.id, 'view_stats' from mailboxes m, domains d
          where m.email = 'alice@a.test' and d.domain = 'a.test'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let domain = get_ok(app, "/stats/delivery?sender=a.test", &w.alice).await;
    let default = get_ok(app, "/stats/delivery", &w.alice).await;
    assert_eq!(domain["summary"], default["summary"]);
    assert_ne!(
        domain["summary"], mine["summary"],
        "carol's mail is in the domain's"
    );
    get_ok(app, "/stats/delivery?sender=carol@a.test", &w.alice).await;
    get_ok(app, "/stats/domain/a.test", &w.alice).await;
    for denied in [
        "/stats/delivery?sender=b.test",
        "/stats/delivery?sender=bob@b.test",
        "/stats/domain/b.test",
    ] {
        assert_error(app.get(denied, Some(&w.alice)).await, 403, "ACCESS_DENIED").await;
    }
    // Admin: everything; a domain that is not hosted is NOT_FOUND; no token is 401.
    get_ok(app, "/stats/domain/b.test", &w.admin).await;
    assert_error(
        app.get("/stats/domain/nowhere.test", Some(&w.admin)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_error(app.get("/stats/delivery", None).await, 401, "NO_API_TOKEN").await;
    assert_error(
        app.get("/stats/domain/a.test", None).await,
        401,
        "NO_API_TOKEN",
    )
    .await;
}

#[tokio::test]
async fn bad_parameters_are_400_with_a_clear_code() {
    let app = TestApp::spawn(&[]).await;
    let admin = app.admin_token().await;
    app.domain("a.test", true).await;
    for (path, code) in [
        ("/stats/delivery?start_date=yesterday", "INVALID_DATE"),
        ("/stats/delivery?end_date=2024-02-30", "INVALID_DATE"),
        (
            "/stats/delivery?start_date=2024-01-01T25:00:00Z",
            "INVALID_DATE",
        ),
        (
            "/stats/delivery?start_date=2024-01-27&end_date=2024-01-20",
            "INVALID_RANGE",
        ),
        (
            "/stats/delivery?start_date=2024-01-20T10:00:00Z&end_date=2024-01-20T09:59:59Z",
            "INVALID_RANGE",
        ),
        (
            "/stats/delivery?start_date=2020-01-01&end_date=2024-01-01",
            "INVALID_RANGE",
        ),
        ("/stats/delivery?group_by=week", "INVALID_GROUP_BY"),
        ("/stats/delivery?group_by=DAY", "INVALID_GROUP_BY"),
        (
            "/stats/delivery?sender=not%20an%20address",
            "INVALID_SENDER",
        ),
        ("/stats/delivery?sender=a@b@c", "INVALID_SENDER"),
        ("/stats/domain/a.test?start_date=2024-13-01", "INVALID_DATE"),
        (
            "/stats/domain/a.test?start_date=2024-01-02&end_date=2024-01-01",
            "INVALID_RANGE",
        ),
        ("/stats/domain/not_a_domain", "INVALID_DOMAIN"),
    ] {
        let body = assert_error(app.get(path, Some(&admin)).await, 400, code).await;
        assert!(body["field"].is_string(), "{path}: {body}");
    }
    // The spec's example period: whole days, end inclusive to the last second.
    let body = get_ok(
        &app,
        "/stats/delivery?start_date=2024-01-20&end_date=2024-01-27",
        &admin,
    )
    .await;
    assert_eq!(body["period"]["start"], "2024-01-20T00:00:00Z");
    assert_eq!(body["period"]["end"], "2024-01-27T23:59:59Z");
    assert_eq!(body["breakdown"].as_array().unwrap().len(), 8);
    assert_eq!(body["breakdown"][0]["date"], "2024-01-27", "newest first");
    assert_eq!(body["summary"]["delivery_rate"].as_f64(), Some(0.0));
    let hours = get_ok(
        &app,
        "/stats/delivery?start_date=2024-01-20&end_date=2024-01-20&group_by=hour",
        &admin,
    )
    .await;
    assert_eq!(hours["breakdown"].as_array().unwrap().len(), 24);
    assert_eq!(hours["breakdown"][0]["hour"], "2024-01-20T23:00:00Z");
    // Date-times are kept to the second and echoed; hour rows cover every hour touched.
    let exact = get_ok(
        &app,
        "/stats/delivery?start_date=2024-01-20T10:17:00Z&end_date=2024-01-20T12:00:00%2B00:00&group_by=hour",
        &admin,
    )
    .await;
    assert_eq!(exact["period"]["start"], "2024-01-20T10:17:00Z");
    assert_eq!(exact["period"]["end"], "2024-01-20T12:00:00Z");
    let rows: Vec<&str> = exact["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["hour"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "2024-01-20T12:00:00Z",
            "2024-01-20T11:00:00Z",
            "2024-01-20T10:00:00Z"
        ]
    );
    // One second is a period.
    let second = get_ok(
        &app,
        "/stats/domain/a.test?start_date=2024-01-20T10:17:00Z&end_date=2024-01-20T10:17:00Z",
        &admin,
    )
    .await;
    assert_eq!(second["period"]["start"], second["period"]["end"]);
}
