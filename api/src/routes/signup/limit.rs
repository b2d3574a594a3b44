//! Signup limits: attempts per domain name and per client IP address in a sliding hour, shared
//! by every API process through Redis.
//!
//! The same approach as the per-token limiter ([`crate::ratelimit`]): each key is an exact log
//! of admission times (newest first, never longer than its limit), and one Lua script trims
//! both logs, checks both, and records the attempt in both only when both admit it, so an
//! attempt refused for its IP does not use up the domain's quota or the other way round. Time
//! comes from Redis, so API hosts with skewed clocks agree.
//!
//! An attempt counts whether or not the signup then succeeds: the limit is on trying a domain
//! name (the spec's "3 signups per hour per domain"), so the fourth attempt within an hour is
//! refused even when the earlier ones ended in `DOMAIN_EXISTS`.
//!
//! Unlike the per-token limiter there is no per-process fallback when Redis is unreachable:
//! signup needs no token, so a limit that silently multiplied by the number of processes would
//! be an open door. Signup answers 503 until Redis is back.

use deadpool_redis::redis::{self, Script};

use crate::error::ApiError;
use crate::state::AppState;

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[3])
local limits = { tonumber(ARGV[1]), tonumber(ARGV[2]) }
for i = 1, 2 do
  while true do
    local oldest = redis.call('LINDEX', KEYS[i], -1)
    if oldest and now - tonumber(oldest) >= window then
      redis.call('RPOP', KEYS[i])
    else
      break
    end
  end
end
for i = 1, 2 do
  if redis.call('LLEN', KEYS[i]) >= limits[i] then
    local oldest = tonumber(redis.call('LINDEX', KEYS[i], -1))
    return { 0, i, oldest + window - now }
  end
end
for i = 1, 2 do
  redis.call('LPUSH', KEYS[i], now)
  redis.call('LTRIM', KEYS[i], 0, limits[i] - 1)
  redis.call('PEXPIRE', KEYS[i], window)
end
return { 1, 0, 0 }
"#;

const HOUR_MS: u64 = 3_600_000;

/// Records one signup attempt for `domain` from `client_ip`, or refuses it with `RATE_LIMITED`
/// and the seconds until the oldest attempt in the full window expires.
pub async fn admit(state: &AppState, domain: &str, client_ip: &str) -> Result<(), ApiError> {
    let limits = &state.settings.accounts;
    let (domain_key, ip_key) = state.keys.signup_limits(domain, client_ip);
    let mut conn = state.redis.clone();
    let outcome: (i64, i64, i64) = Script::new(SCRIPT)
        .key(&domain_key)
        .key(&ip_key)
        .arg(limits.signups_per_domain_per_hour)
        .arg(limits.signups_per_ip_per_hour)
        .arg(HOUR_MS)
        .invoke_async(&mut conn)
        .await
        .map_err(|e: redis::RedisError| ApiError::Unavailable(e.into()))?;
    match outcome {
        (1, _, _) => Ok(()),
        (_, which, retry_ms) => Err(ApiError::RateLimited {
            retry_after_secs: (retry_ms.max(0) as u64).div_ceil(1000).max(1),
            limit: if which == 2 {
                limits.signups_per_ip_per_hour
            } else {
                limits.signups_per_domain_per_hour
            },
            window: if which == 2 {
                "hour from this address (signups)"
            } else {
                "hour for this domain (signups)"
            },
        }),
    }
}
