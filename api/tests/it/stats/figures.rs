//! Every figure, of `/stats/delivery` and `/stats/domain/{domain}`, equals a direct count; the
//! rollups equal a rebuild from the raw rows.

use chrono::{Duration, Utc};
use serde_json::Value;
use std::collections::HashMap;
use testkit::stats::{Figures, Key, direct, row_figures, summary_figures};

use super::{World, get_ok, world};

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
