//! Postgres connection pool and migrations.

use std::time::Duration;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
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

/// How often a process waiting for another one's migrations asks for its turn again.
const MIGRATION_TURN_POLL: Duration = Duration::from_millis(250);

/// Applies the migrations in `migrations/`. Safe to run from several processes at once (the API
/// and the worker both migrate at start): they take turns on a session advisory lock, then sqlx
/// takes its own.
///
/// The turn is polled (`pg_try_advisory_lock`), never waited for in `pg_advisory_lock` as sqlx's
/// lock is: a statement blocked in that call keeps a snapshot open, and a migration that builds
/// an index `concurrently` (docs/OPERATIONS.md, "Upgrades") waits for every older snapshot to
/// end, so a process blocked behind it would deadlock with it. Postgres breaks the cycle by
/// failing one of the two, which may leave the index half built. Between polls a waiting
/// process has no snapshot.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut conn = pool.acquire().await?;
    let key = migration_turn_key();
    while !sqlx::query_scalar::<_, bool>("select pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut *conn)
        .await?
    {
        tokio::time::sleep(MIGRATION_TURN_POLL).await;
    }
    // `run_direct` is what `run` calls once it has a connection; called on ours directly, the
    // future stays `Send` for any lifetime (sqlx's comment on it), so callers may spawn it.
    let applied = crate::MIGRATOR.run_direct(None, &mut *conn, false).await;
    // Closing the connection would release the turn too; unlocking lets the pool keep it.
    let released = sqlx::query("select pg_advisory_unlock($1)")
        .bind(key)
        .execute(&mut *conn)
        .await;
    applied?;
    released?;
    Ok(())
}

/// The advisory lock key of the migration turn, derived from a name like the log follower's
/// lease keys (worker/src/logtail.rs) so that the two cannot collide.
fn migration_turn_key() -> i64 {
    let digest = Sha256::digest(b"mailapi.migrate");
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(key)
}

/// What a database error means for the caller: the one classification both services use (the
/// API's 503 or 500, the worker's retry or give-up). Decided by error variant and SQLSTATE,
/// never by message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFailure {
    /// Postgres could not be reached, or is shutting down or out of resources: retry later.
    Unreachable,
    /// Lost a race with another transaction (serialization failure, deadlock): retry now.
    Conflict,
    /// The statement was refused for its data (a constraint or a bad value): retrying the same
    /// statement fails the same way.
    Refused,
    /// Anything else (a bug, a row that does not decode).
    Other,
}

impl DbFailure {
    /// Whether the same statement, tried again later, can succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, DbFailure::Unreachable | DbFailure::Conflict)
    }
}

/// Sorts a database error; see [`DbFailure`].
pub fn classify(e: &sqlx::Error) -> DbFailure {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => DbFailure::Unreachable,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("40001" | "40P01") => DbFailure::Conflict,
            // Class 08: connection exception; 57P0x: the server is shutting down or
            // restarting; class 53: insufficient resources (too many connections, disk full).
            Some(code) if code.starts_with("08") || code.starts_with("57P0") => {
                DbFailure::Unreachable
            }
            Some(code) if code.starts_with("53") => DbFailure::Unreachable,
            // Class 23: integrity constraint violation; class 22: data exception.
            Some(code) if code.starts_with("23") || code.starts_with("22") => DbFailure::Refused,
            _ => DbFailure::Other,
        },
        _ => DbFailure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_told_from_a_refused_statement() {
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), DbFailure::Unreachable);
        assert_eq!(classify(&sqlx::Error::PoolClosed), DbFailure::Unreachable);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify(&sqlx::Error::Io(io)), DbFailure::Unreachable);
        assert_eq!(classify(&sqlx::Error::RowNotFound), DbFailure::Other);
        assert!(DbFailure::Unreachable.is_transient());
        assert!(DbFailure::Conflict.is_transient());
        assert!(!DbFailure::Refused.is_transient());
    }
}
