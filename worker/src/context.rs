//! What every worker task shares: settings, handles to Postgres and Redis, and the tracer.

use std::sync::Arc;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use shared::config::Settings;
use shared::jobs::Keys;
use sqlx::PgPool;

#[derive(Clone)]
pub struct WorkerContext {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub settings: Settings,
    pub db: PgPool,
    /// Pool for Redis commands. Blocking reads (`XREADGROUP ... BLOCK`) take a connection each,
    /// so they never stall commands multiplexed on a shared one.
    pub redis: deadpool_redis::Pool,
    pub keys: Keys,
    /// Submission and delivery spans; disabled unless `MAILAPI_OTLP_ENDPOINT` is set.
    pub tracer: shared::telemetry::Tracer,
}

impl std::ops::Deref for WorkerContext {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl WorkerContext {
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let db = shared::db::connect_lazy(&settings).context("MAILAPI_DATABASE_URL")?;
        let redis = deadpool_redis::Config::from_url(settings.redis_url.expose_secret())
            .builder()
            .context("MAILAPI_REDIS_URL")?
            .max_size(settings.worker.concurrency + 8)
            .runtime(deadpool_redis::Runtime::Tokio1)
            .build()
            .context("MAILAPI_REDIS_URL")?;
        let keys = Keys::new(&settings.key_prefix);
        let tracer = shared::telemetry::Tracer::new(
            &settings.tracing,
            &settings.tracing.worker_service_name,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                db,
                redis,
                keys,
                tracer,
            }),
        })
    }
}
