//! Whether a sending domain is active, cached per process for `MAILAPI_TOKEN_CACHE_TTL_MS` (the
//! same bound as token revocation): the accept path then costs no query for it, and approving or
//! deactivating a domain takes effect on every API process within that time.

use std::time::Duration;

use shared::cache::TtlCache;
use sqlx::PgPool;

/// Bound on cached entries, so a flood of made-up sender domains cannot grow memory.
const MAX_CACHED: usize = 10_000;

pub struct ActiveDomains {
    entries: TtlCache<String, bool>,
}

impl ActiveDomains {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: TtlCache::new(ttl, MAX_CACHED),
        }
    }

    /// True when `domain` exists and is active (approved).
    pub async fn is_active(&self, db: &PgPool, domain: &str) -> Result<bool, sqlx::Error> {
        if let Some(active) = self.entries.get(domain) {
            return Ok(active);
        }
        let active: Option<bool> =
            sqlx::query_scalar("select active from domains where domain = $1")
                .bind(domain)
                .fetch_optional(db)
                .await?;
        let active = active == Some(true);
        self.entries.insert(domain.to_owned(), active);
        Ok(active)
    }

    /// Drops `domain` from this process's cache (the process that changed it).
    pub fn forget(&self, domain: &str) {
        self.entries.remove(domain);
    }
}
