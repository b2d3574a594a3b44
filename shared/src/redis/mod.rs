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

pub mod pool;
pub mod sentinel;
pub mod topology;

use std::time::Duration;

use deadpool_redis::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use deadpool_redis::redis::cluster::ClusterClientBuilder;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{self, Cmd, Pipeline, RedisFuture, RedisResult, Value};

pub use self::pool::{PooledConnection, RedisPool};
pub use self::sentinel::SentinelConn;
pub use self::topology::Topology;

/// A cloneable handle on which any number of tasks send commands at once. It reconnects by
/// itself: a command that meets a broken connection fails, and a later one uses a new
/// connection (to the new master after a Sentinel failover; to the slot's new owner in a
/// Cluster).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConn),
}

impl RedisConn {
    /// Connects to `topology`; `timeout` bounds both connecting and each response.
    pub async fn connect(topology: &Topology, timeout: Duration) -> RedisResult<RedisConn> {
        match topology {
            Topology::Single { url } => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                Ok(RedisConn::Single(
                    ConnectionManager::new_with_config(client, config).await?,
                ))
            }
            Topology::Cluster { nodes } => {
                let client = ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()?;
                Ok(RedisConn::Cluster(client.get_async_connection().await?))
            }
            Topology::Sentinel {
                sentinels,
                master_name,
                master,
            } => Ok(RedisConn::Sentinel(
                SentinelConn::connect(sentinels, master_name, master, timeout).await?,
            )),
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
            RedisConn::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
            RedisConn::Sentinel(c) => c.get_db(),
        }
    }
}
