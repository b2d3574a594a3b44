//! `mailapi-api token ...`: mint and revoke tokens straight against the database, so a fresh
//! install can be used before any token exists.

use anyhow::Context as _;
use chrono::{Duration, Utc};
use clap::Subcommand;
use shared::config::Settings;

use crate::auth::TokenType;
use crate::tokens;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print only the secret (shown once).
    Create {
        /// An admin token (full access). Without it, --email is required.
        #[arg(long)]
        admin: bool,
        /// The mailbox a user token is bound to.
        #[arg(long, conflicts_with = "admin")]
        email: Option<String>,
        /// A name to recognise the token by.
        #[arg(long)]
        name: String,
        /// Days until the token expires (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// Revoke a token by id.
    Revoke { id: i64 },
}

pub async fn run_token_command(settings: &Settings, command: TokenCommand) -> anyhow::Result<()> {
    let db = shared::db::connect_lazy(settings)?;
    shared::db::migrate(&db)
        .await
        .context("applying migrations")?;
    match command {
        TokenCommand::Create {
            admin,
            email,
            name,
            expires_in_days,
        } => {
            let token_type = if admin {
                TokenType::Admin
            } else {
                TokenType::User
            };
            if !admin && email.is_none() {
                anyhow::bail!("a user token needs --email (or pass --admin)");
            }
            let expires_at = expires_in_days.map(|d| Utc::now() + Duration::days(i64::from(d)));
            let (secret, _) =
                tokens::create_token(&db, token_type, email.as_deref(), &name, expires_at).await?;
            println!("{}", secret.expose());
        }
        TokenCommand::Revoke { id } => {
            if !tokens::revoke_token(&db, id).await? {
                anyhow::bail!("no token with id {id}");
            }
            println!("token {id} revoked");
        }
    }
    Ok(())
}
