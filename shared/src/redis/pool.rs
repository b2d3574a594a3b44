//! A pool of dedicated Redis connections for any topology. A connection taken from it serves
//! one task at a time, which is what a blocking command needs: `XREADGROUP ... BLOCK` holds its
//! connection until it answers, so it must not share one with other commands.
//!
//! Connections are checked when they come back into use: `PING` for one server or a Cluster,
//! `ROLE` for a Sentinel master, so a connection left on a demoted master is dropped and its
//! replacement is made to the master the sentinels name now.

use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster::{ClusterClient, ClusterClientBuilder};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult,
    Role, Value,
};

use super::Topology;
use super::sentinel::MasterLookup;

/// redis-rs's defaults for one connection, kept for every topology: each command (blocking
/// reads included, so keep their `BLOCK` well under this) must answer within the response timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Manager {
    target: Target,
}

enum Target {
    Single(redis::Client, AsyncConnectionConfig),
    Cluster(ClusterClient),
    Sentinel(MasterLookup),
}

/// One pooled connection: to one node; to the master the sentinels named at `epoch`; or a
/// Cluster connection with its own link to every node (so a blocked read on one pooled Cluster
/// connection holds up no other).
pub enum Connection {
    Node(MultiplexedConnection),
    Master {
        conn: MultiplexedConnection,
        epoch: u64,
    },
    Cluster(ClusterConnection),
}

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = RedisError;

    async fn create(&self) -> RedisResult<Connection> {
        Ok(match &self.target {
            Target::Single(client, config) => Connection::Node(
                client
                    .get_multiplexed_async_connection_with_config(config)
                    .await?,
            ),
            Target::Cluster(client) => Connection::Cluster(client.get_async_connection().await?),
            Target::Sentinel(lookup) => {
                let (epoch, conn) = lookup.connect().await?;
                Connection::Master { conn, epoch }
            }
        })
    }

    async fn recycle(&self, conn: &mut Connection, _: &Metrics) -> RecycleResult<RedisError> {
        match &self.target {
            Target::Sentinel(lookup) => {
                if matches!(conn, Connection::Master { epoch, .. } if *epoch != lookup.epoch()) {
                    return Err(RecycleError::message("the sentinels moved the master"));
                }
                match redis::cmd("ROLE").query_async::<Role>(conn).await? {
                    Role::Primary { .. } => Ok(()),
                    _ => Err(RecycleError::message("the node is no longer the master")),
                }
            }
            Target::Single(..) | Target::Cluster(_) => {
                let _: String = redis::cmd("PING").query_async(conn).await?;
                Ok(())
            }
        }
    }
}

/// A pool of connections to one Redis deployment. Cheap to clone; connects lazily.
#[derive(Clone)]
pub struct RedisPool {
    pool: managed::Pool<Manager>,
}

impl RedisPool {
    pub fn new(topology: &Topology, max_size: usize) -> RedisResult<RedisPool> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let target = match topology {
            Topology::Single { url } => Target::Single(redis::Client::open(url.as_str())?, config),
            Topology::Cluster { nodes } => Target::Cluster(
                ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .build()?,
            ),
            Topology::Sentinel {
                sentinels,
                master_name,
                master,
            } => Target::Sentinel(MasterLookup::new(sentinels, master_name, master, config)?),
        };
        let pool = managed::Pool::builder(Manager { target })
            .max_size(max_size)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| {
                RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "Redis connection pool",
                    e.to_string(),
                ))
            })?;
        Ok(RedisPool { pool })
    }

    /// A connection for this task alone until it is dropped.
    pub async fn get(&self) -> Result<PooledConnection, managed::PoolError<RedisError>> {
        Ok(PooledConnection(self.pool.get().await?))
    }
}

/// A connection out of a [`RedisPool`]; back into the pool when dropped.
pub struct PooledConnection(managed::Object<Manager>);

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Node(c) | Connection::Master { conn: c, .. } => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Node(c) | Connection::Master { conn: c, .. } => {
                c.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(c) | Connection::Master { conn: c, .. } => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

impl ConnectionLike for PooledConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}
