//! The worker's one error type. Every fallible step returns it; `anyhow` stays at the edge
//! (`main.rs`), where an error is only printed.
//!
//! What to do about an error is decided here, once, by an exhaustive `match`
//! ([`Error::is_transient`]), never by reading its text: an SMTP refusal is not an error at all
//! but an outcome ([`crate::smtp::SubmitFailure`]), and a message that can never be built is
//! [`Error::Unsendable`], failed at once. Everything else is an outage or a race that the same
//! work, retried later, gets past.

use deadpool_redis::redis::RedisError;
use shared::db::DbFailure;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A statement failed, or Postgres could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A Redis command failed; `op` names it with its key (`XACK mailapi:{send}`).
    #[error("{op}: {source}")]
    Redis {
        op: String,
        #[source]
        source: RedisError,
    },
    /// No Redis connection could be had from the pool.
    #[error("redis pool: {0}")]
    RedisPool(#[from] deadpool_redis::PoolError),
    /// Reading the MTA log, or serving metrics.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The bounce mailbox over IMAP.
    #[error("IMAP {what}: {source}")]
    Imap {
        what: String,
        #[source]
        source: async_imap::error::Error,
    },
    /// Another follower moved the log position: this one has lost its lease.
    #[error("the position of {0} moved under us: another follower holds it")]
    LeaseLost(String),
    /// The stored message can never be sent as it is (its MIME or envelope cannot be built,
    /// its signature cannot be made, or no recipient is left).
    #[error("{0}")]
    Unsendable(String),
    /// A batched write failed for every caller in the batch (its cause, as text: the writer
    /// reports one failure to many callers).
    #[error("batched write: {0}")]
    Batch(String),
    /// Settings that cannot work.
    #[error("configuration: {0}")]
    Config(String),
    /// A task of the worker panicked or was cancelled.
    #[error("task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the same work, tried again later, can succeed. `false` only for what is wrong
    /// with the work itself (retrying repeats the failure) or with the worker's settings.
    pub fn is_transient(&self) -> bool {
        match self {
            // A statement refused for its data is refused again; every other database failure
            // (an outage, a deadlock with the log follower) passes.
            Error::Database(e) => !matches!(shared::db::classify(e), DbFailure::Refused),
            Error::Redis { .. }
            | Error::RedisPool(_)
            | Error::Io { .. }
            | Error::Imap { .. }
            | Error::LeaseLost(_)
            | Error::Batch(_)
            | Error::Task(_) => true,
            Error::Unsendable(_) | Error::Config(_) => false,
        }
    }

    /// Redis answered `NOGROUP`: the send stream's consumer group is gone (Redis lost its data
    /// in a restart without persistence, or a failover), so it must be created again.
    pub fn is_missing_group(&self) -> bool {
        matches!(self, Error::Redis { source, .. } if source.code() == Some("NOGROUP"))
    }

    /// A Redis command's failure, named.
    pub fn redis(op: impl Into<String>) -> impl FnOnce(RedisError) -> Error {
        let op = op.into();
        move |source| Error::Redis { op, source }
    }

    /// An I/O failure, named.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    /// An IMAP failure, named.
    pub fn imap(what: impl Into<String>) -> impl FnOnce(async_imap::error::Error) -> Error {
        let what = what.into();
        move |source| Error::Imap { what, source }
    }

    /// The failure of a batched write, as its writer reported it.
    pub fn batch(e: anyhow::Error) -> Error {
        Error::Batch(format!("{e:#}"))
    }
}

impl From<RedisError> for Error {
    fn from(source: RedisError) -> Self {
        Error::Redis {
            op: "redis".to_owned(),
            source,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(source: std::io::Error) -> Self {
        Error::Io {
            what: "I/O".to_owned(),
            source,
        }
    }
}

impl From<async_imap::error::Error> for Error {
    fn from(source: async_imap::error::Error) -> Self {
        Error::Imap {
            what: "command".to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deadpool_redis::redis::{ErrorKind, make_extension_error};

    #[test]
    fn a_missing_group_is_known_by_its_code_not_its_text() {
        // What Redis answers XREADGROUP once the group is gone.
        let nogroup = make_extension_error(
            "NOGROUP".to_owned(),
            Some("No such key 'x' or consumer group 'workers'".to_owned()),
        );
        let e = Error::redis("XREADGROUP x")(nogroup);
        assert!(e.is_missing_group());
        assert!(e.is_transient());
        let other = RedisError::from((ErrorKind::Client, "NOGROUP in the text only"));
        assert!(!Error::redis("XREADGROUP x")(other).is_missing_group());
    }

    #[test]
    fn only_the_work_itself_or_the_settings_are_permanent() {
        assert!(!Error::Unsendable("no recipient left".into()).is_transient());
        assert!(!Error::Config("no password".into()).is_transient());
        assert!(Error::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(Error::LeaseLost("postfix.log".into()).is_transient());
    }
}
