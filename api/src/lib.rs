//! The HTTP API: authenticates, validates, stores messages in Postgres, wakes workers through a
//! Redis stream, and serves tokens, status and health.
//!
//! Layout: [`routes`] has one module per resource; [`auth`] resolves tokens (with a short cache)
//! and applies [`ratelimit`]; [`error`] renders every failure in the spec's shape; [`extract`]
//! wraps axum's extractors so their rejections do too; [`tokens`] is token storage shared with the
//! CLI; [`state`] is what handlers share; [`time`] formats timestamps as the spec does; [`imap`] is
//! the pool of Dovecot sessions the mailbox routes read through; [`send`] accepts messages;
//! [`trace`] makes the OpenTelemetry span of each request; [`notify`] is the one `LISTEN`
//! connection that wakes requests waiting on a message; [`client_ip`] names each request's
//! client, through trusted proxies; [`server`] is the accept loop with its slow-client
//! deadlines, and [`overload`] sheds load with 503 `OVERLOADED` (and serves `GET /queue`'s
//! figures).

pub mod access;
pub mod auth;
pub mod auth_failures;
pub mod cli;
pub mod client_ip;
pub mod error;
pub mod extract;
pub mod imap;
pub mod notify;
pub mod overload;
pub mod ratelimit;
pub mod routes;
pub mod send;
pub mod server;
pub mod state;
pub mod time;
pub mod tokens;
pub mod trace;

use std::sync::Arc;

use anyhow::Context as _;
use shared::config::Settings;
use shared::jobs::Keys;
use shared::redis::RedisConn;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenCache;
use crate::ratelimit::RateLimiter;
use crate::state::{AppState, Inner};

/// Connects to Postgres and Redis and builds the shared state.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let db = shared::db::connect_lazy(&settings).context("MAILAPI_DATABASE_URL")?;
    let topology = settings.redis_topology()?;
    // MAILAPI_REDIS_TIMEOUT_MS bounds connecting and each command. No API command blocks, so
    // anything slower means Redis is in trouble: the request then goes on without it (see
    // `ratelimit`, `send::accept`), and later ones do not wait at all for a second.
    let redis = RedisConn::connect(&topology, settings.redis_timeout)
        .await
        .with_context(|| format!("connecting to Redis {topology:?} (MAILAPI_REDIS_URL)"))?;
    let keys = Keys::new(&settings.key_prefix);
    let rate_limiter = RateLimiter::new(
        settings.limits.requests_per_minute,
        settings.limits.requests_per_hour,
        keys.clone(),
        redis.clone(),
    );
    let auth_failures = auth_failures::AuthFailures::new(
        settings.limits.auth_failures_per_ip,
        settings.limits.auth_failure_window,
        keys.clone(),
        redis.clone(),
    );
    let tokens = TokenCache::new(settings.limits.token_cache_ttl);
    let active_domains = send::domains::ActiveDomains::new(settings.limits.token_cache_ttl);
    let imap = imap::ImapPool::new(settings.imap.clone(), imap::PoolConfig::default());
    let tracer =
        shared::telemetry::Tracer::new(&settings.tracing, &settings.tracing.api_service_name)?;
    let accepter = send::accept::Accepter::spawn(
        db.clone(),
        redis.clone(),
        send::enqueue::Stream {
            keys: keys.clone(),
            shards: settings.send_stream_shards,
        },
        tracer.clone(),
        settings.accept_batch_in_flight,
        settings.limits.idempotency_ttl,
    );
    let state_limits = settings.server.clone();
    let notifications = notify::Notifications::new(
        settings.database_url.clone(),
        shared::notify::MESSAGE_STATUS_CHANNEL,
    );
    Ok(AppState {
        inner: Arc::new(Inner {
            notifications,
            settings,
            db,
            redis,
            keys,
            tokens,
            rate_limiter,
            auth_failures,
            active_domains,
            imap,
            accepter,
            overload: overload::Overload::new(state_limits),
            tracer,
        }),
    })
}

/// Serves the API on `listener` until `shutdown` is cancelled, then drains in-flight requests.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state = build_state(settings).await?;
    let tracer = state.tracer.clone();
    let flusher = tokio::spawn(auth::middleware::run_last_used_flusher(
        state.clone(),
        shutdown.clone(),
    ));
    let housekeeping = tokio::spawn({
        let state = state.clone();
        async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                state.rate_limiter.forget_idle();
            }
        }
    });
    // Requests held by `Prefer: wait` answer at once when shutdown starts, so the drain below
    // is not held up by them.
    let notifications = state.notifications.clone();
    let closing = shutdown.clone();
    tokio::spawn(async move {
        closing.cancelled().await;
        notifications.close();
    });
    let sampler = tokio::spawn(overload::middleware::run_sampler(state.clone()));
    let limits = state.settings.server.clone();
    let app = routes::router(state);
    tracing::info!(addr = %listener.local_addr()?, "mailapi-api listening");
    server::serve(listener, app, &limits, shutdown.clone())
        .await
        .context("HTTP server")?;
    sampler.abort();
    housekeeping.abort();
    shutdown.cancel();
    let _ = flusher.await;
    // After the last request: its spans are queued by now.
    tracer.shutdown().await;
    Ok(())
}
