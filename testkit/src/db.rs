//! A database of its own for each test: `mailapi_test_<uuid>` beside MAILAPI_DATABASE_URL's
//! (`deploy/test.sh` drops old ones).

use sqlx::{Connection, PgPool};

use crate::env::base_database_url;

/// The same URL naming another database; a `?query` (e.g. `sslmode=disable`) is kept.
fn with_database(url: &str, db: &str) -> String {
    let (base, rest) = url.rsplit_once('/').expect("database URL has a path");
    match rest.split_once('?') {
        Some((_, query)) => format!("{base}/{db}?{query}"),
        None => format!("{base}/{db}"),
    }
}

/// Creates an empty `mailapi_test_<uuid>` (no migrations) and returns its URL.
pub async fn empty_database() -> String {
    let base = base_database_url();
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap_or_else(|e| {
        panic!("cannot reach Postgres at MAILAPI_DATABASE_URL ({e}); start the stack with `deploy/infra-up.sh` and source /etc/mailapi/mailapi.env")
    });
    let name = format!("mailapi_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database (the role needs CREATEDB)");
    with_database(&base, &name)
}

/// Creates `mailapi_test_<uuid>` and applies the migrations; returns its URL and a pool.
pub async fn fresh_database() -> (String, PgPool) {
    let url = empty_database().await;
    let pool = PgPool::connect(&url)
        .await
        .expect("connect to test database");
    shared::MIGRATOR.run(&pool).await.expect("migrations apply");
    (url, pool)
}
