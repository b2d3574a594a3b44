//! Creating, listing and revoking API tokens (used by the HTTP routes and the CLI).

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::token::TokenSecret;
use sqlx::PgPool;

use crate::auth::TokenType;

/// A token as listed: never the secret, only its display prefix.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: i64,
    /// The secret's first characters, to tell tokens apart.
    #[schema(example = "Bxe2GOed")]
    pub token_prefix: String,
    pub token_type: TokenType,
    /// The mailbox a user token is bound to; `null` for an admin token.
    #[schema(required = true, format = Email)]
    pub email: Option<String>,
    pub name: String,
    pub is_active: bool,
    #[serde(with = "crate::time")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::option")]
    #[schema(required = true)]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::option")]
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateTokenError {
    #[error("mailbox {0} does not exist")]
    UnknownMailbox(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

macro_rules! select_info {
    () => {
        "select t.id, t.token_prefix, t.token_type, m.email, t.name, t.is_active, t.created_at,
        t.last_used_at, t.expires_at
   from api_tokens t left join mailboxes m on m.id = t.mailbox_id"
    };
}

/// Mints a token. A user token is bound to the mailbox `email`, which must exist.
pub async fn create_token(
    db: &PgPool,
    token_type: TokenType,
    email: Option<&str>,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(TokenSecret, TokenInfo), CreateTokenError> {
    let mailbox_id: Option<i64> = match (token_type, email) {
        (TokenType::User, Some(email)) => Some(
            sqlx::query_scalar("select id from mailboxes where email = $1")
                .bind(email)
                .fetch_optional(db)
                .await?
                .ok_or_else(|| CreateTokenError::UnknownMailbox(email.to_owned()))?,
        ),
        (TokenType::User, None) => return Err(CreateTokenError::UnknownMailbox(String::new())),
        (TokenType::Admin, _) => None,
    };
    let secret = TokenSecret::generate();
    let id: i64 = sqlx::query_scalar(
        "insert into api_tokens (token_hash, token_prefix, token_type, mailbox_id, name, expires_at)
         values ($1, $2, $3, $4, $5, $6) returning id",
    )
    .bind(&secret.hash()[..])
    .bind(secret.prefix())
    .bind(token_type.as_str())
    .bind(mailbox_id)
    .bind(name)
    .bind(expires_at)
    .fetch_one(db)
    .await?;
    let info = get_token(db, id).await?.ok_or(sqlx::Error::RowNotFound)?;
    Ok((secret, info))
}

pub async fn get_token(db: &PgPool, id: i64) -> Result<Option<TokenInfo>, sqlx::Error> {
    sqlx::query_as(concat!(select_info!(), " where t.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn list_tokens(
    db: &PgPool,
    limit: i64,
    offset: i64,
) -> Result<(i64, Vec<TokenInfo>), sqlx::Error> {
    let total: i64 = sqlx::query_scalar("select count(*) from api_tokens")
        .fetch_one(db)
        .await?;
    let rows = sqlx::query_as(concat!(select_info!(), " order by t.id limit $1 offset $2"))
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await?;
    Ok((total, rows))
}

/// Deactivates a token. Returns false when it did not exist.
pub async fn revoke_token(db: &PgPool, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update api_tokens set is_active = false, revoked_at = coalesce(revoked_at, now()), updated_at = now()
          where id = $1",
    )
    .bind(id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
