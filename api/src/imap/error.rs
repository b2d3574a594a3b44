//! What can go wrong talking to the mailbox server, and how each case reaches the client.

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The folder does not exist (the server said so when we opened it).
    #[error("folder {0:?} does not exist")]
    NoSuchFolder(String),
    /// No message with this UID in the folder.
    #[error("message not found")]
    NoSuchMessage,
    /// No pooled connection became free within the acquire timeout.
    #[error("no IMAP connection available within {0:?}")]
    PoolExhausted(std::time::Duration),
    /// A step did not finish in time; the connection was dropped.
    #[error("IMAP {0} timed out")]
    Timeout(&'static str),
    /// Connecting or logging in failed.
    #[error("IMAP connect/login: {0}")]
    Connect(String),
    /// The server refused a command (tagged NO or BAD); the connection itself is fine.
    #[error("IMAP {what} refused: {detail}")]
    Refused { what: &'static str, detail: String },
    /// The connection broke or the server sent something we cannot read; it was dropped.
    #[error("IMAP {what}: {source}")]
    Protocol {
        what: &'static str,
        #[source]
        source: async_imap::error::Error,
    },
    /// A response that parsed but did not contain what the command promises.
    #[error("IMAP {0}: unexpected response")]
    Unexpected(&'static str),
}

impl From<ImapError> for ApiError {
    fn from(e: ImapError) -> Self {
        match e {
            ImapError::NoSuchFolder(name) => {
                ApiError::InvalidFolder(format!("Folder '{name}' does not exist"))
            }
            ImapError::NoSuchMessage => ApiError::MessageNotFound,
            other => ApiError::ImapError(other.into()),
        }
    }
}
