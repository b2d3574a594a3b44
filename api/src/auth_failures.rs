//! Token guessing: failed token checks are counted per client address, across every API process
//! (one Redis key per address), and an address that passes `MAILAPI_AUTH_FAILURES_PER_IP`
//! failures within `MAILAPI_AUTH_FAILURE_WINDOW_SECS` gets `429 RATE_LIMITED` for the rest of
//! that window, on every request that carries a token, valid or not. Without it, nothing but the
//! per-token limit (which an unknown token does not reach) bounds how fast one client may guess.
//!
//! A failure is a token that is malformed or unknown. A missing header is not a guess, and an
//! expired or revoked token was a real one. The window is fixed: it starts at the address's first
//! failure and ends `window` later, whatever happens meanwhile.
//!
//! The process that counts the failure over the limit refuses that address at once from then on
//! without asking Redis (a map of blocked addresses), so a blocked client's guesses are not even
//! looked up. Another API process learns of the block on the address's next failure there: at
//! most one more guess per process is checked. If Redis cannot be reached, each process counts
//! on its own (governor, the same quota spread over the window): approximate, as the per-token
//! limit is then.
//!
//! The comparison itself is not where a guess could learn anything: a token is looked up by the
//! SHA-256 of its secret (`shared::token`), so no byte of a stored secret is ever compared with
//! the guess.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, Script};
use governor::{DefaultKeyedRateLimiter, Quota};
use shared::jobs::Keys;
use shared::redis::RedisConn;

use crate::error::ApiError;

/// Counts one failure and returns the count and the milliseconds left in the window.
const SCRIPT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return { n, ttl }
"#;

/// Bound on remembered blocked addresses, so a flood from many addresses cannot grow memory
/// without limit.
const MAX_BLOCKED: usize = 100_000;

const WINDOW_NAME: &str = "window from this address (failed token checks)";

pub struct AuthFailures {
    limit: u32,
    window: Duration,
    keys: Keys,
    redis: RedisConn,
    script: Script,
    /// Addresses this process refuses until the given time.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// Counts per process while Redis cannot be reached.
    fallback: DefaultKeyedRateLimiter<IpAddr>,
}

impl AuthFailures {
    pub fn new(limit: u32, window: Duration, keys: Keys, redis: RedisConn) -> Self {
        let limit = limit.max(1);
        let burst = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(window / limit)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Self {
            limit,
            window,
            keys,
            redis,
            script: Script::new(SCRIPT),
            blocked: Mutex::new(HashMap::new()),
            fallback: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    fn refused(&self, left: Duration) -> ApiError {
        ApiError::RateLimited {
            retry_after_secs: left.as_secs_f64().ceil().max(1.0) as u64,
            limit: self.limit,
            window: WINDOW_NAME,
        }
    }

    /// `429` at once for an address this process has blocked.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        let mut blocked = self.blocked.lock().expect("blocked addresses poisoned");
        if let Some(until) = blocked.get(&ip).copied() {
            let now = Instant::now();
            if until > now {
                return Err(self.refused(until - now));
            }
            blocked.remove(&ip);
        }
        Ok(())
    }

    fn block(&self, ip: IpAddr, left: Duration) -> ApiError {
        let mut blocked = self.blocked.lock().expect("blocked addresses poisoned");
        if blocked.len() >= MAX_BLOCKED {
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
            if blocked.len() >= MAX_BLOCKED {
                blocked.clear();
            }
        }
        blocked.insert(ip, Instant::now() + left);
        metrics::counter!(shared::metrics::RATE_LIMITED, "window" => "auth_failures").increment(1);
        tracing::warn!(client_ip = %ip, limit = self.limit, "too many failed token checks from one address; refusing it for the rest of the window");
        self.refused(left)
    }

    /// Counts one failed token check from `ip`. Returns what to answer: `error` itself while the
    /// address is within the limit, `429 RATE_LIMITED` once it is over.
    pub async fn failed(&self, ip: IpAddr, error: ApiError) -> ApiError {
        let key = self.keys.auth_failures(&ip.to_string());
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        let mut conn = self.redis.clone();
        let counted: redis::RedisResult<(i64, i64)> = self
            .script
            .key(&key)
            .arg(window_ms)
            .invoke_async(&mut conn)
            .await;
        match counted {
            Ok((n, left_ms)) if n > i64::from(self.limit) => {
                self.block(ip, Duration::from_millis(left_ms.max(1) as u64))
            }
            Ok(_) => error,
            Err(e) => {
                // Per failure, so debug: the Redis breaker logs the outage once.
                tracing::debug!(error = %e, "cannot count failed token checks in Redis; counting per process");
                match self.fallback.check_key(&ip) {
                    Ok(()) => error,
                    Err(_) => self.block(ip, self.window),
                }
            }
        }
    }
}
