//! What every worker task shares: settings, handles to Postgres and Redis, and the tracer.

use std::sync::Arc;

use shared::config::Settings;
use shared::jobs::Keys;
use shared::redis::RedisPool;
use sqlx::PgPool;

use crate::error::{Error, Result};

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
    pub fn new(settings: Settings) -> Result<Self> {
        let db =
            shared::db::connect_lazy(&settings).map_err(|e| config("MAILAPI_DATABASE_URL", e))?;
        // Room for a blocking read per shard, an acknowledgement per job in flight, and the
        // reconciler, reclaimer and metrics.
        let max_size = settings.worker.concurrency + usize::from(settings.send_stream_shards) + 8;
        let topology = settings
            .redis_topology()
            .map_err(|e| config("MAILAPI_REDIS_URL", e))?;
        let redis =
            RedisPool::new(&topology, max_size).map_err(|e| config("MAILAPI_REDIS_URL", e))?;
        let keys = Keys::new(&settings.key_prefix);
        let tracer = shared::telemetry::Tracer::new(
            &settings.tracing,
            &settings.tracing.worker_service_name,
        )
        .map_err(|e| config("MAILAPI_OTLP_ENDPOINT", e))?;
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

/// A setting that cannot work, named by its variable.
fn config(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{what}: {e}"))
}
