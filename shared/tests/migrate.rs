//! `shared::db::migrate` from several processes at once, as the API and the worker do at start,
//! on a fresh database (`mailapi_test_<uuid>` from MAILAPI_DATABASE_URL; source
//! /etc/mailapi/mailapi.env). A migration builds an index `concurrently`, which waits for every
//! older snapshot: a process blocked in a lock call behind it would deadlock with it.

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

#[tokio::test]
async fn processes_starting_together_all_migrate_without_a_deadlock() {
    let base = std::env::var("MAILAPI_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "postgres://mailapi:mailapi@127.0.0.1:5432/mailapi".to_owned());
    let mut admin = PgConnection::connect(&base).await.unwrap_or_else(|e| {
        panic!("cannot reach Postgres at MAILAPI_DATABASE_URL ({e}); start the stack with `deploy/infra-up.sh` and source /etc/mailapi/mailapi.env")
    });
    let name = format!("mailapi_test_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database (the role needs CREATEDB)");
    let (prefix, db) = base.rsplit_once('/').expect("database URL has a path");
    let query = db.find('?').map_or("", |i| &db[i..]);
    let url = format!("{prefix}/{name}{query}");

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
