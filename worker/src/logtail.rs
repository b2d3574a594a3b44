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

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Datelike, Local, TimeZone, Utc};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use shared::delivery::{self, EventSource, RecipientChange, RecipientStatus};
use shared::telemetry::Tracer;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::WorkerContext;
use crate::logline::{self, DeliveryStatus, Event, LogLine};
use crate::tracing_ctx;

/// Largest read; a line longer than this (never seen from Postfix) is taken as it is.
const CHUNK: usize = 1 << 20;
/// Lines per transaction: big enough to amortise the commit, small enough to keep latency low.
pub const BATCH_LINES: usize = 500;
/// How long an idle follower sleeps before looking at the file again.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How often an idle follower records that it has read everything (see `follow_as_leader`).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often a waiting worker asks for the lease.
const LEASE_POLL: Duration = Duration::from_secs(1);
/// Bounds on what is remembered between lines (senders for inbound events, early rejects).
const MAX_SENDERS: usize = 100_000;
const MAX_PENDING_REJECTS: usize = 1_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IngestStats {
    pub lines: usize,
    pub unparsed: usize,
    pub changes: usize,
    pub inbound: usize,
    pub batches: usize,
}

/// Follows the MTA log until `shutdown`; waits for the lease while another worker holds it.
pub async fn run(ctx: WorkerContext, shutdown: CancellationToken) -> anyhow::Result<()> {
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
) -> anyhow::Result<()> {
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

struct OpenLog {
    file: File,
    id: String,
    offset: u64,
}

/// One log's reader and the state it keeps between lines.
pub struct Follower {
    path: PathBuf,
    log_name: String,
    current: Option<OpenLog>,
    /// The row in `log_positions` as we last wrote or read it: the condition of our next write.
    stored: Option<(String, u64)>,
    senders: HashMap<String, String>,
    pending_rejects: VecDeque<PendingReject>,
    batch_lines: usize,
    /// When a pass last found nothing left to read (for the lag metric).
    caught_up_at: std::time::Instant,
    /// Delivery spans; while disabled the follower reads no trace context at all.
    tracer: Tracer,
}

/// A `<QID>: reject: RCPT` line logged before the `cleanup` line that tells whose the QID is.
#[derive(Clone)]
struct PendingReject {
    qid: String,
    to: String,
    response: String,
    line: String,
    at: DateTime<Utc>,
}

fn identity(meta: &Metadata) -> String {
    format!("{}:{}", meta.dev(), meta.ino())
}

fn open_at(path: &Path, offset: u64) -> std::io::Result<Option<OpenLog>> {
    match File::open(path) {
        Ok(file) => {
            let id = identity(&file.metadata()?);
            Ok(Some(OpenLog { file, id, offset }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A sibling of `path` (`postfix.log.1`, `postfix.log-2026...`) that is the file `id`.
fn find_rotated(path: &Path, id: &str) -> Option<PathBuf> {
    let dir = path.parent()?;
    let base = path.file_name()?.to_str()?;
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(base)))
        .find(|e| std::fs::metadata(e.path()).is_ok_and(|m| identity(&m) == id))
        .map(|e| e.path())
}

impl Follower {
    /// Resumes where `log_positions` says this log was left.
    pub async fn load(
        conn: &mut PgConnection,
        path: &Path,
        log_name: &str,
    ) -> anyhow::Result<Self> {
        let stored: Option<(String, i64)> =
            sqlx::query_as("select file_id, byte_offset from log_positions where log_name = $1")
                .bind(log_name)
                .fetch_optional(conn)
                .await?;
        let stored = stored.map(|(id, off)| (id, u64::try_from(off).unwrap_or(0)));
        let current = match &stored {
            Some((id, offset)) => {
                let live = open_at(path, *offset)?.filter(|l| &l.id == id);
                match live {
                    Some(l) => Some(l),
                    None => match find_rotated(path, id) {
                        Some(old) => open_at(&old, *offset)?.filter(|l| &l.id == id),
                        None => None,
                    },
                }
            }
            None => None,
        };
        let current = match current {
            Some(c) => Some(c),
            None => open_at(path, 0)?,
        };
        Ok(Self {
            path: path.to_owned(),
            log_name: log_name.to_owned(),
            current,
            stored,
            senders: HashMap::new(),
            pending_rejects: VecDeque::new(),
            batch_lines: BATCH_LINES,
            caught_up_at: std::time::Instant::now(),
            tracer: Tracer::disabled(),
        })
    }

    /// Publishes how far behind the end of the log we are. `caught_up`: the last pass found no
    /// complete line left.
    fn report_lag(&mut self, caught_up: bool) {
        let behind = self
            .current
            .as_ref()
            .and_then(|c| {
                c.file
                    .metadata()
                    .ok()
                    .map(|m| m.len().saturating_sub(c.offset))
            })
            .unwrap_or(0);
        metrics::gauge!(shared::metrics::LOG_LAG_BYTES).set(behind as f64);
        if caught_up {
            self.caught_up_at = std::time::Instant::now();
        }
        metrics::gauge!(shared::metrics::LOG_LAG_SECONDS).set(if caught_up {
            0.0
        } else {
            self.caught_up_at.elapsed().as_secs_f64()
        });
    }

    /// Emit an `mta.delivery` span under each traced message's request for every recipient
    /// status this follower commits.
    pub fn set_tracer(&mut self, tracer: Tracer) {
        self.tracer = tracer;
    }

    /// Lines per transaction (tests use small batches to stop mid-file).
    pub fn set_batch_lines(&mut self, lines: usize) {
        self.batch_lines = lines.max(1);
    }

    /// Processes every complete line the file holds now, following rotation and truncation.
    pub async fn ingest_available(
        &mut self,
        conn: &mut PgConnection,
    ) -> anyhow::Result<IngestStats> {
        self.ingest_batches(conn, usize::MAX).await
    }

    /// Like [`Follower::ingest_available`], but stops after `max_batches` transactions.
    pub async fn ingest_batches(
        &mut self,
        conn: &mut PgConnection,
        max_batches: usize,
    ) -> anyhow::Result<IngestStats> {
        let mut stats = IngestStats::default();
        while stats.batches < max_batches {
            if self.current.is_none() {
                self.current = open_at(&self.path, 0)?;
            }
            let Some(cur) = self.current.as_mut() else {
                break;
            };
            let (id, offset) = (cur.id.clone(), cur.offset);
            // Blocking reads on purpose: a local file answers in microseconds, and the
            // follower is a single task that has nothing else to do meanwhile.
            // Read from one byte early: we only ever stop after a newline, so anything else
            // there means the file was truncated and written again past our offset.
            let back = u64::from(offset > 0);
            cur.file.seek(SeekFrom::Start(offset - back))?;
            let mut chunk = Vec::new();
            (&mut cur.file)
                .take(CHUNK as u64 + back)
                .read_to_end(&mut chunk)?;
            if back == 1 {
                match chunk.first() {
                    Some(b'\n') => {
                        chunk.remove(0);
                    }
                    Some(_) => {
                        self.restart_truncated(conn, &id, &mut stats).await?;
                        continue;
                    }
                    None => {}
                }
            }
            let complete = chunk.iter().rposition(|b| *b == b'\n').map(|i| i + 1);
            let complete = match complete {
                Some(n) => n,
                None if chunk.len() >= CHUNK => chunk.len(),
                None => 0,
            };
            if complete > 0 {
                let mut start = 0;
                let lines: Vec<(String, u64)> = chunk[..complete]
                    .split_inclusive(|b| *b == b'\n')
                    .map(|raw| {
                        start += raw.len();
                        let text = String::from_utf8_lossy(raw);
                        (
                            text.trim_end_matches(['\n', '\r']).to_owned(),
                            offset + start as u64,
                        )
                    })
                    .collect();
                for batch in lines.chunks(self.batch_lines) {
                    if stats.batches >= max_batches {
                        break;
                    }
                    self.commit_batch(conn, &id, batch, &mut stats).await?;
                }
                continue;
            }
            match std::fs::metadata(&self.path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(e).context("stat the MTA log"),
                Ok(meta) if identity(&meta) != id => {
                    // The path names a new file, so the writer has moved on: what is left in the
                    // old one is final, an unterminated last line included.
                    if !chunk.is_empty() {
                        let text = String::from_utf8_lossy(&chunk).into_owned();
                        let end = offset + chunk.len() as u64;
                        self.commit_batch(conn, &id, &[(text, end)], &mut stats)
                            .await?;
                        continue;
                    }
                    tracing::info!(log = %self.log_name, "log rotated; following the new file");
                    self.current = open_at(&self.path, 0)?;
                    if let Some(new_id) = self.current.as_ref().map(|c| c.id.clone()) {
                        self.commit_batch(conn, &new_id, &[], &mut stats).await?;
                    }
                }
                Ok(meta) if meta.len() < offset => {
                    self.restart_truncated(conn, &id, &mut stats).await?;
                }
                Ok(_) => break,
            }
        }
        Ok(stats)
    }

    async fn restart_truncated(
        &mut self,
        conn: &mut PgConnection,
        id: &str,
        stats: &mut IngestStats,
    ) -> anyhow::Result<()> {
        tracing::warn!(log = %self.log_name, "log truncated; reading it from the start");
        if let Some(c) = self.current.as_mut() {
            c.offset = 0;
        }
        self.commit_batch(conn, id, &[], stats).await
    }

    /// Applies `lines` (text, offset just past it) and moves the position in one transaction.
    async fn commit_batch(
        &mut self,
        conn: &mut PgConnection,
        file_id: &str,
        lines: &[(String, u64)],
        stats: &mut IngestStats,
    ) -> anyhow::Result<()> {
        let end = match (lines.last(), self.current.as_ref()) {
            (Some((_, end)), _) => *end,
            (None, Some(c)) => c.offset,
            (None, None) => 0,
        };
        let saved_rejects = self.pending_rejects.clone();
        let mut tx = conn.begin().await?;
        let texts: Vec<&str> = lines.iter().map(|(t, _)| t.as_str()).collect();
        let result = match self.apply_lines(&mut tx, &texts).await {
            Ok(batch) => self
                .save_position(&mut tx, file_id, end)
                .await
                .map(|()| batch),
            Err(e) => Err(e.into()),
        };
        let batch = match result {
            Ok(batch) => batch,
            Err(e) => {
                self.pending_rejects = saved_rejects;
                return Err(e);
            }
        };
        if let Err(e) = tx.commit().await {
            self.pending_rejects = saved_rejects;
            return Err(e.into());
        }
        self.stored = Some((file_id.to_owned(), end));
        if let Some(c) = self.current.as_mut().filter(|c| c.id == file_id) {
            c.offset = end;
        }
        tracing_ctx::emit_deliveries(&self.tracer, &batch.deliveries);
        stats.lines += batch.lines;
        metrics::counter!(shared::metrics::LOG_LINES).increment(batch.lines as u64);
        stats.unparsed += batch.unparsed;
        stats.changes += batch.changes;
        stats.inbound += batch.inbound;
        stats.batches += 1;
        Ok(())
    }

    async fn save_position(
        &self,
        conn: &mut PgConnection,
        file_id: &str,
        offset: u64,
    ) -> anyhow::Result<()> {
        let (prev_id, prev_offset) = match &self.stored {
            Some((id, off)) => (id.as_str(), i64::try_from(*off).unwrap_or(-1)),
            None => ("", -1),
        };
        let done = sqlx::query(
            "insert into log_positions (log_name, file_id, byte_offset, updated_at)
             values ($1, $2, $3, '-infinity')
             on conflict (log_name) do update
                set file_id = excluded.file_id, byte_offset = excluded.byte_offset
              where log_positions.file_id = $4 and log_positions.byte_offset = $5",
        )
        .bind(&self.log_name)
        .bind(file_id)
        .bind(i64::try_from(offset).context("offset")?)
        .bind(prev_id)
        .bind(prev_offset)
        .execute(conn)
        .await?;
        anyhow::ensure!(
            done.rows_affected() == 1,
            "the position of {} moved under us: another follower holds it",
            self.log_name
        );
        Ok(())
    }
}

#[derive(Default)]
struct BatchResult {
    lines: usize,
    unparsed: usize,
    changes: usize,
    inbound: usize,
    /// Spans to emit once the batch is committed (always empty with tracing off).
    deliveries: Vec<tracing_ctx::Delivery>,
}

/// The line's time: Postfix logs local time without a year, so take the year that puts it
/// nearest before now.
fn line_time(line: &LogLine<'_>, now: DateTime<Utc>) -> DateTime<Utc> {
    let local_now = now.with_timezone(&Local);
    let year = local_now.year();
    let naive = match line.timestamp(year) {
        Some(t) if t > local_now.naive_local() + chrono::Duration::days(1) => {
            line.timestamp(year - 1)
        }
        other => other,
    };
    naive
        .and_then(|t| Local.from_local_datetime(&t).earliest())
        .map_or(now, |t| t.with_timezone(&Utc))
}

fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// The messages that own a batch's queue ids (`$1`): through the cleanup line's Message-ID, or
/// the queue id the worker recorded. `$extra` adds columns of `m` (the traceparent).
///
/// The `limit 1` (the Message-ID is unique anyway) keeps the lateral subquery from being
/// flattened into a join, so each entry finds its message through the unique index: as a join,
/// a planner without fresh statistics hashed all of `messages` for a batch of a few lines.
macro_rules! owners_sql {
    ($extra:literal) => {
        concat!(
            "select e.queue_id, m.id",
            $extra,
            " from mta_queue_entries e
               cross join lateral (
                   select * from messages m
                    where m.rfc_message_id = e.rfc_message_id limit 1) m
              where e.queue_id = any($1)
             union
             select m.queue_id, m.id",
            $extra,
            " from messages m where m.queue_id = any($1)"
        )
    };
}

/// Our recipients of the messages a batch touches, by message and lowercased address.
struct Recipients {
    by_address: HashMap<(Uuid, String), i64>,
    by_message: HashMap<Uuid, Vec<i64>>,
}

impl Recipients {
    async fn load(conn: &mut PgConnection, messages: &[Uuid]) -> sqlx::Result<Self> {
        let rows: Vec<(i64, Uuid, String)> = if messages.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
                "select id, message_id, lower(email) from recipients
                  where message_id = any($1) order by id",
            )
            .bind(messages)
            .fetch_all(conn)
            .await?
        };
        let mut by_address = HashMap::new();
        let mut by_message: HashMap<Uuid, Vec<i64>> = HashMap::new();
        for (id, message, email) in rows {
            by_address.insert((message, email), id);
            by_message.entry(message).or_default().push(id);
        }
        Ok(Self {
            by_address,
            by_message,
        })
    }

    /// Lowercased address of each recipient, by id (for delivery spans only).
    fn emails_by_id(&self) -> HashMap<i64, &str> {
        self.by_address
            .iter()
            .map(|((_, email), id)| (*id, email.as_str()))
            .collect()
    }

    fn find(&self, message: Uuid, address: &str) -> Option<i64> {
        self.by_address
            .get(&(message, address.to_lowercase()))
            .copied()
    }
}

impl Follower {
    /// Everything a batch of lines means, written with a fixed number of statements.
    async fn apply_lines(
        &mut self,
        conn: &mut PgConnection,
        lines: &[&str],
    ) -> sqlx::Result<BatchResult> {
        let now = Utc::now();
        let parsed: Vec<(&str, Option<LogLine<'_>>)> =
            lines.iter().map(|l| (*l, logline::parse(l).ok())).collect();
        let mut result = BatchResult {
            lines: lines.len(),
            unparsed: parsed.iter().filter(|(_, p)| p.is_none()).count(),
            ..BatchResult::default()
        };

        // Queue ids first: a delivery line later in this batch may need them.
        let (mut cleanup_qids, mut cleanup_ids, mut committed) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut wanted: HashSet<&str> = self
            .pending_rejects
            .iter()
            .map(|p| p.qid.as_str())
            .collect();
        for (_, line) in &parsed {
            match line.as_ref().map(|l| &l.event) {
                Some(Event::Cleanup { qid, message_id }) => {
                    cleanup_qids.push(*qid);
                    cleanup_ids.push(*message_id);
                }
                Some(Event::Qmgr { qid, from, .. }) => {
                    committed.push(*qid);
                    if self.senders.len() >= MAX_SENDERS {
                        self.senders.clear();
                    }
                    self.senders.insert((*qid).to_owned(), (*from).to_owned());
                }
                Some(Event::Delivery(d)) => {
                    wanted.insert(d.qid);
                }
                Some(Event::Expired { qid, .. }) => {
                    wanted.insert(qid);
                }
                Some(Event::RcptReject { qid: Some(qid), .. }) => {
                    wanted.insert(qid);
                }
                _ => {}
            }
        }
        if !cleanup_qids.is_empty() {
            // Only our messages: the table answers "did this Message-ID reach the MTA", and
            // inbound mail would only make it grow.
            sqlx::query(
                "insert into mta_queue_entries (queue_id, rfc_message_id)
                 select u.queue_id, u.message_id
                   from unnest($1::text[], $2::text[]) as u(queue_id, message_id)
                  where exists (select 1 from messages m where m.rfc_message_id = u.message_id)
                 on conflict (queue_id) do nothing",
            )
            .bind(&cleanup_qids)
            .bind(&cleanup_ids)
            .execute(&mut *conn)
            .await?;
        }
        if !committed.is_empty() {
            sqlx::query(
                "update mta_queue_entries set committed = true
                  where queue_id = any($1) and not committed",
            )
            .bind(&committed)
            .execute(&mut *conn)
            .await?;
        }
        let wanted: Vec<&str> = wanted.into_iter().collect();
        // With tracing on, the same query also returns each message's traceparent; off, it is
        // the query it always was.
        let tracing = self.tracer.is_enabled();
        let mut traceparents: HashMap<Uuid, String> = HashMap::new();
        let owners: HashMap<String, Uuid> = if wanted.is_empty() {
            HashMap::new()
        } else if !tracing {
            sqlx::query_as::<_, (String, Uuid)>(owners_sql!(""))
                .bind(&wanted)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect()
        } else {
            sqlx::query_as::<_, (String, Uuid, Option<String>)>(owners_sql!(", m.traceparent"))
                .bind(&wanted)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(|(queue_id, message, traceparent)| {
                    if let Some(tp) = traceparent {
                        traceparents.insert(message, tp);
                    }
                    (queue_id, message)
                })
                .collect()
        };
        let mut messages: Vec<Uuid> = owners.values().copied().collect();
        messages.sort_unstable();
        messages.dedup();
        let recipients = Recipients::load(conn, &messages).await?;

        let mut changes = Vec::new();
        let mut inbound = InboundRows::default();
        let mut still_pending = VecDeque::new();
        for p in std::mem::take(&mut self.pending_rejects) {
            match owners.get(&p.qid) {
                Some(message) => {
                    changes.extend(reject_change(
                        &recipients,
                        *message,
                        &p.to,
                        &p.response,
                        &p.line,
                        p.at,
                    ));
                }
                None => still_pending.push_back(p),
            }
        }
        for (text, line) in &parsed {
            let Some(line) = line else { continue };
            match &line.event {
                Event::Delivery(d) => {
                    let at = line_time(line, now);
                    let Some(message) = owners.get(d.qid).copied() else {
                        let lmtp =
                            line.program.ends_with("/lmtp") || d.relay.contains("dovecot-lmtp");
                        if lmtp && d.status == DeliveryStatus::Sent {
                            let sender = self.senders.get(d.qid).map(String::as_str);
                            inbound.push(d.to, sender, "accepted", Some(d.qid), text, at);
                        }
                        continue;
                    };
                    let status = match d.status {
                        DeliveryStatus::Sent => RecipientStatus::Sent,
                        DeliveryStatus::Deferred => RecipientStatus::Deferred,
                        DeliveryStatus::Bounced => RecipientStatus::Bounced,
                        DeliveryStatus::Expired => RecipientStatus::Failed,
                        DeliveryStatus::Other(_) => continue,
                    };
                    let recipient = recipients
                        .find(message, d.orig_to.unwrap_or(d.to))
                        .or_else(|| recipients.find(message, d.to));
                    if let Some(recipient_id) = recipient {
                        changes.push(RecipientChange {
                            recipient_id,
                            message_id: message,
                            status,
                            dsn_code: d.dsn.map(str::to_owned),
                            smtp_response: Some(d.response.to_owned()),
                            occurred_at: at,
                            source: EventSource::Log,
                            evidence: Some((*text).to_owned()),
                        });
                    }
                }
                Event::Expired { qid, .. } => {
                    let Some(message) = owners.get(*qid).copied() else {
                        continue;
                    };
                    let how = if text.contains("force-expired") {
                        "force-expired"
                    } else {
                        "expired"
                    };
                    let at = line_time(line, now);
                    // Every recipient still open has failed; the rule skips the final ones.
                    for id in recipients.by_message.get(&message).into_iter().flatten() {
                        changes.push(RecipientChange {
                            recipient_id: *id,
                            message_id: message,
                            status: RecipientStatus::Failed,
                            dsn_code: None,
                            smtp_response: Some(format!(
                                "{how}: the MTA gave up and returned the message to the sender"
                            )),
                            occurred_at: at,
                            source: EventSource::Log,
                            evidence: Some((*text).to_owned()),
                        });
                    }
                }
                Event::RcptReject {
                    qid: Some(qid),
                    to,
                    response,
                    ..
                } => {
                    let at = line_time(line, now);
                    match owners.get(*qid) {
                        Some(message) => changes.extend(reject_change(
                            &recipients,
                            *message,
                            to,
                            response,
                            text,
                            at,
                        )),
                        None => {
                            if still_pending.len() >= MAX_PENDING_REJECTS {
                                still_pending.pop_front();
                            }
                            still_pending.push_back(PendingReject {
                                qid: (*qid).to_owned(),
                                to: (*to).to_owned(),
                                response: (*response).to_owned(),
                                line: (*text).to_owned(),
                                at,
                            });
                        }
                    }
                }
                // Port 25 (the `smtpd` service, not `submission/smtpd`) refusing mail for us.
                Event::RcptReject {
                    qid: None,
                    from,
                    to,
                    ..
                } if line.program.ends_with("postfix/smtpd") || line.program == "smtpd" => {
                    let at = line_time(line, now);
                    inbound.push(to, Some(from), "rejected", None, text, at);
                }
                Event::Removed { qid } => {
                    self.senders.remove(*qid);
                }
                _ => {}
            }
        }
        self.pending_rejects = still_pending;

        let applied = delivery::apply_recipient_statuses(conn, &changes).await?;
        result.changes = applied.iter().filter(|a| **a).count();
        if tracing && !traceparents.is_empty() {
            let emails = recipients.emails_by_id();
            result.deliveries = tracing_ctx::deliveries(&changes, &applied, &traceparents, &emails);
        }
        let mut touched: Vec<Uuid> = changes
            .iter()
            .zip(&applied)
            .filter(|(_, a)| **a)
            .map(|(c, _)| c.message_id)
            .collect();
        touched.sort_unstable();
        touched.dedup();
        delivery::rollup_messages(conn, &touched).await?;
        result.inbound = inbound.insert(conn).await?;
        Ok(result)
    }
}

/// A recipient refused at RCPT in a transaction the MTA otherwise accepted: Postfix will not try
/// it, so a 5xx is a bounce and anything else a failure.
fn reject_change(
    recipients: &Recipients,
    message: Uuid,
    to: &str,
    response: &str,
    line: &str,
    at: DateTime<Utc>,
) -> Option<RecipientChange> {
    let recipient_id = recipients.find(message, to)?;
    let status = if response.starts_with('5') {
        RecipientStatus::Bounced
    } else {
        RecipientStatus::Failed
    };
    Some(RecipientChange {
        recipient_id,
        message_id: message,
        status,
        dsn_code: logline::enhanced_code(response).map(str::to_owned),
        smtp_response: Some(response.to_owned()),
        occurred_at: at,
        source: EventSource::Log,
        evidence: Some(line.to_owned()),
    })
}

#[derive(Default)]
struct InboundRows {
    domain: Vec<String>,
    recipient: Vec<String>,
    sender: Vec<Option<String>>,
    sender_domain: Vec<Option<String>>,
    status: Vec<&'static str>,
    queue_id: Vec<Option<String>>,
    evidence: Vec<String>,
    occurred_at: Vec<DateTime<Utc>>,
}

impl InboundRows {
    fn push(
        &mut self,
        recipient: &str,
        sender: Option<&str>,
        status: &'static str,
        queue_id: Option<&str>,
        line: &str,
        at: DateTime<Utc>,
    ) {
        let Some(domain) = domain_of(recipient) else {
            return;
        };
        let sender = sender.filter(|s| !s.is_empty());
        self.domain.push(domain);
        self.recipient.push(recipient.to_lowercase());
        self.sender.push(sender.map(str::to_lowercase));
        self.sender_domain.push(sender.and_then(domain_of));
        self.status.push(status);
        self.queue_id.push(queue_id.map(str::to_owned));
        self.evidence.push(line.to_owned());
        self.occurred_at.push(at);
    }

    async fn insert(&self, conn: &mut PgConnection) -> sqlx::Result<usize> {
        if self.domain.is_empty() {
            return Ok(0);
        }
        sqlx::query(
            "insert into inbound_events
                 (domain, recipient, sender, sender_domain, status, queue_id, evidence, occurred_at)
             select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::timestamptz[])",
        )
        .bind(&self.domain)
        .bind(&self.recipient)
        .bind(&self.sender)
        .bind(&self.sender_domain)
        .bind(&self.status)
        .bind(&self.queue_id)
        .bind(&self.evidence)
        .bind(&self.occurred_at)
        .execute(conn)
        .await?;
        Ok(self.domain.len())
    }
}
