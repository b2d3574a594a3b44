//! Mailboxes over IMAP: the API reads and changes mail in Dovecot, logged in as each mailbox's
//! user through the Dovecot master user, over a bounded pool of sessions.
//!
//! Layout: [`pool`] lends [`session`]s (one login each, every command under a timeout);
//! [`args`] turns client input into safe IMAP arguments ([`mutf7`] for folder names);
//! [`folders`] (LIST-STATUS over [`raw`]), [`listing`] (a page of [`summary`] lines),
//! [`message`] (a parsed message and its attachments), [`search`] and [`actions`] (flags, move,
//! delete) are the operations; [`disposition`] names downloads; [`error`] maps failures to the
//! API's codes.

pub mod actions;
pub mod args;
pub mod disposition;
pub mod error;
pub mod folders;
pub mod listing;
pub mod message;
pub mod mutf7;
pub mod pool;
pub mod raw;
pub mod search;
pub mod session;
pub mod summary;

pub use args::{FolderName, SearchTerm};
pub use error::ImapError;
pub use pool::{ImapPool, PoolConfig, PooledSession};
