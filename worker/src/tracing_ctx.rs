//! The worker's spans, continuing the trace of the request that accepted each message.
//!
//! * `submit message` (consumer): one per claimed message, from the claim (one statement for
//!   every message of a stream read) to the recorded outcome, with the stream entry's
//!   `traceparent` as parent; the MTA's queue id is an attribute.
//! * `smtp submit` (client): the SMTP transaction inside it.
//! * `mta.delivery`: one per recipient status the delivery log settles (sent, deferred, bounced,
//!   failed), parented on the message's stored `traceparent`. It starts at the log line's time
//!   and ends when the follower committed it, so its length is the follower's lag.
//!
//! Everything here returns at once when tracing is off.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use opentelemetry::trace::{FutureExt as _, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use shared::delivery::RecipientChange;
use shared::telemetry::Tracer;
use shared::telemetry::trace::remote_parent;
use uuid::Uuid;

use crate::logline::{self, Event};

pub const SUBMIT_SPAN: &str = "submit message";
pub const SMTP_SPAN: &str = "smtp submit";
pub const DELIVERY_SPAN: &str = "mta.delivery";

/// What the `submit message` span of one message is made from.
pub struct Submission<'a> {
    pub message_id: Uuid,
    /// From the stream entry: the request span that accepted the message.
    pub traceparent: Option<&'a str>,
    pub entry_id: Option<&'a str>,
    /// When the claim of the stream read this message came in began.
    pub started: SystemTime,
}

/// Runs `work` (one claimed message to its committed outcome) inside its `submit message` span.
pub async fn submission<T: Debug, E: std::fmt::Display>(
    tracer: &Tracer,
    s: Submission<'_>,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    if !tracer.is_enabled() {
        return work.await;
    }
    let parent = remote_parent(s.traceparent, None);
    let mut attributes = vec![
        KeyValue::new("mailapi.message_id", s.message_id.to_string()),
        KeyValue::new("messaging.system", "redis"),
    ];
    if let Some(entry_id) = s.entry_id {
        attributes.push(KeyValue::new("messaging.message.id", entry_id.to_owned()));
    }
    let kind = SpanKind::Consumer;
    let Some(cx) = tracer.start_at(SUBMIT_SPAN, kind, &parent, attributes, s.started) else {
        return work.await;
    };
    let result = work.with_context(cx.clone()).await;
    let span = cx.span();
    match &result {
        Ok(outcome) => span.set_attribute(KeyValue::new(
            "mailapi.outcome",
            format!("{outcome:?}").to_lowercase(),
        )),
        Err(e) => span.set_status(Status::error(format!("{e:#}"))),
    }
    span.end();
    result
}

/// Runs the SMTP transaction inside an `smtp submit` span under the current one.
pub async fn smtp<T, E: std::fmt::Display>(
    tracer: &Tracer,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let attributes = || vec![KeyValue::new("network.protocol.name", "smtp")];
    tracer.in_span(SMTP_SPAN, attributes, work).await
}

/// Puts the MTA's queue id on the current `submit message` span.
pub fn record_queue_id(tracer: &Tracer, queue_id: Option<&str>) {
    let (true, Some(queue_id)) = (tracer.is_enabled(), queue_id) else {
        return;
    };
    let attribute = KeyValue::new("mailapi.queue_id", queue_id.to_owned());
    Context::map_current(|cx| cx.span().set_attribute(attribute));
}

/// One recipient status the log follower committed, waiting for its span.
#[derive(Debug, Clone)]
pub struct Delivery {
    traceparent: String,
    message_id: Uuid,
    queue_id: Option<String>,
    recipient: String,
    status: &'static str,
    dsn: Option<String>,
    logged_at: DateTime<Utc>,
}

/// The deliveries among a batch's `changes` (`applied` says which the rules took) whose message
/// has a trace. `emails` names the recipients by id. Call only with tracing on.
pub fn deliveries(
    changes: &[RecipientChange],
    applied: &[bool],
    traceparents: &HashMap<Uuid, String>,
    emails: &HashMap<i64, &str>,
) -> Vec<Delivery> {
    changes
        .iter()
        .zip(applied)
        .filter(|(_, applied)| **applied)
        .filter_map(|(c, _)| {
            Some(Delivery {
                traceparent: traceparents.get(&c.message_id)?.clone(),
                message_id: c.message_id,
                queue_id: c
                    .evidence
                    .as_deref()
                    .and_then(queue_id_of)
                    .map(str::to_owned),
                recipient: emails
                    .get(&c.recipient_id)
                    .copied()
                    .unwrap_or("")
                    .to_owned(),
                status: c.status.as_str(),
                dsn: c.dsn_code.clone(),
                logged_at: c.occurred_at,
            })
        })
        .collect()
}

/// The queue id of the log line a change came from.
fn queue_id_of(line: &str) -> Option<&str> {
    match logline::parse(line).ok()?.event {
        Event::Delivery(d) => Some(d.qid),
        Event::Expired { qid, .. } => Some(qid),
        Event::RcptReject { qid, .. } => qid,
        _ => None,
    }
}

/// Emits the spans of deliveries whose batch is committed (a batch that rolls back is read
/// again, and its spans must not appear twice).
pub fn emit_deliveries(tracer: &Tracer, deliveries: &[Delivery]) {
    let committed_at = std::time::SystemTime::now();
    for d in deliveries {
        let parent = remote_parent(Some(&d.traceparent), None);
        let mut attributes = vec![
            KeyValue::new("mailapi.message_id", d.message_id.to_string()),
            KeyValue::new("mail.recipient", d.recipient.clone()),
            KeyValue::new("mail.status", d.status),
        ];
        if let Some(q) = &d.queue_id {
            attributes.push(KeyValue::new("mailapi.queue_id", q.clone()));
        }
        if let Some(dsn) = &d.dsn {
            attributes.push(KeyValue::new("mail.dsn", dsn.clone()));
        }
        tracer.record(
            DELIVERY_SPAN,
            &parent,
            attributes,
            d.logged_at.into(),
            committed_at,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_id_comes_from_the_line() {
        let line = "Nov 23 20:17:57 mail postfix/lmtp[24124]: 4jYHLY6w8Bz5n9v: \
                    to=<bounces@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], \
                    delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 Saved)";
        assert_eq!(queue_id_of(line), Some("4jYHLY6w8Bz5n9v"));
        assert_eq!(queue_id_of("garbage"), None);
    }
}
