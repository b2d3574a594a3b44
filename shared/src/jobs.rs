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
/// Most keys the send stream may be spread over (`MAILAPI_SEND_STREAM_SHARDS`). Every worker
/// keeps one blocking read per shard, so this also bounds the Redis connections that costs.
pub const MAX_SEND_STREAM_SHARDS: u16 = 64;

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

    /// The send stream unsharded, which is also its shard 0: `<prefix>:{send}`.
    pub fn send_stream(&self) -> String {
        self.send_stream_shard(0)
    }

    /// Shard `shard` of the send stream. Shard 0 is `<prefix>:{send}` whatever the shard count,
    /// so a deployment that starts sharding keeps reading the entries it has; shard `i >= 1` is
    /// `<prefix>:{send:i}`, a hash tag of its own and so a Cluster slot of its own.
    pub fn send_stream_shard(&self, shard: u16) -> String {
        match shard {
            0 => format!("{}:{{send}}", self.prefix),
            i => format!("{}:{{send:{i}}}", self.prefix),
        }
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

    /// How many send-stream entries workers have finished (acknowledged) since the key was made:
    /// a counter that only grows. Each API process reads it every few hundred milliseconds and
    /// turns its growth into the drain rate (`api::overload`); no clocks are compared.
    pub fn drained(&self) -> String {
        format!("{}:{{send}}:drained", self.prefix)
    }

    /// Failed token checks from one client address in the current window (`api::auth_failures`).
    pub fn auth_failures(&self, client_ip: &str) -> String {
        format!("{}:{{authfail}}:ip:{client_ip}", self.prefix)
    }

    /// Channel on which token revocations are announced to every API process.
    pub fn revocations_channel(&self) -> String {
        format!("{}:{{tokens}}:revoked", self.prefix)
    }
}

/// The shard of the send stream a message's entry goes to. The low 64 bits of a UUID (v4 or
/// v7) are random, so messages spread evenly over the shards.
pub fn shard_for(message_id: uuid::Uuid, shards: u16) -> u16 {
    let (_, random) = message_id.as_u64_pair();
    (random % u64::from(shards.max(1))) as u16
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_zero_is_the_unsharded_stream() {
        let keys = Keys::new("p");
        assert_eq!(keys.send_stream(), "p:{send}");
        assert_eq!(keys.send_stream_shard(0), "p:{send}");
        assert_eq!(keys.send_stream_shard(2), "p:{send:2}");
    }

    #[test]
    fn messages_spread_over_every_shard() {
        let mut counts = [0usize; 3];
        for _ in 0..3000 {
            counts[usize::from(shard_for(uuid::Uuid::now_v7(), 3))] += 1;
        }
        assert!(counts.iter().all(|&n| n > 800), "{counts:?}");
        assert_eq!(shard_for(uuid::Uuid::now_v7(), 1), 0);
    }
}
