//! Writes an accepted message in one transaction: the message, one row per recipient, the
//! `accepted` event (and, in the same transaction, `idempotency::insert` records the key when the
//! client sent one). Either all of it is committed or none of it is, so a 202 always has a
//! complete message behind it.

use serde::{Deserialize, Serialize};
use shared::outgoing::OutgoingMessage;
use shared::status::MessageStatus;
use sqlx::PgConnection;
use uuid::Uuid;

/// A validated message ready to be stored.
pub struct NewMessage {
    pub id: Uuid,
    pub token_id: i64,
    pub rfc_message_id: String,
    pub message: OutgoingMessage,
    pub size_bytes: usize,
    /// The request span's W3C `traceparent` (tracing on), kept for the delivery-log spans.
    pub traceparent: Option<String>,
}

/// What `POST /mail/send` answers (the spec's keys, always all of them). Stored as JSON with the
/// idempotency key and read back into this type for a replay, so a replay is the same answer in
/// the same, documented, shape.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SendResponse {
    pub success: bool,
    pub message_id: Uuid,
    /// `pending` until the mail server has the message (`submitted`); `failed` at once when
    /// every recipient is suppressed.
    pub status: MessageStatus,
    /// The mail server's queue id, once submitted; `null` until then.
    #[serde(default)]
    #[schema(required = true, example = "4f0Bn53bY2z6v2j")]
    pub queue_id: Option<String>,
    /// Distinct recipients (to, cc and bcc; an address listed twice counts once).
    #[schema(minimum = 1)]
    pub recipient_count: usize,
}

/// The answer for a message with `status` and, once submitted, its queue id.
pub fn accepted_response(
    id: Uuid,
    status: MessageStatus,
    queue_id: Option<&str>,
    recipient_count: usize,
) -> SendResponse {
    SendResponse {
        success: true,
        message_id: id,
        status,
        queue_id: queue_id.map(str::to_owned),
        recipient_count,
    }
}

/// Name of the client span around [`insert_messages`].
pub const INSERT_SPAN: &str = "insert message";

/// Attributes of that span.
pub fn span_attributes() -> Vec<opentelemetry::KeyValue> {
    vec![
        opentelemetry::KeyValue::new("db.system.name", "postgresql"),
        opentelemetry::KeyValue::new("db.operation.name", "insert"),
        opentelemetry::KeyValue::new("db.collection.name", "messages"),
    ]
}

/// Inserts messages, their recipients and their first events in ONE statement (so one round
/// trip and, outside a transaction, one commit for the whole batch: the accept path's cost).
/// Recipients on the sending domain's suppression list are stored as `suppressed` and never reach
/// the MTA; when every recipient of a message is suppressed the message is `failed` at once and
/// needs no worker. Returns each message's status, in the order of `messages`.
pub async fn insert_messages(
    conn: &mut PgConnection,
    messages: &[&NewMessage],
) -> Result<Vec<MessageStatus>, sqlx::Error> {
    let n = messages.len();
    let mut ids = Vec::with_capacity(n);
    let mut token_ids = Vec::with_capacity(n);
    let mut from_emails = Vec::with_capacity(n);
    let mut from_domains = Vec::with_capacity(n);
    let mut subjects = Vec::with_capacity(n);
    let mut rfc_ids = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut sizes = Vec::with_capacity(n);
    let mut traceparents = Vec::with_capacity(n);
    let (mut r_messages, mut r_emails, mut r_domains, mut r_kinds) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for m in messages {
        let msg = &m.message;
        ids.push(m.id);
        token_ids.push(m.token_id);
        from_emails.push(msg.from.email.as_str());
        from_domains.push(msg.from.email.domain());
        subjects.push(msg.subject.as_str());
        rfc_ids.push(m.rfc_message_id.as_str());
        payloads.push(serde_json::to_string(msg).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
        sizes.push(i32::try_from(m.size_bytes).unwrap_or(i32::MAX));
        traceparents.push(m.traceparent.as_deref());
        for (kind, r) in msg.recipients() {
            r_messages.push(m.id);
            r_emails.push(r.email.as_str());
            r_domains.push(r.email.domain());
            r_kinds.push(kind);
        }
    }
    let rows: Vec<(Uuid, MessageStatus)> = sqlx::query_as(
        "with msg as (
             select * from unnest($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::int4[], $9::text[])
                 as t(id, token_id, from_email, from_domain, subject, rfc_message_id, payload,
                      size_bytes, traceparent)),
         rc as (
             select u.message_id, u.email, u.domain, u.kind, u.ord,
                    s.email is not null as suppressed
               from unnest($10::uuid[], $11::text[], $12::text[], $13::text[]) with ordinality
                    as u(message_id, email, domain, kind, ord)
               join msg on msg.id = u.message_id
               left join suppressions s on s.domain = msg.from_domain and s.email = u.email),
         st as (
             select message_id as id,
                    case when bool_and(suppressed) then 'failed' else 'pending' end as status,
                    count(*) filter (where suppressed) as suppressed
               from rc group by message_id),
         m as (
             insert into messages (id, token_id, from_email, from_domain, subject, status,
                                   rfc_message_id, payload, size_bytes, enqueued_at, last_error,
                                   completed_at, traceparent, event_seq)
             select msg.id, msg.token_id, msg.from_email, msg.from_domain, msg.subject, st.status,
                    msg.rfc_message_id, msg.payload::json, msg.size_bytes, now(),
                    case when st.status = 'failed'
                         then 'every recipient is on the suppression list' end,
                    case when st.status = 'failed' then now() end, msg.traceparent,
                    1 + st.suppressed
               from msg join st using (id)
              order by msg.id
             returning id, status),
         r as (
             insert into recipients (message_id, email, domain, kind, status, smtp_response)
             select rc.message_id, rc.email, rc.domain, rc.kind,
                    case when rc.suppressed then 'suppressed' else 'pending' end,
                    case when rc.suppressed then 'address is on the suppression list' end
               from rc join m on m.id = rc.message_id
              order by rc.ord
             returning id, message_id, status, smtp_response),
         -- A message's published events are numbered from 1 (messages.event_seq above counts
         -- them): `message.accepted` first, then each suppressed recipient in request order.
         e as (
             insert into delivery_events (message_id, recipient_id, event, status,
                                          smtp_response, source, seq)
             select m.id, null, 'accepted', 'pending', null, 'api', 1 from m
             union all
             select r.message_id, r.id, 'suppressed', 'suppressed', r.smtp_response, 'api',
                    1 + row_number() over (partition by r.message_id order by r.id)
               from r where r.status = 'suppressed')
         select id, status from m",
    )
    .bind(&ids)
    .bind(&token_ids)
    .bind(&from_emails)
    .bind(&from_domains)
    .bind(&subjects)
    .bind(&rfc_ids)
    .bind(&payloads)
    .bind(&sizes)
    .bind(&traceparents)
    .bind(&r_messages)
    .bind(&r_emails)
    .bind(&r_domains)
    .bind(&r_kinds)
    .fetch_all(conn)
    .await?;
    let mut by_id: std::collections::HashMap<Uuid, MessageStatus> = rows.into_iter().collect();
    ids.iter()
        .map(|id| {
            by_id.remove(id).ok_or_else(|| {
                sqlx::Error::Protocol(format!("message {id} was not inserted (no recipients?)"))
            })
        })
        .collect()
}
