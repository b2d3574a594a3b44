//! Who may see which statistics, and each 400.

use testkit::{TestApp, assert_error};

use super::{get_ok, world};

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
