//! Following the log file: where we are (file identity and offset, as stored in
//! `log_positions`), reading complete lines from there, and noticing rotation and truncation.
//! Each batch of lines is applied (`super::apply`) and the position moved in one transaction.

use std::fs::{File, Metadata};
use std::io::{Read as _, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use shared::telemetry::Tracer;
use sqlx::{Connection, PgConnection};

use super::apply::Interpreter;
use super::{BATCH_LINES, IngestStats};
use crate::error::{Error, Result};
use crate::tracing_ctx;

/// Largest read; a line longer than this (never seen from Postfix) is taken as it is.
const CHUNK: usize = 1 << 20;

struct OpenLog {
    file: File,
    id: String,
    offset: u64,
}

/// What one read from the current offset found.
enum Chunk {
    /// Complete lines: each one's text and the offset just past it.
    Lines(Vec<(String, u64)>),
    /// The byte before our offset is not the newline we stopped after: the file was truncated
    /// and written again past our offset.
    Truncated,
    /// No complete line; what there is of an unterminated one (perhaps nothing).
    Partial(Vec<u8>),
}

/// One log's reader and the state it keeps between lines.
pub struct Follower {
    path: PathBuf,
    log_name: String,
    current: Option<OpenLog>,
    /// The row in `log_positions` as we last wrote or read it: the condition of our next write.
    stored: Option<(String, u64)>,
    /// What the lines mean, and what it remembers from one line to a later one.
    interpreter: Interpreter,
    batch_lines: usize,
    /// When a pass last found nothing left to read (for the lag metric).
    caught_up_at: std::time::Instant,
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

/// The file we stopped in, if it is still the live file or a rotated sibling of it.
fn reopen(path: &Path, id: &str, offset: u64) -> std::io::Result<Option<OpenLog>> {
    if let Some(live) = open_at(path, offset)?.filter(|l| l.id == id) {
        return Ok(Some(live));
    }
    match find_rotated(path, id) {
        Some(old) => Ok(open_at(&old, offset)?.filter(|l| l.id == id)),
        None => Ok(None),
    }
}

/// Reads from `cur.offset`. Blocking reads on purpose: a local file answers in microseconds,
/// and the follower is a single task that has nothing else to do meanwhile.
fn read_chunk(cur: &mut OpenLog) -> std::io::Result<Chunk> {
    let offset = cur.offset;
    // Read from one byte early: we only ever stop after a newline, so anything else there
    // means the file was truncated and written again past our offset.
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
            Some(_) => return Ok(Chunk::Truncated),
            None => {}
        }
    }
    let complete = match chunk.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None if chunk.len() >= CHUNK => chunk.len(),
        None => return Ok(Chunk::Partial(chunk)),
    };
    let mut start = 0;
    let lines = chunk[..complete]
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
    Ok(Chunk::Lines(lines))
}

impl Follower {
    /// Resumes where `log_positions` says this log was left.
    pub async fn load(conn: &mut PgConnection, path: &Path, log_name: &str) -> Result<Self> {
        let stored: Option<(String, i64)> =
            sqlx::query_as("select file_id, byte_offset from log_positions where log_name = $1")
                .bind(log_name)
                .fetch_optional(conn)
                .await?;
        let stored = stored.map(|(id, off)| (id, u64::try_from(off).unwrap_or(0)));
        let current = match &stored {
            Some((id, offset)) => reopen(path, id, *offset)?,
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
            interpreter: Interpreter::new(Tracer::disabled()),
            batch_lines: BATCH_LINES,
            caught_up_at: std::time::Instant::now(),
        })
    }

    /// Publishes how far behind the end of the log we are. `caught_up`: the last pass found no
    /// complete line left.
    pub(super) fn report_lag(&mut self, caught_up: bool) {
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
        self.interpreter.set_tracer(tracer);
    }

    /// Lines per transaction (tests use small batches to stop mid-file).
    pub fn set_batch_lines(&mut self, lines: usize) {
        self.batch_lines = lines.max(1);
    }

    /// Processes every complete line the file holds now, following rotation and truncation.
    pub async fn ingest_available(&mut self, conn: &mut PgConnection) -> Result<IngestStats> {
        self.ingest_batches(conn, usize::MAX).await
    }

    /// Like [`Follower::ingest_available`], but stops after `max_batches` transactions.
    pub async fn ingest_batches(
        &mut self,
        conn: &mut PgConnection,
        max_batches: usize,
    ) -> Result<IngestStats> {
        let mut stats = IngestStats::default();
        while stats.batches < max_batches {
            if self.current.is_none() {
                self.current = open_at(&self.path, 0)?;
            }
            let Some(cur) = self.current.as_mut() else {
                break;
            };
            let (id, offset) = (cur.id.clone(), cur.offset);
            match read_chunk(cur)? {
                Chunk::Truncated => self.restart_truncated(conn, &id, &mut stats).await?,
                Chunk::Lines(lines) => {
                    for batch in lines.chunks(self.batch_lines) {
                        if stats.batches >= max_batches {
                            break;
                        }
                        self.commit_batch(conn, &id, batch, &mut stats).await?;
                    }
                }
                Chunk::Partial(tail) => {
                    if !self.at_end(conn, &id, offset, tail, &mut stats).await? {
                        break;
                    }
                }
            }
        }
        Ok(stats)
    }

    /// Nothing complete is left to read in file `id`: decides whether it is finished (rotated
    /// away or truncated) or only waiting for its writer. `true`: read again.
    async fn at_end(
        &mut self,
        conn: &mut PgConnection,
        id: &str,
        offset: u64,
        tail: Vec<u8>,
        stats: &mut IngestStats,
    ) -> Result<bool> {
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("stat the MTA log")(e)),
            Ok(meta) if identity(&meta) != id => {
                // The path names a new file, so the writer has moved on: what is left in the
                // old one is final, an unterminated last line included.
                if !tail.is_empty() {
                    let text = String::from_utf8_lossy(&tail).into_owned();
                    let end = offset + tail.len() as u64;
                    self.commit_batch(conn, id, &[(text, end)], stats).await?;
                    return Ok(true);
                }
                tracing::info!(log = %self.log_name, "log rotated; following the new file");
                self.current = open_at(&self.path, 0)?;
                if let Some(new_id) = self.current.as_ref().map(|c| c.id.clone()) {
                    self.commit_batch(conn, &new_id, &[], stats).await?;
                }
                Ok(true)
            }
            Ok(meta) if meta.len() < offset => {
                self.restart_truncated(conn, id, stats).await?;
                Ok(true)
            }
            Ok(_) => Ok(false),
        }
    }

    async fn restart_truncated(
        &mut self,
        conn: &mut PgConnection,
        id: &str,
        stats: &mut IngestStats,
    ) -> Result<()> {
        tracing::warn!(log = %self.log_name, "log truncated; reading it from the start");
        if let Some(c) = self.current.as_mut() {
            c.offset = 0;
        }
        self.commit_batch(conn, id, &[], stats).await
    }

    /// Applies `lines` (text, offset just past it) and moves the position in one transaction.
    /// On failure nothing is committed, and what the interpreter remembers is put back as it
    /// was, so the same lines can be applied again.
    async fn commit_batch(
        &mut self,
        conn: &mut PgConnection,
        file_id: &str,
        lines: &[(String, u64)],
        stats: &mut IngestStats,
    ) -> Result<()> {
        let end = match (lines.last(), self.current.as_ref()) {
            (Some((_, end)), _) => *end,
            (None, Some(c)) => c.offset,
            (None, None) => 0,
        };
        let saved = self.interpreter.checkpoint();
        let mut tx = conn.begin().await?;
        let texts: Vec<&str> = lines.iter().map(|(t, _)| t.as_str()).collect();
        let result = match self.interpreter.apply_lines(&mut tx, &texts).await {
            Ok(batch) => self
                .save_position(&mut tx, file_id, end)
                .await
                .map(|()| batch),
            Err(e) => Err(e.into()),
        };
        let committed = match result {
            Ok(batch) => tx.commit().await.map(|()| batch).map_err(Into::into),
            Err(e) => Err(e),
        };
        let batch = match committed {
            Ok(batch) => batch,
            Err(e) => {
                self.interpreter.restore(saved);
                return Err(e);
            }
        };
        self.stored = Some((file_id.to_owned(), end));
        if let Some(c) = self.current.as_mut().filter(|c| c.id == file_id) {
            c.offset = end;
        }
        tracing_ctx::emit_deliveries(self.interpreter.tracer(), &batch.deliveries);
        metrics::counter!(shared::metrics::LOG_LINES).increment(batch.lines as u64);
        stats.add(&batch);
        Ok(())
    }

    async fn save_position(
        &self,
        conn: &mut PgConnection,
        file_id: &str,
        offset: u64,
    ) -> Result<()> {
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
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .bind(prev_id)
        .bind(prev_offset)
        .execute(conn)
        .await?;
        if done.rows_affected() != 1 {
            return Err(Error::LeaseLost(self.log_name.clone()));
        }
        Ok(())
    }
}
