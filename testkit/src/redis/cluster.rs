//! A three-master Redis Cluster on loopback.

use std::process::{Command, Stdio};
use std::time::Duration;

use deadpool_redis::redis;

use super::{Servers, node, wait_for};
use crate::net::free_port;

/// A Redis Cluster of three masters (no replicas), slots spread by `redis-cli --cluster create`.
pub struct Cluster {
    pub servers: Servers,
    pub ports: Vec<u16>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let mut servers = Servers::new("cluster");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        for &port in &ports {
            let args = [
                "--cluster-enabled".to_owned(),
                "yes".to_owned(),
                "--cluster-config-file".to_owned(),
                format!("nodes-{port}.conf"),
                "--cluster-port".to_owned(),
                free_port().to_string(),
                "--cluster-node-timeout".to_owned(),
                "5000".to_owned(),
            ];
            servers.start(port, &args).await;
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create (Debian package redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for &port in &ports {
            wait_for(
                &format!("cluster_state:ok on {port}"),
                Duration::from_secs(30),
                || async move {
                    let Ok(mut conn) = node(port).await else {
                        return false;
                    };
                    redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async::<String>(&mut conn)
                        .await
                        .is_ok_and(|info| info.contains("cluster_state:ok"))
                },
            )
            .await;
        }
        Cluster { servers, ports }
    }

    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }
}
