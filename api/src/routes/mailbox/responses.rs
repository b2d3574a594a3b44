//! What the mailbox routes answer. Each type is serialized as the answer and is the schema the
//! document shows for it; the per-message types come from `imap`, which builds them.

use serde::Serialize;
use utoipa::ToSchema;

use crate::imap::folders::FolderInfo;
use crate::imap::message::MessageDetail;
use crate::imap::search::SearchHit;
use crate::imap::summary::MessageSummary;

#[derive(Serialize, ToSchema)]
pub struct FolderList {
    pub success: bool,
    #[schema(example = "user@yourdomain.com")]
    pub mailbox: String,
    pub folders: Vec<FolderInfo>,
}

/// A page of a folder, newest first.
#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub success: bool,
    pub mailbox: String,
    pub folder: String,
    /// Messages in the folder, not only this page's.
    pub total: u32,
    /// The page size used (the request's `limit`, capped to 200).
    #[schema(minimum = 1, maximum = 200)]
    pub limit: u32,
    pub offset: u32,
    pub messages: Vec<MessageSummary>,
}

/// `GET /mailbox/{email}/messages/{uid}`: the message, with `success`.
#[derive(Serialize, ToSchema)]
pub struct MessageBody {
    pub success: bool,
    #[serde(flatten)]
    pub message: MessageDetail,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResult {
    pub success: bool,
    /// The search term as given.
    pub query: String,
    pub folder: String,
    /// Matches in the folder, not only this page's.
    pub total: usize,
    pub messages: Vec<SearchHit>,
}

#[derive(Serialize, ToSchema)]
pub struct Flags {
    pub success: bool,
    pub uid: u32,
    pub folder: String,
    /// The message's flags after the change.
    pub flags: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Moved {
    pub success: bool,
    pub uid: u32,
    pub folder: String,
    pub to_folder: String,
    /// The message's UID in `to_folder`, when the server reports it (UIDPLUS).
    #[schema(required = true)]
    pub new_uid: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    pub success: bool,
    pub uid: u32,
    pub folder: String,
    /// True when expunged (deleted from Trash); false when moved to Trash instead.
    pub deleted: bool,
    /// Trash, when the message was moved there.
    #[schema(required = true)]
    pub to_folder: Option<String>,
    #[schema(required = true)]
    pub new_uid: Option<u32>,
}
