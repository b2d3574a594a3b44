//! What every worker task shares: settings, handles to Postgres and Redis, and the tracer.

use std::sync::Arc;

use anyhow::Context as _;
use shared::config::Settings;
use shared::jobs::Keys;
use shared::redis::RedisPool;
use sqlx::PgPool;

#[derive(Clone)]
pub struct WorkerContext {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub settings: Settings,
    pub db: PgPool,
    /// Pool for Redis commands (one server, Sentinel or Cluster alike). Blocking reads
    /// (`XREADGROUP ... BLOCK`, one per stream shard) take a connection each, so they never
    /// stall other commands.
    pub redis: RedisPool,
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
        // Room for a blocking read per shard, an acknowledgement per job in flight, and the
        // reconciler, reclaimer and metrics.
        let max_size = settings.worker.concurrency + usize::from(settings.send_stream_shards) + 8;
        let redis =
            RedisPool::new(&settings.redis_topology()?, max_size).context("MAILAPI_REDIS_URL")?;
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
