//! What a batch of log lines means for our messages: queue ids first (a delivery line later in
//! the same batch may need them), then one status change per recipient line, all written with a
//! fixed number of statements inside the reader's transaction.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Datelike, Local, TimeZone, Utc};
use shared::delivery::{self, RecipientChange};
use shared::telemetry::Tracer;
use sqlx::PgConnection;
use uuid::Uuid;

use super::IngestStats;
use super::changes::{delivery_change, expired_changes, reject_change};
use super::inbound::{InboundRows, InboundStatus};
use super::owners::{Owners, Recipients};
use crate::logline::{self, DeliveryStatus, Event, LogLine};
use crate::tracing_ctx;

/// Bounds on what is remembered between lines (senders for inbound events, early rejects).
const MAX_SENDERS: usize = 100_000;
const MAX_PENDING_REJECTS: usize = 1_000;

/// A `<QID>: reject: RCPT` line logged before the `cleanup` line that tells whose the QID is.
#[derive(Clone)]
pub(super) struct PendingReject {
    qid: String,
    to: String,
    response: String,
    line: String,
    at: DateTime<Utc>,
}

#[derive(Default)]
pub(super) struct BatchResult {
    pub lines: usize,
    pub unparsed: usize,
    pub changes: usize,
    pub inbound: usize,
    /// Spans to emit once the batch is committed (always empty with tracing off).
    pub deliveries: Vec<tracing_ctx::Delivery>,
}

impl IngestStats {
    pub(super) fn add(&mut self, batch: &BatchResult) {
        self.lines += batch.lines;
        self.unparsed += batch.unparsed;
        self.changes += batch.changes;
        self.inbound += batch.inbound;
        self.batches += 1;
    }
}

/// Turns lines into changes, remembering what a later line needs from an earlier one.
pub(super) struct Interpreter {
    /// Envelope sender by queue id (from `qmgr`), for inbound events.
    senders: HashMap<String, String>,
    pending_rejects: VecDeque<PendingReject>,
    /// Delivery spans; while disabled the follower reads no trace context at all.
    tracer: Tracer,
}

/// The changes and inbound rows one batch produces.
#[derive(Default)]
struct Outcome {
    changes: Vec<RecipientChange>,
    inbound: InboundRows,
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

impl Interpreter {
    pub(super) fn new(tracer: Tracer) -> Self {
        Self {
            senders: HashMap::new(),
            pending_rejects: VecDeque::new(),
            tracer,
        }
    }

    pub(super) fn set_tracer(&mut self, tracer: Tracer) {
        self.tracer = tracer;
    }

    pub(super) fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// What must be put back if the batch's transaction does not commit (the senders map only
    /// grows with facts that stay true, so it need not be).
    pub(super) fn checkpoint(&self) -> VecDeque<PendingReject> {
        self.pending_rejects.clone()
    }

    pub(super) fn restore(&mut self, saved: VecDeque<PendingReject>) {
        self.pending_rejects = saved;
    }

    /// Everything a batch of lines means, written with a fixed number of statements.
    pub(super) async fn apply_lines(
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
        let mut wanted = self.record_queue_ids(conn, &parsed).await?;
        // Rejects from earlier batches still wait for their owner.
        wanted.extend(self.pending_rejects.iter().map(|p| p.qid.as_str()));
        let wanted: Vec<&str> = wanted.into_iter().collect();
        let owners = Owners::load(conn, &wanted, self.tracer.is_enabled()).await?;
        let recipients = Recipients::load(conn, &owners.messages()).await?;
        let mut out = Outcome::default();
        self.retry_pending_rejects(&owners, &recipients, &mut out);
        for (text, line) in &parsed {
            if let Some(line) = line {
                self.interpret(text, line, now, &owners, &recipients, &mut out);
            }
        }
        let applied = delivery::apply_recipient_statuses(conn, &out.changes).await?;
        result.changes = applied.iter().filter(|a| **a).count();
        if self.tracer.is_enabled() && !owners.traceparents.is_empty() {
            let emails = recipients.emails_by_id();
            result.deliveries =
                tracing_ctx::deliveries(&out.changes, &applied, &owners.traceparents, &emails);
        }
        let mut touched: Vec<Uuid> = (out.changes.iter().zip(&applied))
            .filter(|(_, a)| **a)
            .map(|(c, _)| c.message_id)
            .collect();
        touched.sort_unstable();
        touched.dedup();
        delivery::rollup_messages(conn, &touched).await?;
        result.inbound = out.inbound.insert(conn).await?;
        Ok(result)
    }

    /// Records which queue id carries which of our Message-IDs (`cleanup`) and which entered the
    /// queue (`qmgr`); returns the queue ids whose owners the batch needs.
    async fn record_queue_ids<'a>(
        &mut self,
        conn: &mut PgConnection,
        parsed: &[(&str, Option<LogLine<'a>>)],
    ) -> sqlx::Result<HashSet<&'a str>> {
        let (mut cleanup_qids, mut cleanup_ids, mut committed) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut wanted: HashSet<&'a str> = HashSet::new();
        for (_, line) in parsed {
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
                Some(Event::Expired { qid, .. })
                | Some(Event::RcptReject { qid: Some(qid), .. }) => {
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
        Ok(wanted)
    }

    /// Early rejects whose owner this batch made known become changes; the rest keep waiting.
    fn retry_pending_rejects(
        &mut self,
        owners: &Owners,
        recipients: &Recipients,
        out: &mut Outcome,
    ) {
        let mut still_pending = VecDeque::new();
        for p in std::mem::take(&mut self.pending_rejects) {
            match owners.get(&p.qid) {
                Some(message) => out.changes.extend(reject_change(
                    recipients,
                    message,
                    &p.to,
                    &p.response,
                    &p.line,
                    p.at,
                )),
                None => still_pending.push_back(p),
            }
        }
        self.pending_rejects = still_pending;
    }

    /// One parsed line's effect on our recipients or on inbound mail.
    fn interpret(
        &mut self,
        text: &str,
        line: &LogLine<'_>,
        now: DateTime<Utc>,
        owners: &Owners,
        recipients: &Recipients,
        out: &mut Outcome,
    ) {
        let at = || line_time(line, now);
        match &line.event {
            Event::Delivery(d) => match owners.get(d.qid) {
                Some(message) => {
                    out.changes
                        .extend(delivery_change(d, message, recipients, text, at()));
                }
                None => {
                    let lmtp = line.program.ends_with("/lmtp") || d.relay.contains("dovecot-lmtp");
                    if lmtp && d.status == DeliveryStatus::Sent {
                        let sender = self.senders.get(d.qid).map(String::as_str);
                        let status = InboundStatus::Accepted;
                        out.inbound
                            .push(d.to, sender, status, Some(d.qid), text, at());
                    }
                }
            },
            Event::Expired { qid, .. } => {
                if let Some(message) = owners.get(qid) {
                    out.changes
                        .extend(expired_changes(message, recipients, text, at()));
                }
            }
            Event::RcptReject {
                qid: Some(qid),
                to,
                response,
                ..
            } => match owners.get(qid) {
                Some(message) => {
                    out.changes
                        .extend(reject_change(recipients, message, to, response, text, at()))
                }
                None => self.remember_reject(qid, to, response, text, at()),
            },
            // Port 25 (the `smtpd` service, not `submission/smtpd`) refusing mail for us.
            Event::RcptReject {
                qid: None,
                from,
                to,
                ..
            } if line.program.ends_with("postfix/smtpd") || line.program == "smtpd" => {
                let status = InboundStatus::Rejected;
                out.inbound.push(to, Some(from), status, None, text, at());
            }
            Event::Removed { qid } => {
                self.senders.remove(*qid);
            }
            _ => {}
        }
    }

    fn remember_reject(
        &mut self,
        qid: &str,
        to: &str,
        response: &str,
        line: &str,
        at: DateTime<Utc>,
    ) {
        if self.pending_rejects.len() >= MAX_PENDING_REJECTS {
            self.pending_rejects.pop_front();
        }
        self.pending_rejects.push_back(PendingReject {
            qid: qid.to_owned(),
            to: to.to_owned(),
            response: response.to_owned(),
            line: line.to_owned(),
            at,
        });
    }
}
