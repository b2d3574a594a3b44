//! Success bodies of the handlers that build their JSON with `json!`: these structs exist only
//! to describe those shapes in the document (the handlers' output is asserted by the tests, and
//! schemathesis checks every response against these). Timestamps are RFC 3339 strings in UTC.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

type Timestamp = String;

#[derive(Serialize, ToSchema)]
pub struct Health {
    success: bool,
    status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    success: bool,
    /// `ready` or `not_ready`.
    status: String,
    checks: ReadyChecks,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyChecks {
    /// `ok` or `unavailable`.
    postgres: String,
    redis: String,
}

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
pub struct Accepted {
    success: bool,
    message_id: Uuid,
    /// `pending`, or `failed` when every recipient is suppressed.
    status: String,
    queue_id: Option<String>,
    recipient_count: i64,
}

#[derive(Serialize, ToSchema)]
pub struct RecipientStatus {
    email: String,
    /// `to`, `cc` or `bcc`.
    #[serde(rename = "type")]
    kind: String,
    status: String,
    dsn_code: Option<String>,
    smtp_response: Option<String>,
    delivered_at: Option<Timestamp>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageStatus {
    success: bool,
    message_id: Uuid,
    status: String,
    queue_id: Option<String>,
    created_at: Timestamp,
    submitted_at: Option<Timestamp>,
    recipients: Vec<RecipientStatus>,
}

#[derive(Serialize, ToSchema)]
pub struct SentMessage {
    message_id: Uuid,
    from: String,
    to: Vec<String>,
    subject: String,
    status: String,
    created_at: Timestamp,
    submitted_at: Option<Timestamp>,
}

#[derive(Serialize, ToSchema)]
pub struct SentList {
    success: bool,
    total: i64,
    messages: Vec<SentMessage>,
}

#[derive(Serialize, ToSchema)]
pub struct Event {
    id: i64,
    event: String,
    status: Option<String>,
    recipient: Option<String>,
    dsn_code: Option<String>,
    smtp_response: Option<String>,
    source: String,
    evidence: Option<String>,
    occurred_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    success: bool,
    message_id: Uuid,
    total: i64,
    events: Vec<Event>,
}

#[derive(Serialize, ToSchema)]
pub struct Folder {
    name: String,
    messages: u64,
    unread: u64,
    size: u64,
}

#[derive(Serialize, ToSchema)]
pub struct FolderList {
    success: bool,
    mailbox: String,
    folders: Vec<Folder>,
}

/// A message summary (uid, subject, from, date, flags, size...), as listed or found.
#[derive(Serialize, ToSchema)]
pub struct MessageList {
    success: bool,
    mailbox: String,
    folder: String,
    total: u64,
    limit: i64,
    offset: i64,
    messages: Vec<Object>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResult {
    success: bool,
    query: String,
    folder: String,
    total: u64,
    messages: Vec<Object>,
}

/// One message: headers, text and html bodies, attachments' metadata, flags.
#[derive(Serialize, ToSchema)]
pub struct MailboxMessage {
    success: bool,
    uid: u32,
}

#[derive(Serialize, ToSchema)]
pub struct Flags {
    success: bool,
    uid: u32,
    folder: String,
    flags: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Moved {
    success: bool,
    uid: u32,
    folder: String,
    to_folder: String,
    new_uid: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    success: bool,
    uid: u32,
    folder: String,
    /// True when expunged; false when moved to Trash instead.
    deleted: bool,
    to_folder: Option<String>,
    new_uid: Option<u32>,
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

/// The records the domain should publish (type, name, value, purpose).
#[derive(Serialize, ToSchema)]
pub struct DnsRecords {
    success: bool,
    domain: String,
    active: bool,
    dkim_selector: Option<String>,
    return_path_domain: String,
    records: Vec<Object>,
    message: Option<String>,
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

type Object = serde_json::Map<String, serde_json::Value>;

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
