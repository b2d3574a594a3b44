//! Throwaway Redis topologies on loopback for the Sentinel and Cluster tests: `redis-server`
//! processes in a temporary directory, on ports the OS hands out, stopped (by pid) when the
//! value is dropped, panicking test included. Nothing here skips: if a server cannot start, the
//! test fails with the server's log.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deadpool_redis::redis;

pub mod flows;

/// The servers of one topology. Dropping it kills them and removes their directory.
pub struct Servers {
    dir: PathBuf,
    children: Vec<(u16, Child)>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on now (the OS picks it; Redis binds it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Servers {
    pub fn new(name: &str) -> Servers {
        let dir =
            std::env::temp_dir().join(format!("mailapi-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir for Redis");
        Servers {
            dir,
            children: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn log(&self, port: u16) -> PathBuf {
        self.dir.join(format!("{port}.log"))
    }

    /// Starts `redis-server` on `port` with `args` (a config file first, if any) and waits
    /// until it answers PING.
    pub async fn start(&mut self, port: u16, args: &[String]) {
        let mut cmd = Command::new("redis-server");
        cmd.args(args)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log(port))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}); install it with `deploy/infra-up.sh` (Debian package redis-server)")
        });
        self.children.push((port, child));
        self.wait_ping(port).await;
    }

    async fn wait_ping(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = node(port).await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            let exited = self
                .children
                .iter_mut()
                .find(|(p, _)| *p == port)
                .and_then(|(_, c)| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "redis-server on port {port} did not come up ({exited:?}); its log:\n{}",
                    std::fs::read_to_string(self.log(port)).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server on `port` (it stays in the list so `Drop` reaps it).
    pub fn kill(&mut self, port: u16) {
        for (p, child) in &mut self.children {
            if *p == port {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A plain connection to one node on loopback.
pub async fn node(port: u16) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_multiplexed_async_connection()
        .await
}

/// Polls `check` every 100 ms until it holds, or panics with `what` after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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
