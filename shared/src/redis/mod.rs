//! Redis behind one interface, whatever its topology: one server, a Sentinel-watched master, or
//! a Cluster (see [`Topology`] for the `MAILAPI_REDIS_URL` forms).
//!
//! Layout: [`topology`] parses the URL; [`RedisConn`] (here) is the shared, multiplexed handle
//! the API clones per request; [`pool`] hands out dedicated connections (the worker takes one
//! per blocking `XREADGROUP`, so a blocked read never holds up another command); [`sentinel`]
//! follows a Sentinel failover: it asks the sentinels again when they announce a new master, or
//! when the master connection breaks or turns read-only.
//!
//! Both handles implement redis-rs's `aio::ConnectionLike`, so `cmd(..).query_async(&mut conn)`
//! and `Script::invoke_async` work on them unchanged. What the topology does not hide: every key
//! one command or script touches must share a hash tag (see [`crate::jobs::Keys`]), or a Cluster
//! refuses it with `CROSSSLOT`.

pub mod breaker;
pub mod pool;
pub mod sentinel;
pub mod topology;

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use deadpool_redis::redis::cluster::ClusterClientBuilder;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{self, Cmd, Pipeline, RedisFuture, RedisResult, Value};

pub use self::breaker::Breaker;
pub use self::pool::{PooledConnection, RedisPool};
pub use self::sentinel::SentinelConn;
pub use self::topology::Topology;

/// A cloneable handle on which any number of tasks send commands at once. It reconnects by
/// itself: a command that meets a broken connection fails, and a later one uses a new
/// connection (to the new master after a Sentinel failover; to the slot's new owner in a
/// Cluster). Every command is bounded by the timeout given to [`RedisConn::connect`], and while
/// Redis cannot be reached commands fail at once (see [`breaker`]).
#[derive(Clone)]
pub struct RedisConn {
    conn: Conn,
    breaker: Arc<Breaker>,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConn),
}

impl RedisConn {
    /// Connects to `topology`; `timeout` bounds connecting and each command.
    pub async fn connect(topology: &Topology, timeout: Duration) -> RedisResult<RedisConn> {
        let conn = match topology {
            Topology::Single { url } => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                Conn::Single(ConnectionManager::new_with_config(client, config).await?)
            }
            Topology::Cluster { nodes } => {
                let client = ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()?;
                Conn::Cluster(client.get_async_connection().await?)
            }
            Topology::Sentinel {
                sentinels,
                master_name,
                master,
            } => Conn::Sentinel(
                SentinelConn::connect(sentinels, master_name, master, timeout).await?,
            ),
        };
        Ok(RedisConn {
            conn,
            breaker: Arc::new(Breaker::new(timeout, breaker::BREAK_FOR)),
        })
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let breaker = self.breaker.clone();
        let admit = breaker.admit();
        let command = match &mut self.conn {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(c) => c.req_packed_command(cmd),
        };
        Box::pin(async move { breaker.run(admit, command).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let breaker = self.breaker.clone();
        let admit = breaker.admit();
        let commands = match &mut self.conn {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        };
        Box::pin(async move { breaker.run(admit, commands).await })
    }

    fn get_db(&self) -> i64 {
        match &self.conn {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(c) => c.get_db(),
        }
    }
}
