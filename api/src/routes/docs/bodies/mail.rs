//! Bodies of `/mail` and `/mailbox` (sending, status, events, IMAP reads and changes).

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Object, Timestamp};

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
