//! Postgres connection pool.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::Settings;

/// Opens a pool lazily: a process starts (and answers `/health`) even while Postgres is down, and
/// requests that need it fail fast with a 503 instead of hanging.
pub fn connect_lazy(settings: &Settings) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = settings.database_url.expose_secret().parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options.application_name("mailapi")))
}

/// Applies the migrations in `migrations/`. Safe to run from several processes at once: sqlx
/// takes an advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    crate::MIGRATOR.run(pool).await
}
