//! Whether a sending domain is active, cached per process for `MAILAPI_TOKEN_CACHE_TTL_MS` (the
//! same bound as token revocation): the accept path then costs no query for it, and approving or
//! deactivating a domain takes effect on every API process within that time.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// Bound on cached entries, so a flood of made-up sender domains cannot grow memory.
const MAX_CACHED: usize = 10_000;

pub struct ActiveDomains {
    ttl: Duration,
    entries: RwLock<HashMap<String, (Instant, bool)>>,
}

impl ActiveDomains {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// True when `domain` exists and is active (approved).
    pub async fn is_active(&self, db: &PgPool, domain: &str) -> Result<bool, sqlx::Error> {
        if let Some((at, active)) = self.entries.read().expect("domain cache").get(domain)
            && at.elapsed() < self.ttl
        {
            return Ok(*active);
        }
        let active: Option<bool> =
            sqlx::query_scalar("select active from domains where domain = $1")
                .bind(domain)
                .fetch_optional(db)
                .await?;
        let active = active == Some(true);
        let mut entries = self.entries.write().expect("domain cache");
        if entries.len() >= MAX_CACHED {
            entries.clear();
        }
        entries.insert(domain.to_owned(), (Instant::now(), active));
        Ok(active)
    }

    /// Drops `domain` from this process's cache (the process that changed it).
    pub fn forget(&self, domain: &str) {
        self.entries.write().expect("domain cache").remove(domain);
    }
}
