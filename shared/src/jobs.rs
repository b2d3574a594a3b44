//! The Redis stream that wakes workers, and the names of every Redis key we use.
//!
//! Postgres is the system of record; a stream entry only says "look at this message now". It may
//! be lost (the reconciler re-adds messages left pending) or repeated (the claim in Postgres
//! makes a repeat harmless). Key names carry a hash tag (`{...}`) so that every key one command
//! touches lives in one Redis Cluster slot.

/// Consumer group every worker joins.
pub const CONSUMER_GROUP: &str = "senders";
/// Field of a stream entry holding the message's UUID.
pub const FIELD_MESSAGE_ID: &str = "message_id";
/// Field holding the W3C `traceparent` of the request that accepted the message, if any.
pub const FIELD_TRACEPARENT: &str = "traceparent";
/// Approximate cap on the stream's length. Entries are acknowledged quickly, and a trimmed
/// entry is recovered by the reconciler, so the cap only bounds memory.
pub const STREAM_MAX_LEN: usize = 1_000_000;

/// All Redis key names for one deployment (one `MAILAPI_KEY_PREFIX`).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The send stream: `<prefix>:{send}`.
    pub fn send_stream(&self) -> String {
        format!("{}:{{send}}", self.prefix)
    }

    /// Sliding-window rate-limit logs of one token; both windows share the token's slot.
    pub fn rate_limit(&self, token_id: i64) -> (String, String) {
        (
            format!("{}:rl:{{{token_id}}}:minute", self.prefix),
            format!("{}:rl:{{{token_id}}}:hour", self.prefix),
        )
    }

    /// Sliding-window logs of signup attempts for one domain name and one client IP. Both carry
    /// the `{signup}` hash tag so one script can check and record them together; signups are
    /// rare enough that sharing one Cluster slot costs nothing.
    pub fn signup_limits(&self, domain: &str, client_ip: &str) -> (String, String) {
        (
            format!("{}:{{signup}}:domain:{domain}", self.prefix),
            format!("{}:{{signup}}:ip:{client_ip}", self.prefix),
        )
    }

    /// Channel on which token revocations are announced to every API process.
    pub fn revocations_channel(&self) -> String {
        format!("{}:{{tokens}}:revoked", self.prefix)
    }
}

/// What a stream entry carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendJob {
    pub message_id: uuid::Uuid,
    pub traceparent: Option<String>,
}

impl SendJob {
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![(FIELD_MESSAGE_ID, self.message_id.to_string())];
        if let Some(tp) = &self.traceparent {
            f.push((FIELD_TRACEPARENT, tp.clone()));
        }
        f
    }
}
