//! `shared::db::migrate` from several processes at once, as the API and the worker do at start,
//! on a fresh database (`mailapi_test_<uuid>` from MAILAPI_DATABASE_URL; source
//! /etc/mailapi/mailapi.env). A migration builds an index `concurrently`, which waits for every
//! older snapshot: a process blocked in a lock call behind it would deadlock with it.

use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn processes_starting_together_all_migrate_without_a_deadlock() {
    // Empty: migrating it is the test.
    let url = testkit::empty_database().await;

    // One pool per "process", all starting at once.
    let mut starts = Vec::new();
    for _ in 0..4 {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .expect("connect to test database");
        starts.push(tokio::spawn(async move {
            shared::db::migrate(&pool).await.map(|()| pool)
        }));
    }
    let mut pools = Vec::new();
    for start in starts {
        pools.push(start.await.unwrap().expect("every process migrates"));
    }
    let invalid: Vec<String> = sqlx::query_scalar(
        "select indexrelid::regclass::text from pg_index where not indisvalid or not indisready",
    )
    .fetch_all(&pools[0])
    .await
    .unwrap();
    assert!(invalid.is_empty(), "half-built indexes: {invalid:?}");
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(&pools[0])
        .await
        .unwrap();
    assert_eq!(applied, shared::MIGRATOR.iter().count() as i64);
}
