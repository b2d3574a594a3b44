//! Postgres `NOTIFY` channels the services share. A notification is a wake-up, never the news
//! itself: whoever receives one reads the row it names, so a lost or repeated notification
//! costs a delay or a query, never a wrong answer.
//!
//! `NOTIFY` is transactional: it is delivered when, and only if, the transaction that sent it
//! commits, so a listener that wakes always finds the change it was told about.

/// Carries a message id (its UUID as text) each time a message leaves `pending`: submitted to
/// the MTA, or failed at submission. The API's `Prefer: wait` answers wait on it.
pub const MESSAGE_STATUS_CHANNEL: &str = "mailapi_message_status";
