//! A Sentinel set on loopback: one master, one replica, three sentinels.

use std::time::Duration;

use deadpool_redis::redis;

use super::{Servers, node, wait_for};
use crate::net::free_port;

pub const MASTER_NAME: &str = "mailapi-test";

/// One master, one replica and three sentinels (quorum 2) watching them.
pub struct SentinelSet {
    pub servers: Servers,
    pub master: u16,
    pub replica: u16,
    pub sentinels: Vec<u16>,
}

impl SentinelSet {
    pub async fn start() -> SentinelSet {
        let mut servers = Servers::new("sentinel");
        let (master, replica) = (free_port(), free_port());
        servers.start(master, &[]).await;
        servers
            .start(
                replica,
                &[
                    "--replicaof".to_owned(),
                    "127.0.0.1".to_owned(),
                    master.to_string(),
                ],
            )
            .await;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            // Sentinel rewrites its config file, so each gets its own.
            let conf = servers.dir().join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} 2000\n\
                     sentinel failover-timeout {MASTER_NAME} 10000\n"
                ),
            )
            .expect("write sentinel config");
            let args = [conf.display().to_string(), "--sentinel".to_owned()];
            servers.start(port, &args).await;
            sentinels.push(port);
        }
        let set = SentinelSet {
            servers,
            master,
            replica,
            sentinels,
        };
        // A sentinel can only fail over to a replica it has found (through the master's INFO).
        for &port in &set.sentinels {
            wait_for(
                "the sentinels to find the replica",
                Duration::from_secs(30),
                || async move {
                    let Ok(mut conn) = node(port).await else {
                        return false;
                    };
                    redis::cmd("SENTINEL")
                        .arg("REPLICAS")
                        .arg(MASTER_NAME)
                        .query_async::<Vec<std::collections::HashMap<String, String>>>(&mut conn)
                        .await
                        .is_ok_and(|r| {
                            r.iter().any(|r| {
                                r.get("flags").is_some_and(|f| f == "slave")
                                    && r.get("master-link-status").is_some_and(|s| s == "ok")
                            })
                        })
                },
            )
            .await;
        }
        set
    }

    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .sentinels
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+sentinel://{}/{MASTER_NAME}", nodes.join(","))
    }

    /// The master's port as the first sentinel names it now.
    pub async fn current_master(&self) -> Option<u16> {
        let mut conn = node(self.sentinels[0]).await.ok()?;
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER_NAME)
            .query_async(&mut conn)
            .await
            .ok()?;
        Some(port)
    }

    /// `SENTINEL FAILOVER`: promotes the replica while the old master is still running.
    pub async fn failover(&self) {
        let mut conn = node(self.sentinels[0]).await.expect("sentinel reachable");
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER_NAME)
            .query_async(&mut conn)
            .await
            .expect("SENTINEL FAILOVER");
    }
}
