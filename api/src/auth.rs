//! Token authentication. Every `/api/v1` route except signup passes through
//! [`middleware::authenticate`]:
//! it resolves `X-MAILAPI-TOKEN` to a [`Principal`], applies the rate limit, and records use.
//!
//! Lookups are cached per process for `token_cache_ttl` (2 s by default), which bounds how long a
//! revoked token keeps working on any API process. `last_used_at` is collected in memory and
//! written in one batch every few seconds instead of once per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use shared::cache::TtlCache;
use shared::token::TokenSecret;
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

pub mod middleware;

pub const TOKEN_HEADER: &str = "x-mailapi-token";

/// `admin` (every endpoint, every mailbox) or `user` (one mailbox and its grants).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    sqlx::Type,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum TokenType {
    Admin,
    User,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Admin => "admin",
            TokenType::User => "user",
        }
    }
}

/// The caller, as established by its token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: i64,
    pub token_type: TokenType,
    /// The bound mailbox of a user token.
    pub mailbox: Option<BoundMailbox>,
    pub name: String,
    pub token_prefix: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct BoundMailbox {
    pub id: i64,
    pub email: String,
    pub domain_id: i64,
    pub domain: String,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.token_type == TokenType::Admin
    }

    pub fn email(&self) -> Option<&str> {
        self.mailbox.as_ref().map(|m| m.email.as_str())
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    token_hash: Vec<u8>,
    token_prefix: String,
    token_type: String,
    name: String,
    is_active: bool,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    mailbox_id: Option<i64>,
    mailbox_email: Option<String>,
    mailbox_active: Option<bool>,
    domain_id: Option<i64>,
    domain: Option<String>,
}

/// Looks a token up by the hash of its secret. `None` when no such token exists.
pub async fn load_principal(
    db: &PgPool,
    hash: &[u8; 32],
) -> Result<Option<Principal>, sqlx::Error> {
    let row: Option<TokenRow> = sqlx::query_as(
        "select t.id, t.token_hash, t.token_prefix, t.token_type, t.name, t.is_active, t.created_at,
                t.expires_at, t.last_used_at, m.id as mailbox_id, m.email as mailbox_email,
                m.active as mailbox_active, d.id as domain_id, d.domain
           from api_tokens t
           left join mailboxes m on m.id = t.mailbox_id
           left join domains d on d.id = m.domain_id
          where t.token_hash = $1",
    )
    .bind(&hash[..])
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    // The index lookup already matched; this constant-time comparison makes the decision itself
    // independent of how many bytes of a guess were right.
    if !bool::from(row.token_hash.as_slice().ct_eq(&hash[..])) {
        return Ok(None);
    }
    let token_type = if row.token_type == "admin" {
        TokenType::Admin
    } else {
        TokenType::User
    };
    let mailbox = match (row.mailbox_id, row.mailbox_email, row.domain_id, row.domain) {
        (Some(id), Some(email), Some(domain_id), Some(domain)) => Some(BoundMailbox {
            id,
            email,
            domain_id,
            domain,
        }),
        _ => None,
    };
    Ok(Some(Principal {
        token_id: row.id,
        token_type,
        mailbox,
        name: row.name,
        token_prefix: row.token_prefix,
        // A user token whose mailbox was deactivated is as good as revoked.
        is_active: row.is_active && row.mailbox_active.unwrap_or(true),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
    }))
}

/// Per-process cache of token lookups (hits and misses) plus pending `last_used_at` writes.
pub struct TokenCache {
    entries: TtlCache<[u8; 32], Option<Arc<Principal>>>,
    last_used: Mutex<HashMap<i64, DateTime<Utc>>>,
}

/// Bound on cached lookups, so a flood of random tokens cannot grow memory without limit.
const MAX_CACHED: usize = 100_000;

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: TtlCache::new(ttl, MAX_CACHED),
            last_used: Mutex::new(HashMap::new()),
        }
    }

    async fn resolve(
        &self,
        db: &PgPool,
        secret: &TokenSecret,
    ) -> Result<Option<Arc<Principal>>, ApiError> {
        let hash = secret.hash();
        if let Some(principal) = self.entries.get(&hash) {
            return Ok(principal);
        }
        let principal = load_principal(db, &hash).await?.map(Arc::new);
        self.entries.insert(hash, principal.clone());
        Ok(principal)
    }

    /// Drops a token from this process's cache at once (the process that revoked it).
    pub fn forget(&self, token_id: i64) {
        self.entries
            .remove_where(|p| p.as_ref().is_some_and(|p| p.token_id == token_id));
    }

    fn touch(&self, token_id: i64, at: DateTime<Utc>) {
        self.last_used
            .lock()
            .expect("last_used poisoned")
            .insert(token_id, at);
    }

    /// The most recent use of a token that may not be written yet.
    pub fn pending_last_used(&self, token_id: i64) -> Option<DateTime<Utc>> {
        self.last_used
            .lock()
            .expect("last_used poisoned")
            .get(&token_id)
            .copied()
    }

    /// Writes collected `last_used_at` values in one statement.
    pub async fn flush_last_used(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        let batch: Vec<(i64, DateTime<Utc>)> = {
            let mut map = self.last_used.lock().expect("last_used poisoned");
            map.drain().collect()
        };
        if batch.is_empty() {
            return Ok(());
        }
        let (ids, times): (Vec<i64>, Vec<DateTime<Utc>>) = batch.into_iter().unzip();
        sqlx::query(
            "update api_tokens t
                set last_used_at = greatest(t.last_used_at, u.used_at)
               from unnest($1::bigint[], $2::timestamptz[]) as u(id, used_at)
              where t.id = u.id",
        )
        .bind(&ids)
        .bind(&times)
        .execute(db)
        .await?;
        Ok(())
    }
}

/// The id (never the secret) of the token that made a request, on its response.
#[derive(Debug, Clone, Copy)]
pub struct TokenId(pub i64);

/// Extractor for handlers: the authenticated caller.
pub struct Auth(pub Arc<Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<Principal>>()
            .cloned()
            .map(Auth)
            .ok_or(ApiError::NoApiToken)
    }
}
