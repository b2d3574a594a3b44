//! The processes under test: two API processes, two workers (one with its clock ahead) and
//! the checker's own Redis, each started as the binaries of this build.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use testkit::{Proc, worker_command};

use crate::WORKER_BIN;

/// The API binary, built beside the worker's by a workspace build.
fn api_binary() -> PathBuf {
    let worker = PathBuf::from(WORKER_BIN);
    let api = worker.with_file_name("mailapi-api");
    assert!(
        api.exists(),
        "{} is missing: run the checker from a workspace build (cargo nextest run --workspace)",
        api.display()
    );
    api
}

pub(super) struct Stack {
    /// Through the Postgres proxy: what the processes under test use.
    pub(super) db_url: String,
    pub(super) skew_secs: u64,
    pub(super) prefix: String,
    pub(super) redis_port: u16,
    pub(super) api_ports: [u16; 2],
    pub(super) smtp_port: u16,
    pub(super) imap_port: u16,
    /// Each process's stderr goes to a file here; the verdict fails on any panic in them.
    pub(super) logs: PathBuf,
}

impl Stack {
    fn common(&self, cmd: &mut Command) {
        cmd.env("MAILAPI_DATABASE_URL", &self.db_url)
            .env(
                "MAILAPI_REDIS_URL",
                format!("redis://127.0.0.1:{}", self.redis_port),
            )
            .env("MAILAPI_KEY_PREFIX", &self.prefix)
            .env("MAILAPI_RATE_LIMIT_PER_MINUTE", "100000000")
            .env("MAILAPI_RATE_LIMIT_PER_HOUR", "100000000")
            .env("MAILAPI_AUTH_FAILURES_PER_IP", "100000000")
            .env("MAILAPI_SMTP_HOST", "127.0.0.1")
            .env("MAILAPI_SMTP_PORT", self.smtp_port.to_string())
            .env("MAILAPI_IMAP_HOST", "127.0.0.1")
            .env("MAILAPI_IMAP_PORT", self.imap_port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
    }

    /// `name`'s stderr, appended to its file (a restarted process adds to the same one).
    fn stderr(&self, name: &str) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{name}.log")))
            .expect("checker log file")
            .into()
    }

    pub(super) fn redis(&self) -> Proc {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (deploy/infra-up.sh installs it)");
        // Up once it answers.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.redis_port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Proc(child)
    }

    pub(super) fn api(&self, n: usize) -> Proc {
        let mut cmd = Command::new(api_binary());
        self.common(&mut cmd);
        cmd.env("MAILAPI_LISTEN", format!("127.0.0.1:{}", self.api_ports[n]))
            .stderr(self.stderr(&format!("api-{n}")));
        Proc(cmd.spawn().expect("start mailapi-api"))
    }

    pub(super) fn worker(&self, n: usize, generation: usize, fault: Option<String>) -> Proc {
        let name = format!("checker-{n}-{generation}");
        let mut cmd = worker_command(Path::new(WORKER_BIN), &name, 10);
        self.common(&mut cmd);
        cmd.stderr(self.stderr(&format!("worker-{n}")));
        cmd.env("MAILAPI_WORKER_METRICS_LISTEN", "off");
        match fault {
            Some(f) => cmd.env("MAILAPI_FAULT_KILL_AT", f),
            None => cmd.env_remove("MAILAPI_FAULT_KILL_AT"),
        };
        if n == 1 && self.skew_secs > 0 {
            skew(&mut cmd, self.skew_secs);
        }
        Proc(cmd.spawn().expect("start mailapi-worker"))
    }
}

/// Debian's libfaketime (package `faketime`), the thread-safe build.
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Runs `cmd` with its wall clock `secs` ahead; the monotonic clock (timers) is left alone.
fn skew(cmd: &mut Command, secs: u64) {
    cmd.env("LD_PRELOAD", FAKETIME_LIB)
        .env("FAKETIME", format!("+{secs}s"))
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("FAKETIME_NO_CACHE", "1");
}

/// Proves the skew takes effect on this machine: `date +%s` under it runs ahead.
pub(super) fn check_skew(secs: u64) {
    assert!(
        Path::new(FAKETIME_LIB).exists(),
        "{FAKETIME_LIB} is missing: apt-get install faketime (deploy/test.sh does)"
    );
    let mut cmd = Command::new("date");
    cmd.arg("+%s");
    skew(&mut cmd, secs);
    let skewed: u64 = String::from_utf8(cmd.output().unwrap().stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        skewed >= now + secs - 5 && skewed <= now + secs + 5,
        "the skewed clock says {skewed}, the real one {now}"
    );
}

pub(super) async fn wait_until_up(port: u16) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the API on port {port} did not come up");
}

/// An admin token made with the API's own CLI, as an operator would.
pub(super) fn admin_token(db_url: &str) -> String {
    let out = Command::new(api_binary())
        .args(["token", "create", "--admin", "--name", "checker"])
        .env("MAILAPI_DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("mailapi-api token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
