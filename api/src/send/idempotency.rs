//! `Idempotency-Key`: the same key with the same body from the same token returns the stored
//! response and creates nothing; the same key with another body is refused with 422.
//!
//! Concurrent requests with one key are serialised by a transaction-scoped advisory lock on
//! (token, key): the first stores the message and the key, the others wait for its commit and
//! then find the key. Expired keys are treated as absent and overwritten.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::store::SendResponse;
use crate::error::ApiError;

pub const HEADER: &str = "idempotency-key";
const MAX_LEN: usize = 255;

pub struct IdempotencyKey {
    key: String,
    /// SHA-256 of the raw request body: "the same body" means byte for byte.
    pub request_hash: [u8; 32],
}

impl IdempotencyKey {
    /// Reads the header; `None` when absent. Printable ASCII, 1-255 characters.
    pub fn from_headers(headers: &HeaderMap, body: &[u8]) -> Result<Option<Self>, ApiError> {
        let Some(raw) = headers.get(HEADER) else {
            return Ok(None);
        };
        let key = raw
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| {
                !k.is_empty() && k.len() <= MAX_LEN && k.bytes().all(|b| b.is_ascii_graphic())
            })
            .ok_or_else(|| {
                ApiError::invalid(
                    "INVALID_IDEMPOTENCY_KEY",
                    Some("Idempotency-Key".to_owned()),
                    "Idempotency-Key must be 1-255 printable ASCII characters",
                )
            })?;
        Ok(Some(Self {
            key: key.to_owned(),
            request_hash: Sha256::digest(body).into(),
        }))
    }

    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// A 64-bit lock id for (token, key).
    fn lock_id(&self, token_id: i64) -> i64 {
        let mut h = Sha256::new();
        h.update(token_id.to_be_bytes());
        h.update(self.key.as_bytes());
        let d = h.finalize();
        i64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8]))
    }
}

/// What an earlier request with this key left behind.
pub enum Previous {
    /// Same body: answer with the stored response.
    Replay(SendResponse),
    /// No live record: go ahead and store the message.
    None,
}

/// Takes the key's lock for the rest of `tx` and looks for a live record.
pub async fn check(
    tx: &mut Transaction<'_, Postgres>,
    key: &IdempotencyKey,
    token_id: i64,
) -> Result<Previous, ApiError> {
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(key.lock_id(token_id))
        .execute(&mut **tx)
        .await?;
    let row: Option<(Vec<u8>, sqlx::types::Json<SendResponse>)> = sqlx::query_as(
        "select request_hash, response_body from idempotency_keys
          where token_id = $1 and idempotency_key = $2 and expires_at > now()",
    )
    .bind(token_id)
    .bind(key.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        None => Ok(Previous::None),
        Some((hash, body)) if hash == key.request_hash => Ok(Previous::Replay(body.0)),
        Some(_) => Err(ApiError::Unprocessable {
            code: "IDEMPOTENCY_KEY_REUSED",
            message: "This Idempotency-Key was already used with a different request body"
                .to_owned(),
        }),
    }
}

/// Records the response for an idempotency key (inside the message's transaction).
pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    key: &IdempotencyKey,
    token_id: i64,
    message_id: Uuid,
    response: &SendResponse,
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
    .bind(sqlx::types::Json(response))
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
