//! A master watched by Sentinels. The sentinels are asked for the master's address whenever a
//! connection to it is made, so a failover is followed by reconnecting. Connections are dropped
//! when a sentinel announces `+switch-master` for our master (a watcher stays subscribed to the
//! sentinels), and also when one breaks (Sentinel kills the old master's clients when it demotes
//! it), times out, or answers `READONLY` (it now talks to a replica): the announcement matters
//! because after `SENTINEL FAILOVER` the old master goes on accepting writes for up to ten
//! seconds, until the sentinels demote it, and whatever it took then is lost.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::sentinel::{
    SentinelClient, SentinelNodeConnectionInfo, SentinelServerType,
};
use deadpool_redis::redis::{
    AsyncConnectionConfig, Cmd, ConnectionInfo, ErrorKind, Pipeline, RedisConnectionInfo,
    RedisError, RedisFuture, RedisResult, Value,
};

mod watch;

/// After a failed lookup, commands fail at once for this long instead of each asking the
/// sentinels again (which, with a sentinel down, costs a connect timeout per command).
const LOOKUP_BACKOFF: Duration = Duration::from_millis(250);

/// Finds the current master through the sentinels and connects to it.
pub(crate) struct MasterLookup {
    // redis-rs's client needs `&mut` for a lookup (it caches its sentinel connections).
    client: tokio::sync::Mutex<SentinelClient>,
    config: AsyncConnectionConfig,
    sentinels: Vec<ConnectionInfo>,
    master_name: String,
    /// Counts `+switch-master` announcements: a connection made at an older epoch is to a
    /// master that is no longer the one.
    epoch: Arc<AtomicU64>,
    watching: AtomicBool,
}

impl MasterLookup {
    pub(crate) fn new(
        sentinels: &[ConnectionInfo],
        master_name: &str,
        master: &RedisConnectionInfo,
        config: AsyncConnectionConfig,
    ) -> RedisResult<Self> {
        let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(master.clone());
        let client = SentinelClient::build(
            sentinels.to_vec(),
            master_name.to_owned(),
            Some(node),
            SentinelServerType::Master,
        )?;
        Ok(Self {
            client: tokio::sync::Mutex::new(client),
            config,
            sentinels: sentinels.to_vec(),
            master_name: master_name.to_owned(),
            epoch: Arc::new(AtomicU64::new(0)),
            watching: AtomicBool::new(false),
        })
    }

    /// The current epoch; see [`MasterLookup::connect`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A new connection to the node the sentinels name as master (redis-rs checks that the node
    /// calls itself master before handing it out), with the epoch it belongs to: once
    /// [`MasterLookup::epoch`] differs, the connection must be replaced.
    pub(crate) async fn connect(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if !self.watching.swap(true, Ordering::SeqCst) {
            tokio::spawn(watch::watch_switches(
                self.sentinels.clone(),
                self.master_name.clone(),
                Arc::downgrade(&self.epoch),
            ));
        }
        // Read before asking: an announcement during the lookup makes this connection stale.
        let epoch = self.epoch();
        let mut client = self.client.lock().await;
        let conn = client
            .get_async_connection_with_config(&self.config)
            .await?;
        Ok((epoch, conn))
    }
}

/// Whether a connection that returned `e` must be replaced: the link is broken or timed out, or
/// the node is no longer a writable master.
pub(crate) fn must_reconnect(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

/// A cloneable, multiplexed handle on the current master (the Sentinel counterpart of redis-rs's
/// `ConnectionManager`).
#[derive(Clone)]
pub struct SentinelConn {
    inner: Arc<Inner>,
}

struct Inner {
    lookup: MasterLookup,
    db: i64,
    state: Mutex<State>,
    /// Held while one task reconnects; the others wait for it (at most `timeout`) and then use
    /// its connection, as redis-rs's `ConnectionManager` does for one server.
    reconnecting: tokio::sync::Mutex<()>,
    timeout: Duration,
}

#[derive(Clone)]
struct Current {
    generation: u64,
    epoch: u64,
    conn: MultiplexedConnection,
}

#[derive(Default)]
struct State {
    /// The connection in use, tagged so that a task reporting a failure only drops the
    /// connection it used, not a newer one, and with the lookup epoch it was made at.
    current: Option<Current>,
    generation: u64,
    failed_lookup: Option<(Instant, RedisError)>,
}

impl SentinelConn {
    /// Looks up the master and connects to it; fails if that is impossible now.
    pub async fn connect(
        sentinels: &[ConnectionInfo],
        master_name: &str,
        master: &RedisConnectionInfo,
        timeout: Duration,
    ) -> RedisResult<SentinelConn> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let conn = SentinelConn {
            inner: Arc::new(Inner {
                lookup: MasterLookup::new(sentinels, master_name, master, config)?,
                db: master.db(),
                state: Mutex::new(State::default()),
                reconnecting: tokio::sync::Mutex::new(()),
                timeout,
            }),
        };
        conn.connection().await?;
        Ok(conn)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is only ever replaced whole, so a panic elsewhere cannot leave it torn.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The connection in use, if it is still to the master the sentinels name.
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        let mut state = self.state();
        match &state.current {
            Some(c) if c.epoch == self.inner.lookup.epoch() => Some((c.generation, c.conn.clone())),
            Some(_) => {
                tracing::info!("the sentinels moved the Redis master; reconnecting");
                state.current = None;
                None
            }
            None => None,
        }
    }

    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let reconnecting =
            tokio::time::timeout(self.inner.timeout, self.inner.reconnecting.lock()).await;
        let Ok(_reconnecting) = reconnecting else {
            return Err(RedisError::from((
                ErrorKind::Io,
                "reconnecting to the Redis master",
            )));
        };
        if let Some(current) = self.current() {
            return Ok(current);
        }
        {
            let state = self.state();
            if let Some((at, e)) = &state.failed_lookup
                && at.elapsed() < LOOKUP_BACKOFF
            {
                return Err(e.clone());
            }
        }
        let result = self.inner.lookup.connect().await;
        let mut state = self.state();
        match result {
            Ok((epoch, conn)) => {
                state.generation += 1;
                state.current = Some(Current {
                    generation: state.generation,
                    epoch,
                    conn: conn.clone(),
                });
                state.failed_lookup = None;
                tracing::info!("connected to the Redis master named by the sentinels");
                Ok((state.generation, conn))
            }
            Err(e) => {
                state.failed_lookup = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    fn after<T>(&self, generation: u64, result: &RedisResult<T>) {
        if let Err(e) = result
            && must_reconnect(e)
        {
            let mut state = self.state();
            if state
                .current
                .as_ref()
                .is_some_and(|c| c.generation == generation)
            {
                tracing::warn!(error = %e, "Redis master connection lost; asking the sentinels again");
                state.current = None;
            }
        }
    }
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.connection().await?;
            let result = conn.req_packed_command(cmd).await;
            self.after(generation, &result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.connection().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.after(generation, &result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
}
