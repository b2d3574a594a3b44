//! The delivery-log follower: reads Postfix's log file by name and turns its lines into recipient
//! statuses, inbound events and queue-id records.
//!
//! Exactly-once: the position (file identity `dev:inode` and the byte offset just past the last
//! complete line) is written in the same transaction as everything derived from the lines before
//! it, and that write is conditional on the position we last saw, so a crash neither skips nor
//! repeats a line and a follower that lost its lease cannot write. One follower per log: a
//! session advisory lock on the connection that also runs the transactions, so a holder whose
//! connection died can no longer commit, and a waiting worker takes over within a second or two.
//!
//! Files: a rotated file (the path now names another identity) is read to its end, including an
//! unterminated last line, before the new file is started at 0; after a restart the old file is
//! found again by identity among its siblings (`postfix.log.1`, ...). A file shorter than our
//! offset was truncated: start again at 0. An unterminated last line of the live file is left for
//! the next read.
//!
//! Layout: `reader` follows the file (rotation, truncation, the stored position) and commits
//! each batch of lines with the position; `apply` turns a batch into recipient status changes
//! and queue-id records, with the lookups in `owners` and each line's changes built in
//! `changes`; `inbound` records mail the MTA received for our domains.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use shared::telemetry::Tracer;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;

use crate::context::WorkerContext;
use crate::error::Result;

mod apply;
mod changes;
mod inbound;
mod owners;
mod reader;

pub use reader::Follower;

/// Lines per transaction: big enough to amortise the commit, small enough to keep latency low.
pub const BATCH_LINES: usize = 500;
/// How long an idle follower sleeps before looking at the file again.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How often an idle follower records that it has read everything (see `follow_as_leader`).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often a waiting worker asks for the lease.
const LEASE_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestStats {
    pub lines: usize,
    pub unparsed: usize,
    pub changes: usize,
    pub inbound: usize,
    pub batches: usize,
}

/// Follows the MTA log until `shutdown`; waits for the lease while another worker holds it.
pub async fn run(ctx: WorkerContext, shutdown: CancellationToken) -> Result<()> {
    let path = ctx.settings.mta_log_path.clone();
    let log_name = path.display().to_string();
    let options = PgConnectOptions::from_str(ctx.settings.database_url.expose_secret())?
        .application_name("mailapi-logtail");
    while !shutdown.is_cancelled() {
        let leading = follow_as_leader(&options, &path, &log_name, &ctx.tracer, &shutdown);
        if let Err(e) = leading.await {
            tracing::warn!(error = format!("{e:#}"), log = %log_name, "log follower restarting");
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(LEASE_POLL) => {}
            }
        }
    }
    Ok(())
}

async fn follow_as_leader(
    options: &PgConnectOptions,
    path: &Path,
    log_name: &str,
    tracer: &Tracer,
    shutdown: &CancellationToken,
) -> Result<()> {
    let mut conn = PgConnection::connect_with(options).await?;
    while !try_acquire_lease(&mut conn, log_name).await? {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(LEASE_POLL) => {}
        }
    }
    tracing::info!(log = %log_name, "following the MTA log");
    let mut follower = Follower::load(&mut conn, path, log_name).await?;
    follower.set_tracer(tracer.clone());
    let mut last_heartbeat = tokio::time::Instant::now();
    while !shutdown.is_cancelled() {
        // The database's clock, as the workers' `send_started_at` uses it. A pass reads to the
        // end of the file, so once it returns every line written before it began is applied.
        let pass_started: DateTime<Utc> = sqlx::query_scalar("select clock_timestamp()")
            .fetch_one(&mut conn)
            .await?;
        let stats = follower.ingest_available(&mut conn).await?;
        follower.report_lag(stats.lines == 0);
        if stats.unparsed > 0 {
            tracing::warn!(unparsed = stats.unparsed, "log lines that did not parse");
        }
        // A worker deciding whether an interrupted attempt reached the MTA trusts `updated_at`
        // as "every line logged before this is applied" (worker/src/claim.rs, check_log). So it
        // moves only here, to the start of a pass that reached the end of the file: never to
        // the time of a batch commit, which a follower running behind the log makes much later
        // than the lines it has applied. Idle, it is refreshed once per HEARTBEAT.
        if stats.lines > 0 || last_heartbeat.elapsed() >= HEARTBEAT {
            sqlx::query(
                "update log_positions set updated_at = greatest(updated_at, $2)
                  where log_name = $1",
            )
            .bind(log_name)
            .bind(pass_started)
            .execute(&mut conn)
            .await?;
            last_heartbeat = tokio::time::Instant::now();
        }
        if stats.lines == 0 {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
    }
    Ok(())
}

/// Takes the follower lease for `log_name` on this session; `false` when another session has it.
/// The lease ends when the connection closes.
pub async fn try_acquire_lease(conn: &mut PgConnection, log_name: &str) -> sqlx::Result<bool> {
    let digest = Sha256::digest(format!("mailapi.logtail:{log_name}").as_bytes());
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    let (locked,): (bool,) = sqlx::query_as("select pg_try_advisory_lock($1)")
        .bind(i64::from_be_bytes(key))
        .fetch_one(conn)
        .await?;
    Ok(locked)
}
