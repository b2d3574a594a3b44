//! Writes an accepted message in one transaction: the message, one row per recipient, the
//! `accepted` event and (when the client sent one) the idempotency record. Either all of it is
//! committed or none of it is, so a 202 always has a complete message behind it.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::outgoing::OutgoingMessage;
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::idempotency::IdempotencyKey;

/// A validated message ready to be stored.
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub token_id: i64,
    pub rfc_message_id: String,
    pub message: &'a OutgoingMessage,
    pub size_bytes: usize,
    /// The request span's W3C `traceparent` (tracing on), kept for the delivery-log spans.
    pub traceparent: Option<String>,
}

/// What `POST /mail/send` answers; stored with the idempotency key so a replay is identical.
pub fn accepted_response(id: Uuid, status: &str, recipient_count: usize) -> Value {
    json!({
        "success": true,
        "message_id": id,
        "status": status,
        "queue_id": null,
        "recipient_count": recipient_count,
    })
}

/// Name of the client span around [`insert_message`].
pub const INSERT_SPAN: &str = "insert message";

/// Attributes of that span.
pub fn span_attributes() -> Vec<opentelemetry::KeyValue> {
    vec![
        opentelemetry::KeyValue::new("db.system.name", "postgresql"),
        opentelemetry::KeyValue::new("db.operation.name", "insert"),
        opentelemetry::KeyValue::new("db.collection.name", "messages"),
    ]
}

/// Inserts the message, its recipients and their first events in ONE statement (so one round
/// trip and, outside a transaction, one commit: the accept path's cost). Recipients on the
/// sending domain's suppression list are stored as `suppressed` and never reach the MTA; when
/// every recipient is suppressed the message is `failed` at once and needs no worker. Returns
/// the message's status.
pub async fn insert_message(
    conn: &mut PgConnection,
    m: &NewMessage<'_>,
) -> Result<String, sqlx::Error> {
    let msg = m.message;
    let from_domain = msg
        .from
        .email
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default();
    let (mut emails, mut domains, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
    for (kind, r) in msg.recipients() {
        emails.push(r.email.as_str());
        domains.push(r.email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default());
        kinds.push(kind);
    }
    let payload = serde_json::to_value(msg).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query_scalar(
        "with sup as (
             select email from suppressions where domain = $4 and email = any($9::text[])),
         st as (
             select case when (select count(*) from sup) = cardinality($9::text[])
                         then 'failed' else 'pending' end as status),
         m as (
             insert into messages (id, token_id, from_email, from_domain, subject, status,
                                   rfc_message_id, payload, size_bytes, enqueued_at, last_error,
                                   completed_at, traceparent)
             select $1, $2, $3, $4, $5, st.status, $6, $7, $8, now(),
                    case when st.status = 'failed'
                         then 'every recipient is on the suppression list' end,
                    case when st.status = 'failed' then now() end, $12
               from st
             returning id, status),
         r as (
             insert into recipients (message_id, email, domain, kind, status, smtp_response)
             select m.id, u.e, u.d, u.k,
                    case when u.e in (select email from sup) then 'suppressed' else 'pending' end,
                    case when u.e in (select email from sup)
                         then 'address is on the suppression list' end
               from m, unnest($9::text[], $10::text[], $11::text[]) as u(e, d, k)
             returning id, message_id, status, smtp_response),
         e as (
             insert into delivery_events (message_id, recipient_id, event, status,
                                          smtp_response, source)
             select m.id, null, 'accepted', 'pending', null, 'api' from m
             union all
             select r.message_id, r.id, 'suppressed', 'suppressed', r.smtp_response, 'api'
               from r where r.status = 'suppressed')
         select status from m",
    )
    .bind(m.id)
    .bind(m.token_id)
    .bind(&msg.from.email)
    .bind(from_domain)
    .bind(&msg.subject)
    .bind(&m.rfc_message_id)
    .bind(payload)
    .bind(i32::try_from(m.size_bytes).unwrap_or(i32::MAX))
    .bind(&emails)
    .bind(&domains)
    .bind(&kinds)
    .bind(m.traceparent.as_deref())
    .fetch_one(conn)
    .await
}

/// Records the response for an idempotency key (inside the message's transaction).
pub async fn insert_idempotency(
    tx: &mut Transaction<'_, Postgres>,
    key: &IdempotencyKey,
    token_id: i64,
    message_id: Uuid,
    response: &Value,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into idempotency_keys (token_id, idempotency_key, request_hash, message_id,
                                       response_status, response_body, expires_at)
         values ($1, $2, $3, $4, 202, $5, $6)
         on conflict (token_id, idempotency_key) do update
            set request_hash = excluded.request_hash, message_id = excluded.message_id,
                response_status = excluded.response_status,
                response_body = excluded.response_body, created_at = now(),
                expires_at = excluded.expires_at",
    )
    .bind(token_id)
    .bind(key.as_str())
    .bind(&key.request_hash[..])
    .bind(message_id)
    .bind(response)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
