//! Bodies of tokens, domains, users, permissions, signup and suppressions.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Object, Timestamp};

/// A token as listed; never its secret.
#[derive(Serialize, ToSchema)]
pub struct Token {
    id: i64,
    token_prefix: String,
    /// `admin`, `domain` or `user`.
    token_type: String,
    email: Option<String>,
    name: String,
    is_active: bool,
    created_at: Timestamp,
    last_used_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenMe {
    success: bool,
    id: i64,
    token_prefix: String,
    token_type: String,
    email: Option<String>,
    name: String,
    is_active: bool,
    created_at: Timestamp,
    last_used_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenCreated {
    success: bool,
    /// The secret: shown once, here.
    token: String,
    id: i64,
    token_prefix: String,
    token_type: String,
    email: Option<String>,
    name: String,
    is_active: bool,
    created_at: Timestamp,
    last_used_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    success: bool,
    total: i64,
    tokens: Vec<Token>,
}

#[derive(Serialize, ToSchema)]
pub struct Revoked {
    success: bool,
    message: String,
    id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct PendingDomain {
    domain: String,
    active: bool,
    created: Timestamp,
    creator_email: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PendingList {
    success: bool,
    total: i64,
    domains: Vec<PendingDomain>,
}

#[derive(Serialize, ToSchema)]
pub struct Approved {
    success: bool,
    message: String,
    domain: String,
    active: bool,
}

/// The records the domain should publish (type, name, value, purpose). DKIM has one record per
/// key the worker signs with: RSA, then Ed25519 when the domain has turned it on.
#[derive(Serialize, ToSchema)]
pub struct DnsRecords {
    success: bool,
    domain: String,
    active: bool,
    /// The RSA key's selector (`mail<yyyymm>`), once approved.
    dkim_selector: Option<String>,
    /// The Ed25519 key's selector (`ed<yyyymm>`), while Ed25519 signing is on.
    dkim_ed25519_selector: Option<String>,
    return_path_domain: String,
    records: Vec<Object>,
    message: Option<String>,
}

/// A domain's settings after `PATCH /domains/{domain}`.
#[derive(Serialize, ToSchema)]
pub struct DomainUpdated {
    success: bool,
    domain: String,
    active: bool,
    /// Whether mail from the domain is signed with Ed25519 too (after the RSA signature).
    dkim_ed25519: bool,
    /// The Ed25519 key's selector once it exists (kept while signing with it is off).
    dkim_ed25519_selector: Option<String>,
    message: String,
}

/// Each expected record beside what DNS answers.
#[derive(Serialize, ToSchema)]
pub struct DnsVerified {
    success: bool,
    domain: String,
    all_ok: bool,
    records: Vec<Object>,
}

#[derive(Serialize, ToSchema)]
pub struct User {
    email: String,
    name: Option<String>,
    active: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct UserBody {
    success: bool,
    domain: String,
    user: User,
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    success: bool,
    domain: String,
    total: i64,
    users: Vec<User>,
}

#[derive(Serialize, ToSchema)]
pub struct UserDeleted {
    success: bool,
    message: String,
    email: String,
}

#[derive(Serialize, ToSchema)]
pub struct BulkGranted {
    success: bool,
    message: String,
    granted: Vec<String>,
    skipped: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Grant {
    id: i64,
    domain: String,
    permission: String,
    created_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct GrantList {
    success: bool,
    email: String,
    total: i64,
    permissions: Vec<Grant>,
}

#[derive(Serialize, ToSchema)]
pub struct GrantRevoked {
    success: bool,
    message: String,
    id: i64,
    email: String,
    domain: String,
    permission: String,
}

#[derive(Serialize, ToSchema)]
pub struct Suppression {
    domain: String,
    email: String,
    reason: String,
    source: String,
    dsn_code: Option<String>,
    message_id: Option<Uuid>,
    created_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct SuppressionList {
    success: bool,
    total: i64,
    suppressions: Vec<Suppression>,
}

#[derive(Serialize, ToSchema)]
pub struct Message {
    success: bool,
    message: String,
}

#[derive(Serialize, ToSchema)]
pub struct SignedUp {
    success: bool,
    /// The new user token's secret: shown once, here.
    token: String,
    token_type: String,
    email: String,
    name: Option<String>,
    domain: String,
    domain_status: String,
    expires_at: Timestamp,
    message: String,
}

#[derive(Serialize, ToSchema)]
pub struct SuppressionAdded {
    success: bool,
    domain: String,
    email: String,
    reason: String,
    source: String,
    dsn_code: Option<String>,
    message_id: Option<Uuid>,
    created_at: Timestamp,
}
