//! Shared application state: handles to Postgres and Redis, settings, and per-process caches.

use std::sync::Arc;

use shared::config::Settings;
use shared::jobs::Keys;
use sqlx::PgPool;

use crate::auth::TokenCache;
use crate::ratelimit::RateLimiter;

#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub settings: Settings,
    pub db: PgPool,
    /// One Redis server, a Sentinel-watched master or a Cluster, behind one handle.
    pub redis: shared::redis::RedisConn,
    pub keys: Keys,
    pub tokens: TokenCache,
    pub rate_limiter: RateLimiter,
    /// Failed token checks per client address (token guessing).
    pub auth_failures: crate::auth_failures::AuthFailures,
    /// Which sending domains are active (a short per-process cache).
    pub active_domains: crate::send::domains::ActiveDomains,
    /// Authenticated IMAP sessions for the mailbox endpoints.
    pub imap: crate::imap::ImapPool,
    /// Stores accepted messages (without an idempotency key) many per statement.
    pub accepter: crate::send::accept::Accepter,
    /// The process's one `LISTEN` connection, for requests that wait on a message.
    pub notifications: crate::notify::Notifications,
    /// In-flight count, backlog samples and the shedding decision (`crate::overload`).
    pub overload: crate::overload::Overload,
    /// Request spans and their children; disabled unless `MAILAPI_OTLP_ENDPOINT` is set.
    pub tracer: shared::telemetry::Tracer,
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}
