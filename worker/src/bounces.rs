//! The bounce reader: RFC 3464 reports that arrive in `bounces@<bounce_domain>` (every message we
//! send has the envelope sender `bounces+<message uuid>@<bounce_domain>`) become recipient
//! statuses with the report's fields as evidence.
//!
//! Reads over IMAP as the master user. A report is moved to `Processed` only after its statuses
//! are committed, so a crash in between makes it be read again, which the status rule makes
//! harmless (a repeated final status adds nothing). A message that is not a report is moved to
//! `Unparsed` (kept for a human, counted in the log); the inbox never grows without bound.

use std::time::Duration;

use chrono::Utc;
use futures::TryStreamExt as _;
use secrecy::ExposeSecret;
use shared::config::Settings;
use shared::delivery::{self, EventSource, RecipientChange, RecipientStatus};
use sqlx::{Acquire as _, PgPool};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::WorkerContext;
use crate::dsn::{self, DeliveryReport, Outcome};
use crate::error::{Error, Result};

/// The mailbox's local part; the VERP tag follows the `+`.
pub const BOUNCE_LOCAL_PART: &str = "bounces";
pub const PROCESSED: &str = "Processed";
pub const UNPARSED: &str = "Unparsed";
const POLL_EVERY: Duration = Duration::from_secs(5);
/// Reports handled per poll, so one poll stays short and a backlog drains over several.
const MAX_PER_POLL: usize = 200;
const FETCH_CHUNK: usize = 20;
const IMAP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long processed reports stay in `Processed` for a human to look at.
pub const KEEP_PROCESSED_DAYS: i64 = 7;

type Session = async_imap::Session<TcpStream>;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollStats {
    pub fetched: usize,
    /// Reports whose message is ours.
    pub matched: usize,
    /// Recipient statuses changed.
    pub applied: usize,
    pub unparsed: usize,
}

/// Ensures the mailbox exists, then polls it until `shutdown`.
pub async fn run(ctx: WorkerContext, shutdown: CancellationToken) -> Result<()> {
    while let Err(e) = ensure_bounce_mailbox(&ctx.db, ctx.settings.bounce_domain.as_str()).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "cannot create the bounce mailbox yet"
        );
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
    while !shutdown.is_cancelled() {
        match tokio::time::timeout(IMAP_TIMEOUT, poll_once(&ctx.settings, &ctx.db)).await {
            Ok(Ok(stats)) if stats.fetched > 0 => {
                tracing::info!(?stats, "bounce reports read");
                if stats.unparsed > 0 {
                    tracing::warn!(
                        unparsed = stats.unparsed,
                        folder = UNPARSED,
                        "messages in the bounce mailbox that are not delivery reports"
                    );
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "bounce mailbox poll failed"),
            Err(_) => tracing::warn!("bounce mailbox poll timed out"),
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
    Ok(())
}

/// Creates the bounce domain (active) and its `bounces` mailbox when missing, so Postfix accepts
/// the reports and Dovecot lets the master user in. The password is random and never used.
pub async fn ensure_bounce_mailbox(db: &PgPool, bounce_domain: &str) -> Result<()> {
    let domain = bounce_domain.to_ascii_lowercase();
    let email = format!("{BOUNCE_LOCAL_PART}@{domain}");
    let exists: Option<i64> = sqlx::query_scalar("select id from mailboxes where email = $1")
        .bind(&email)
        .fetch_optional(db)
        .await?;
    if exists.is_some() {
        return Ok(());
    }
    let password = hex::encode(rand::random::<[u8; 32]>());
    let hash = shared::password::hash_password(&password);
    let mut tx = db.begin().await?;
    sqlx::query(
        "insert into domains (domain, active, approved_at) values ($1, true, now())
         on conflict (domain) do nothing",
    )
    .bind(&domain)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into mailboxes (domain_id, local_part, email, name, password_hash)
         select id, $2, $3, 'Bounce reports', $4 from domains where domain = $1
         on conflict (email) do nothing",
    )
    .bind(&domain)
    .bind(BOUNCE_LOCAL_PART)
    .bind(&email)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One pass over the mailbox: connect, handle what is unseen, log out.
pub async fn poll_once(settings: &Settings, db: &PgPool) -> Result<PollStats> {
    let mut session = connect(settings).await?;
    let result = process_inbox(&mut session, db).await;
    let _ = session.logout().await;
    result
}

async fn connect(settings: &Settings) -> Result<Session> {
    let imap = &settings.imap;
    let password = imap
        .master_password
        .as_ref()
        .ok_or_else(|| Error::Config("MAILAPI_IMAP_MASTER_PASSWORD is not set".into()))?;
    let stream = TcpStream::connect((imap.host.as_str(), imap.port))
        .await
        .map_err(Error::io(format!(
            "connect to IMAP at {}:{}",
            imap.host, imap.port
        )))?;
    let mut client = async_imap::Client::new(stream);
    client
        .read_response()
        .await
        .map_err(Error::io("read the IMAP greeting"))?
        .ok_or(Error::Imap {
            what: "greeting".into(),
            source: async_imap::error::Error::ConnectionLost,
        })?;
    // `user*master`: async-imap sends it as a quoted string, which `*` needs.
    let user = format!(
        "{BOUNCE_LOCAL_PART}@{}*{}",
        settings.bounce_domain, imap.master_user
    );
    client
        .login(&user, password.expose_secret())
        .await
        .map_err(|(e, _)| Error::imap(format!("login as {user}"))(e))
}

async fn process_inbox(session: &mut Session, db: &PgPool) -> Result<PollStats> {
    session.select("INBOX").await?;
    for folder in [PROCESSED, UNPARSED] {
        // Fails with NO when the folder exists, which is the usual case.
        let _ = session.create(folder).await;
    }
    let mut uids: Vec<u32> = session.uid_search("UNSEEN").await?.into_iter().collect();
    uids.sort_unstable();
    uids.truncate(MAX_PER_POLL);
    let mut stats = PollStats::default();
    for chunk in uids.chunks(FETCH_CHUNK) {
        let set = uid_set(chunk);
        let fetches: Vec<_> = session
            .uid_fetch(&set, "(UID BODY.PEEK[])")
            .await?
            .try_collect()
            .await?;
        let (mut processed, mut unparsed) = (Vec::new(), Vec::new());
        for fetch in &fetches {
            let Some(uid) = fetch.uid else { continue };
            stats.fetched += 1;
            match fetch.body().map(dsn::parse_report) {
                Some(Ok(report)) => {
                    let applied = apply_report(db, &report).await?;
                    if let Some(n) = applied {
                        stats.matched += 1;
                        stats.applied += n;
                    }
                    processed.push(uid);
                }
                Some(Err(e)) => {
                    tracing::warn!(uid, error = %e, "bounce mailbox message is not a report");
                    unparsed.push(uid);
                }
                None => unparsed.push(uid),
            }
        }
        stats.unparsed += unparsed.len();
        move_messages(session, &processed, PROCESSED).await?;
        move_messages(session, &unparsed, UNPARSED).await?;
    }
    prune_processed(session).await?;
    Ok(stats)
}

/// Deletes processed reports older than [`KEEP_PROCESSED_DAYS`]: their fields are already in
/// `delivery_events`, and the folder would otherwise grow with every bounce.
async fn prune_processed(session: &mut Session) -> Result<()> {
    session.select(PROCESSED).await?;
    let cutoff = Utc::now() - chrono::Duration::days(KEEP_PROCESSED_DAYS);
    let old: Vec<u32> = session
        .uid_search(format!("BEFORE {}", cutoff.format("%d-%b-%Y")))
        .await?
        .into_iter()
        .collect();
    for chunk in old.chunks(500) {
        let set = uid_set(chunk);
        let _: Vec<_> = session
            .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
            .await?
            .try_collect()
            .await?;
        let _: Vec<_> = session.uid_expunge(&set).await?.try_collect().await?;
    }
    Ok(())
}

fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// MOVE (RFC 6851), or COPY + `\Deleted` + UID EXPUNGE where MOVE is refused.
async fn move_messages(session: &mut Session, uids: &[u32], folder: &str) -> Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    let set = uid_set(uids);
    if session.uid_mv(&set, folder).await.is_ok() {
        return Ok(());
    }
    session.uid_copy(&set, folder).await?;
    let _: Vec<_> = session
        .uid_store(&set, "+FLAGS.SILENT (\\Seen \\Deleted)")
        .await?
        .try_collect()
        .await?;
    let _: Vec<_> = session.uid_expunge(&set).await?.try_collect().await?;
    Ok(())
}

/// Our message the report is about: the VERP tag, else the returned original's Message-ID, else
/// Postfix's queue id.
async fn find_message(
    conn: &mut sqlx::PgConnection,
    report: &DeliveryReport,
) -> sqlx::Result<Option<Uuid>> {
    if let Some(id) = report
        .verp_tag
        .as_deref()
        .and_then(|t| Uuid::parse_str(t).ok())
    {
        let found: Option<Uuid> = sqlx::query_scalar("select id from messages where id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    if let Some(mid) = &report.original_message_id {
        let found: Option<Uuid> =
            sqlx::query_scalar("select id from messages where rfc_message_id = $1")
                .bind(mid)
                .fetch_optional(&mut *conn)
                .await?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let Some(qid) = &report.queue_id else {
        return Ok(None);
    };
    sqlx::query_scalar(
        "select m.id from mta_queue_entries e join messages m on m.rfc_message_id = e.rfc_message_id
          where e.queue_id = $1
         union
         select id from messages where queue_id = $1
         limit 1",
    )
    .bind(qid)
    .fetch_optional(conn)
    .await
}

/// Applies a report's failed recipients; `None` when the message is not ours.
pub async fn apply_report(db: &PgPool, report: &DeliveryReport) -> Result<Option<usize>> {
    let mut conn = db.acquire().await?;
    let mut tx = conn.begin().await?;
    let Some(message) = find_message(&mut tx, report).await? else {
        tracing::info!(
            queue_id = report.queue_id.as_deref().unwrap_or("-"),
            "bounce report for a message that is not ours"
        );
        return Ok(None);
    };
    let mut changes = Vec::new();
    for rcpt in &report.recipients {
        let (status, dsn_code) = match rcpt.outcome() {
            Outcome::Bounced { dsn_code } => (RecipientStatus::Bounced, dsn_code),
            Outcome::Failed { dsn_code } => (RecipientStatus::Failed, dsn_code),
            Outcome::NotABounce => continue,
        };
        let mut addresses = vec![rcpt.final_recipient.clone()];
        addresses.extend(rcpt.original_recipient.clone());
        // The original recipient is the address we were given; prefer it.
        let recipient_id: Option<i64> = sqlx::query_scalar(
            "select id from recipients where message_id = $1 and lower(email) = any($2)
              order by lower(email) = $3 desc limit 1",
        )
        .bind(message)
        .bind(&addresses)
        .bind(rcpt.original_recipient.as_deref().unwrap_or(""))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(recipient_id) = recipient_id else {
            continue;
        };
        let response = rcpt.diagnostic.as_deref().map(|d| {
            // `smtp; 550 ...` / `X-Postfix; ...`: the diagnostic type is not part of the reply.
            d.split_once("; ").map_or(d, |(_, text)| text).to_owned()
        });
        changes.push(RecipientChange {
            recipient_id,
            message_id: message,
            status,
            dsn_code: Some(dsn_code),
            smtp_response: response,
            occurred_at: Utc::now(),
            source: EventSource::Dsn,
            evidence: Some(rcpt.evidence(report)),
        });
    }
    let applied = delivery::apply_recipient_statuses(&mut tx, &changes).await?;
    delivery::rollup_messages(&mut tx, &[message]).await?;
    tx.commit().await?;
    Ok(Some(applied.into_iter().filter(|a| *a).count()))
}
