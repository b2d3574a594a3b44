//! Per-token rate limits (100/minute and 1,000/hour by default) that hold across every API
//! process sharing one Redis.
//!
//! Each window is an exact sliding log: a Redis list of the admission times of the requests in
//! the window (newest first), never longer than the limit. One Lua script trims expired entries,
//! checks both windows, and records the request in both only when both admit it, so a request
//! refused by the hourly limit does not use up minute quota. Time comes from Redis (`TIME`), so
//! API hosts with skewed clocks still agree.
//!
//! If Redis cannot be reached, each process falls back to a local limiter (governor) with the
//! same quotas: the limit then holds per process instead of globally, and a warning is logged.

use std::num::NonZeroU32;
use std::sync::Arc;

use deadpool_redis::redis::{self, Script};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;
use shared::jobs::Keys;
use shared::redis::RedisConn;

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limits = { tonumber(ARGV[1]), tonumber(ARGV[2]) }
local windows = { tonumber(ARGV[3]), tonumber(ARGV[4]) }
local counts = {}
for i = 1, 2 do
  local key = KEYS[i]
  while true do
    local oldest = redis.call('LINDEX', key, -1)
    if oldest and now - tonumber(oldest) >= windows[i] then
      redis.call('RPOP', key)
    else
      break
    end
  end
  counts[i] = redis.call('LLEN', key)
end
for i = 1, 2 do
  if counts[i] >= limits[i] then
    local oldest = tonumber(redis.call('LINDEX', KEYS[i], -1))
    return { 0, i, oldest + windows[i] - now, 0, counts[1] }
  end
end
for i = 1, 2 do
  redis.call('LPUSH', KEYS[i], now)
  redis.call('LTRIM', KEYS[i], 0, limits[i] - 1)
  redis.call('PEXPIRE', KEYS[i], windows[i])
end
local minute_oldest = tonumber(redis.call('LINDEX', KEYS[1], -1))
local remaining = math.min(limits[1] - counts[1] - 1, limits[2] - counts[2] - 1)
return { 1, 0, minute_oldest + windows[1] - now, remaining, counts[1] + 1 }
"#;

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;

pub struct RateLimiter {
    script: Script,
    per_minute: u32,
    per_hour: u32,
    keys: Keys,
    redis: RedisConn,
    fallback: Arc<DefaultKeyedRateLimiter<i64>>,
}

/// The outcome for one admitted request, rendered as `RateLimit-*` headers.
pub struct Decision {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

impl Decision {
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("ratelimit-limit", self.limit.to_string()),
            ("ratelimit-remaining", self.remaining.to_string()),
            ("ratelimit-reset", self.reset_secs.to_string()),
        ]
    }
}

impl RateLimiter {
    /// Forgets idle keys in the local fallback limiter (called every minute).
    pub fn forget_idle(&self) {
        self.fallback.retain_recent();
    }

    pub fn new(per_minute: u32, per_hour: u32, keys: Keys, redis: RedisConn) -> Self {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
        Self {
            script: Script::new(SCRIPT),
            per_minute,
            per_hour,
            keys,
            redis,
            fallback: Arc::new(DefaultKeyedRateLimiter::keyed(quota)),
        }
    }

    pub async fn check(&self, token_id: i64) -> Result<Decision, ApiError> {
        let (minute_key, hour_key) = self.keys.rate_limit(token_id);
        let mut conn = self.redis.clone();
        let result: redis::RedisResult<(i64, i64, i64, i64, i64)> = self
            .script
            .key(&minute_key)
            .key(&hour_key)
            .arg(self.per_minute)
            .arg(self.per_hour)
            .arg(MINUTE_MS)
            .arg(HOUR_MS)
            .invoke_async(&mut conn)
            .await;
        match result {
            Ok((1, _, reset_ms, remaining, _)) => Ok(Decision {
                limit: self.per_minute,
                remaining: remaining.max(0) as u32,
                reset_secs: ms_to_secs(reset_ms),
            }),
            Ok((_, window, retry_ms, _, _)) => {
                let (limit, window) = if window == 2 {
                    (self.per_hour, "hour")
                } else {
                    (self.per_minute, "minute")
                };
                metrics::counter!(shared::metrics::RATE_LIMITED, "window" => window).increment(1);
                Err(ApiError::RateLimited {
                    retry_after_secs: ms_to_secs(retry_ms).max(1),
                    limit,
                    window,
                })
            }
            Err(e) => {
                if shared::redis::breaker::cannot_reach(&e) {
                    // Per request: the Redis breaker logs the outage itself, once.
                    tracing::debug!(error = %e, "rate limiter cannot reach Redis; limiting per process");
                } else {
                    tracing::warn!(error = %e, "rate limiter script failed; limiting per process");
                }
                match self.fallback.check_key(&token_id) {
                    Ok(()) => Ok(Decision {
                        limit: self.per_minute,
                        remaining: 0,
                        reset_secs: 60,
                    }),
                    Err(_) => {
                        metrics::counter!(shared::metrics::RATE_LIMITED, "window" => "minute")
                            .increment(1);
                        Err(ApiError::RateLimited {
                            retry_after_secs: 60,
                            limit: self.per_minute,
                            window: "minute",
                        })
                    }
                }
            }
        }
    }
}

fn ms_to_secs(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1000)
}
