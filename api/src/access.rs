//! Every permission decision goes through this module. A token sees what its type, its bound
//! mailbox and its mailbox's per-domain grants allow, and nothing else.

use shared::address::{DomainName, EmailAddress};
use sqlx::PgPool;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};

/// The spec's permission table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Create, update, delete users in the domain.
    ManageUsers,
    /// View DNS config, verify records.
    ManageDomains,
    /// Read emails of any user in the domain.
    ViewMailbox,
    /// View delivery statistics.
    ViewStats,
    /// Send email as any user in the domain.
    SendMail,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::ManageUsers,
        Permission::ManageDomains,
        Permission::ViewMailbox,
        Permission::ViewStats,
        Permission::SendMail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ManageUsers => "manage_users",
            Permission::ManageDomains => "manage_domains",
            Permission::ViewMailbox => "view_mailbox",
            Permission::ViewStats => "view_stats",
            Permission::SendMail => "send_mail",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// True when the token is an admin, or its mailbox holds `permission` on `domain`.
pub async fn has_permission(
    db: &PgPool,
    p: &Principal,
    permission: Permission,
    domain: &str,
) -> ApiResult<bool> {
    if p.is_admin() {
        return Ok(true);
    }
    let Some(mailbox) = &p.mailbox else {
        return Ok(false);
    };
    let granted: bool = sqlx::query_scalar(
        "select exists (
            select 1 from permissions g join domains d on d.id = g.domain_id
             where g.mailbox_id = $1 and d.domain = $2 and g.permission = $3)",
    )
    .bind(mailbox.id)
    .bind(domain)
    .bind(permission.as_str())
    .fetch_one(db)
    .await?;
    Ok(granted)
}

/// `ACCESS_DENIED` unless the token is an admin or holds `permission` on `domain`.
pub async fn require_permission(
    db: &PgPool,
    p: &Principal,
    permission: Permission,
    domain: &str,
) -> ApiResult<()> {
    if has_permission(db, p, permission, domain).await? {
        Ok(())
    } else {
        Err(ApiError::AccessDenied(
            "Token doesn't have access to resource",
        ))
    }
}

/// `ACCESS_DENIED` unless the token is an admin.
pub fn require_admin(p: &Principal) -> ApiResult<()> {
    if p.is_admin() {
        Ok(())
    } else {
        Err(ApiError::AccessDenied("Admin token required"))
    }
}

/// Reading a mailbox: its own user token, `view_mailbox` on its domain, or admin.
pub async fn require_mailbox_access(db: &PgPool, p: &Principal, email: &str) -> ApiResult<()> {
    if p.email() == Some(email) {
        return Ok(());
    }
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    require_permission(db, p, Permission::ViewMailbox, domain).await
}

/// Sending as `from`: its own mailbox, `send_mail` on its domain, or admin.
pub async fn may_send_as(db: &PgPool, p: &Principal, from: &str) -> ApiResult<bool> {
    if p.is_admin() || p.email() == Some(from) {
        return Ok(true);
    }
    let domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    has_permission(db, p, Permission::SendMail, domain).await
}

/// Seeing a sent message (status, events): admin; or a user token when the message was sent
/// from its own mailbox or with this very token. Anything else is `MESSAGE_NOT_FOUND`, exactly
/// as for an id that does not exist.
pub async fn require_message_access(
    db: &PgPool,
    p: &Principal,
    message_id: uuid::Uuid,
) -> ApiResult<()> {
    let row: Option<(String, Option<i64>)> =
        sqlx::query_as("select from_email, token_id from messages where id = $1")
            .bind(message_id)
            .fetch_optional(db)
            .await?;
    match row {
        Some(_) if p.is_admin() => Ok(()),
        Some((from, token_id))
            if p.email() == Some(from.as_str()) || token_id == Some(p.token_id) =>
        {
            Ok(())
        }
        _ => Err(ApiError::MessageNotFound),
    }
}

/// Which sent messages a token sees in lists (`GET /mail/sent`, the event feed), by the same
/// rule as [`require_message_access`]: `(None, _)` for admins (everything); otherwise the
/// mailbox whose messages it sees and its own id (the messages it sent).
pub fn message_scope(p: &Principal) -> (Option<String>, i64) {
    if p.is_admin() {
        (None, p.token_id)
    } else {
        (Some(p.email().unwrap_or_default().to_owned()), p.token_id)
    }
}

/// A hosted domain a caller was allowed to act on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DomainRef {
    pub id: i64,
    pub domain: String,
    pub active: bool,
}

/// Acting on one domain (its users, its DNS): admin, or `permission` on it. The permission is
/// checked before the domain is looked up, so a caller without it gets `ACCESS_DENIED` whether
/// or not the domain exists; only those allowed learn that it does not (`NOT_FOUND`).
pub async fn require_domain(
    db: &PgPool,
    p: &Principal,
    permission: Permission,
    domain: &str,
) -> ApiResult<DomainRef> {
    require_permission(db, p, permission, domain).await?;
    sqlx::query_as("select id, domain, active from domains where domain = $1")
        .bind(domain)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Domain {domain} not found")))
}

/// Seeing a mailbox's permission grants: admin, or that mailbox's own token.
pub fn require_self_or_admin(p: &Principal, email: &str) -> ApiResult<()> {
    if p.is_admin() || p.email() == Some(email) {
        Ok(())
    } else {
        Err(ApiError::AccessDenied(
            "Token doesn't have access to resource",
        ))
    }
}

/// Whose sending a statistics request covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsScope {
    /// All mail on this server.
    All,
    /// Mail sent from any address of a domain.
    Domain(DomainName),
    /// Mail sent from one address.
    Sender(EmailAddress),
}

impl StatsScope {
    /// The rollups' `scope` column: '' for all, else the domain or the address.
    pub fn key(&self) -> &str {
        match self {
            StatsScope::All => "",
            StatsScope::Domain(d) => d.as_str(),
            StatsScope::Sender(e) => e.as_str(),
        }
    }
}

/// Statistics: an admin sees everything (and, asking for nothing, all mail); `view_stats` on a
/// domain sees that domain and its addresses; a user token sees its own address's sending. Asking
/// for nothing, a user token gets its domain when it holds `view_stats` there, else its address.
/// Anything else is `ACCESS_DENIED`.
pub async fn require_stats_scope(
    db: &PgPool,
    p: &Principal,
    requested: Option<StatsScope>,
) -> ApiResult<StatsScope> {
    let denied = || ApiError::AccessDenied("Token doesn't have access to resource");
    let scope = match requested {
        Some(scope) => scope,
        None if p.is_admin() => StatsScope::All,
        None => {
            let mailbox = p.mailbox.as_ref().ok_or_else(denied)?;
            if has_permission(db, p, Permission::ViewStats, &mailbox.domain).await? {
                StatsScope::Domain(DomainName::parse(&mailbox.domain).map_err(|_| denied())?)
            } else {
                StatsScope::Sender(EmailAddress::parse(&mailbox.email).map_err(|_| denied())?)
            }
        }
    };
    match &scope {
        StatsScope::All => require_admin(p)?,
        StatsScope::Domain(d) => {
            require_permission(db, p, Permission::ViewStats, d.as_str()).await?
        }
        StatsScope::Sender(e) if p.email() == Some(e.as_str()) => {}
        StatsScope::Sender(e) => {
            require_permission(db, p, Permission::ViewStats, e.domain()).await?;
        }
    }
    Ok(scope)
}
