//! A webhook receiver on loopback for tests: `testkit/webhook_receiver.py`, which checks every
//! request with the `standardwebhooks` Python package (an implementation of the standard that
//! is not ours) and writes one JSON line per request it got.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::Proc;

pub struct Receiver {
    pub port: u16,
    pub out: PathBuf,
    _proc: Proc,
    _dir: TempDir,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub webhook_id: String,
    pub verified: bool,
    /// What it answered.
    pub status: u16,
    pub body: serde_json::Value,
    pub received_at: f64,
}

impl Received {
    /// The events the body carries: the object itself, or each of a batch.
    pub fn events(&self) -> Vec<serde_json::Value> {
        match &self.body {
            serde_json::Value::Array(items) => items.clone(),
            serde_json::Value::Null => vec![],
            one => vec![one.clone()],
        }
    }
}

impl Receiver {
    /// Starts a receiver that verifies with any of `secrets` and answers as `mode` says (`ok`,
    /// `fail-first=N`, `always=CODE`, `slow=SECONDS`).
    pub fn start(secrets: &[&str], mode: &str) -> Receiver {
        let dir = TempDir::new();
        let out = dir.0.join("received.jsonl");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("webhook_receiver.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .args(["--port", "0", "--mode", mode])
            .arg("--out")
            .arg(&out);
        for s in secrets {
            cmd.args(["--secret", s]);
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect(
            "python3 runs testkit/webhook_receiver.py (deploy/test.sh installs standardwebhooks)",
        );
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("the receiver says where it listens");
        let port = first
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the receiver did not start: {first:?}"));
        Receiver {
            port,
            out,
            _proc: Proc(child),
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Every request so far, in the order they came.
    pub fn received(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        // Only whole lines: the receiver may be writing the last one.
        let whole = text.rfind('\n').map_or("", |end| &text[..end]);
        whole
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
                Received {
                    webhook_id: v["webhook_id"].as_str().unwrap_or_default().to_owned(),
                    verified: v["verified"].as_bool().unwrap_or(false),
                    status: v["status"].as_u64().unwrap_or(0) as u16,
                    body: v["body"].clone(),
                    received_at: v["received_at"].as_f64().unwrap_or(0.0),
                }
            })
            .collect()
    }

    /// Waits until `done` holds for what was received, or panics after `within`.
    pub async fn wait_for(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver did not get {what} within {within:?}; it got {} requests",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Changes how it answers from now on.
    pub async fn set_mode(&self, mode: &str) {
        let status = reqwest::Client::new()
            .put(format!("http://127.0.0.1:{}/mode", self.port))
            .body(mode.to_owned())
            .send()
            .await
            .expect("the receiver answers PUT /mode")
            .status();
        assert_eq!(status.as_u16(), 204, "PUT /mode {mode}");
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "mailapi-webhooks-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
