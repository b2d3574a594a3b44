//! Redis for tests: the machine's (`deploy/infra-up.sh`), and throwaway topologies on loopback
//! for the Sentinel, Cluster and outage tests: `redis-server` processes in a temporary
//! directory, on ports the OS hands out, stopped (by pid) when the value is dropped, panicking
//! test included. Nothing here skips: if a server cannot start, the test fails with the
//! server's log.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deadpool_redis::redis;

use crate::env::redis_url;

pub mod cluster;
pub mod sentinel;

/// Fails loudly when the machine's Redis (MAILAPI_REDIS_URL) is not there.
pub async fn require_redis() {
    let client = redis::Client::open(redis_url()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.unwrap_or_else(|e| {
        panic!("cannot reach Redis at MAILAPI_REDIS_URL ({e}); start the stack with `deploy/infra-up.sh`")
    });
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .expect("redis ping");
}

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

    /// Sends `signal` (`STOP`, `CONT`) to the server on `port`. A stopped server keeps its
    /// connections open and answers nothing: to a client, the worst kind of unreachable.
    pub fn signal(&self, port: u16, signal: &str) {
        let (_, child) = self
            .children
            .iter()
            .find(|(p, _)| *p == port)
            .expect("a server on that port");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} of the Redis on {port}");
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
