//! The checker: load through the real stack (two API processes, two workers, Postfix, the
//! accept-all sink) while faults are injected, then every answer the API gave is compared with
//! what really happened: the sink's files and Postgres.
//!
//! Faults, each verified to have happened (a run where a fault did not fire fails):
//! * a worker SIGKILLed at each step of a send, deliberately: `MAILAPI_FAULT_KILL_AT` arms the
//!   `fault-injection` build (worker/src/fault.rs) to kill itself the n-th time it reaches after
//!   reading, before SMTP, mid-DATA, after the 250 and after the commit; the next step is armed
//!   in the restarted worker;
//! * an API process SIGKILLed under load, mid-request, and restarted;
//! * Redis (the checker's own `redis-server`, never the machine's) SIGKILLed and restarted
//!   empty: the stream and the consumer group are gone, and the reconciler must re-add what got
//!   a 202;
//! * Postgres cut off from every process for a while (a loopback proxy in front of the machine's
//!   Postgres closes their connections and refuses new ones): the API answers 503 with
//!   `Retry-After`, and workers and the log follower resume;
//! * Postfix's submission port closed, then answering `421` (through a second proxy), which also
//!   closes the workers' pooled SMTP connections: retries, then delivery;
//! * one worker's wall clock two minutes ahead (libfaketime) throughout;
//! * (long form only) Postfix's log rotated under load (`postfix logrotate`), and the bounce
//!   mailbox unreachable for 30 s while every 100th message bounces.
//!
//! The client behaves as a careful sender does: every message has an `Idempotency-Key`, and a
//! request that fails (connection reset, 5xx, timeout) is retried on the other API process.
//!
//! Verdict: no process panicked (their stderr is kept in a temporary directory, removed when
//! the run passes); lost = 0 (every 202 is in Postgres and in the sink), stuck = 0 (every message and
//! recipient final), duplicates within the documented window (docs/DELIVERY.md: closed while a
//! log follower runs, so 0 here), all printed.
//!
//! Seen failing against broken builds before being trusted: with the reconciler's re-add
//! removed, the Redis restart lost the stream and 149 messages that had a 202 never settled;
//! and it found a real panic (the duplicate check decoding the follower's `-infinity`), fixed
//! in worker/src/claim.rs, which fails it again when put back.
//!
//! Short form (in the test command, under a minute): `checker_short_form`. Long form, on demand:
//! `cargo nextest run --workspace --features worker/fault-injection --run-ignored only -E
//! 'test(checker_long_form)'`. Both need `deploy/infra-up.sh` and the sourced
//! /etc/mailapi/mailapi.env, and a build with the feature (deploy/test.sh passes it).

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sqlx::PgPool;
use testkit::{env, fresh_database, sink_counts};
use tokio::sync::Mutex;

/// Fault steps, in the order the armed worker goes through them (worker/src/fault.rs names).
const STEPS: [&str; 5] = [
    "after_read",
    "before_smtp",
    "during_data",
    "after_250",
    "after_commit",
];

struct Plan {
    messages: usize,
    per_second: u64,
    /// Rounds through every step, by each armed worker.
    rounds: usize,
    /// Which workers are armed (0, 1 or both).
    armed_workers: usize,
    /// The n-th time a step is reached is the one that kills.
    kill_on: u32,
    /// Seconds into the load at which an API process is killed (and restarted 1 s later).
    api_kills: &'static [u64],
    /// Seconds into the load at which Redis is killed (and restarted empty 2 s later).
    redis_kills: &'static [u64],
    /// (start, seconds): Postgres cut off from every process (the proxy closes their connections
    /// and refuses new ones).
    postgres_cuts: &'static [(u64, u64)],
    /// (start, seconds): Postfix's submission port closed to the workers, pooled connections
    /// included.
    smtp_cuts: &'static [(u64, u64)],
    /// (start, seconds): Postfix answering `421` to every new connection (and pooled ones closed).
    smtp_421: &'static [(u64, u64)],
    /// Seconds into the load at which Postfix rotates its log (`postfix logrotate`: renamed,
    /// reopened): the follower must finish the old file and go on with the new one. Only in the
    /// long form, which runs alone: other tests read the same log.
    log_rotations: &'static [u64],
    /// Every n-th message goes to `sink-hard.test`, which refuses it: Postfix bounces it, and its
    /// report comes back to the bounce mailbox (0: none). Only in the long form: the bounce
    /// mailbox is shared with the other tests.
    bounce_every: usize,
    /// (start, seconds): Dovecot's IMAP cut off from the workers, so the bounce reader cannot
    /// reach the bounce mailbox.
    imap_cuts: &'static [(u64, u64)],
    /// Worker 1's clock runs this many seconds ahead (libfaketime): claims, retries and the
    /// duplicate check must keep working because every deadline is the database's.
    skew_secs: u64,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a [`Proxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    /// Existing connections closed, new ones closed at once.
    Cut,
    /// Existing connections closed, new ones sent this line and closed.
    Reply(&'static str),
}

/// A loopback TCP proxy in front of a machine service the checker must not stop (Postgres,
/// Postfix): the processes under test connect through it, and the checker cuts it.
struct Proxy {
    port: u16,
    mode: Arc<tokio::sync::watch::Sender<Mode>>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(tokio::sync::watch::Sender::new(Mode::Pass));
        let modes = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut rx = modes.subscribe();
                let now = *rx.borrow_and_update();
                tokio::spawn(async move {
                    match now {
                        Mode::Cut => return,
                        Mode::Reply(line) => {
                            let _ = client.write_all(line.as_bytes()).await;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            return;
                        }
                        Mode::Pass => {}
                    }
                    let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut up) => {}
                        _ = rx.wait_for(|m| *m != Mode::Pass) => {}
                    }
                });
            }
        });
        Proxy { port, mode }
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

/// `url` with its `host:port` replaced by 127.0.0.1:`port`.
fn via_port(url: &str, port: u16) -> String {
    let (scheme_user, rest) = url.rsplit_once('@').expect("a URL with user@host");
    let (_, path) = rest.split_once('/').expect("a URL with a database");
    format!("{scheme_user}@127.0.0.1:{port}/{path}")
}

/// The API binary, built beside the worker's by a workspace build.
fn api_binary() -> PathBuf {
    let worker = PathBuf::from(env!("CARGO_BIN_EXE_mailapi-worker"));
    let api = worker.with_file_name("mailapi-api");
    assert!(
        api.exists(),
        "{} is missing: run the checker from a workspace build (cargo nextest run --workspace)",
        api.display()
    );
    api
}

/// A child process, SIGKILLed when dropped so that a failing run leaves none behind.
struct Proc(Child);

impl Proc {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Stack {
    /// Through the Postgres proxy: what the processes under test use.
    db_url: String,
    skew_secs: u64,
    prefix: String,
    redis_port: u16,
    api_ports: [u16; 2],
    smtp_port: u16,
    imap_port: u16,
    /// Each process's stderr goes to a file here; the verdict fails on any panic in them.
    logs: PathBuf,
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

    fn redis(&self) -> Proc {
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

    fn api(&self, n: usize) -> Proc {
        let mut cmd = Command::new(api_binary());
        self.common(&mut cmd);
        cmd.env("MAILAPI_LISTEN", format!("127.0.0.1:{}", self.api_ports[n]))
            .stderr(self.stderr(&format!("api-{n}")));
        Proc(cmd.spawn().expect("start mailapi-api"))
    }

    fn worker(&self, n: usize, generation: usize, fault: Option<String>) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailapi-worker"));
        self.common(&mut cmd);
        cmd.stderr(self.stderr(&format!("worker-{n}")));
        cmd.env("MAILAPI_WORKER_NAME", format!("checker-{n}-{generation}"))
            .env("MAILAPI_WORKER_METRICS_LISTEN", "off")
            .env("MAILAPI_SMTP_TIMEOUT_SECS", "1")
            .env("MAILAPI_RECLAIM_IDLE_SECS", "8")
            .env("MAILAPI_RECONCILE_AFTER_SECS", "2")
            .env("MAILAPI_RETRY_SCHEDULE_SECS", "1,1,1,1,1,1,1,1,1,1");
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
fn check_skew(secs: u64) {
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

async fn wait_until_up(port: u16) {
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

/// What the client knows of one logical message.
#[derive(Debug, Clone)]
enum Answer {
    Accepted(uuid::Uuid),
    /// Every attempt failed: the client cannot know whether it was stored.
    GaveUp(String),
}

/// Where message `i` goes: the sink that refuses, for every `bounce_every`-th one.
fn rcpt_domain(i: usize, bounce_every: usize) -> &'static str {
    if bounce_every > 0 && i.is_multiple_of(bounce_every) {
        "sink-hard.test"
    } else {
        "sink-ok.test"
    }
}

/// 503 answers the client got, and how many of them lacked `Retry-After`.
#[derive(Default)]
struct Unavailable {
    answers: std::sync::atomic::AtomicUsize,
    without_retry_after: std::sync::atomic::AtomicUsize,
}

/// Sends message `i` with its idempotency key, retrying failures on the other API process for
/// up to two minutes (longer than any fault lasts).
async fn send_one(
    http: &reqwest::Client,
    ports: [u16; 2],
    token: &str,
    domain: &str,
    i: usize,
    unavailable: &Unavailable,
    bounce_every: usize,
) -> Answer {
    let body = serde_json::json!({
        "from": format!("s@{domain}"),
        "to": [format!("r{i}@{}", rcpt_domain(i, bounce_every))],
        "subject": format!("checker {i}"),
        "body": {"text": "x".repeat(500)},
    });
    let mut last = String::new();
    let give_up = Instant::now() + Duration::from_secs(120);
    for attempt in 0.. {
        if Instant::now() > give_up {
            break;
        }
        let port = ports[(i + attempt) % 2];
        let resp = http
            .post(format!("http://127.0.0.1:{port}/api/v1/mail/send"))
            .header("X-MAILAPI-TOKEN", token)
            .header("Idempotency-Key", format!("checker-{i}"))
            .json(&body)
            .send()
            .await;
        match resp {
            Ok(r) if r.status() == 202 => {
                let v: serde_json::Value = r.json().await.unwrap();
                let id = v["message_id"].as_str().unwrap().parse().unwrap();
                return Answer::Accepted(id);
            }
            Ok(r) if r.status().is_client_error() => {
                panic!(
                    "message {i}: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )
            }
            Ok(r) => {
                if r.status() == 503 {
                    use std::sync::atomic::Ordering::Relaxed;
                    unavailable.answers.fetch_add(1, Relaxed);
                    if !r.headers().contains_key("retry-after") {
                        unavailable.without_retry_after.fetch_add(1, Relaxed);
                    }
                }
                last = format!("{}", r.status());
            }
            Err(e) => last = format!("{e}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Answer::GaveUp(last)
}

async fn scalar(db: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(db)
        .await
        .unwrap()
}

async fn run(plan: Plan) {
    if !cfg!(feature = "fault-injection") {
        panic!(
            "the checker needs the fault hooks: --features worker/fault-injection (deploy/test.sh passes it)"
        );
    }
    shared::install_crypto_provider();
    if plan.skew_secs > 0 {
        check_skew(plan.skew_secs);
    }
    let sink_dir = PathBuf::from(env("MAILAPI_SINK_DIR"));
    let since = SystemTime::now() - Duration::from_secs(1);
    let (db_url, db) = fresh_database().await;
    let pg_proxy = Arc::new(Proxy::start(5432).await);
    let smtp_upstream: u16 = env("MAILAPI_SMTP_PORT").parse().unwrap();
    let smtp_proxy = Arc::new(Proxy::start(smtp_upstream).await);
    let imap_proxy = Arc::new(Proxy::start(143).await);
    let stack = Arc::new(Stack {
        db_url: via_port(&db_url, pg_proxy.port),
        skew_secs: plan.skew_secs,
        smtp_port: smtp_proxy.port,
        imap_port: imap_proxy.port,
        logs: {
            let dir =
                std::env::temp_dir().join(format!("checker-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        },
        prefix: format!("checker-{}", uuid::Uuid::new_v4().simple()),
        redis_port: free_port(),
        api_ports: [free_port(), free_port()],
    });
    let domain = format!(
        "chk-{}.test",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    sqlx::query("insert into domains (domain, active) values ($1, true)")
        .bind(&domain)
        .execute(&db)
        .await
        .unwrap();
    let token = admin_token(&db_url);
    eprintln!("checker: process logs in {}", stack.logs.display());

    let redis = Arc::new(Mutex::new(stack.redis()));
    let apis = Arc::new(Mutex::new([stack.api(0), stack.api(1)]));
    for port in stack.api_ports {
        wait_until_up(port).await;
    }

    // Workers: the armed ones go through every step, `rounds` times, restarted after each kill.
    let kills = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut worker_tasks = Vec::new();
    let stop_workers = tokio_util::sync::CancellationToken::new();
    for n in 0..2 {
        let stack = stack.clone();
        let kills = kills.clone();
        let stop = stop_workers.clone();
        let armed = n < plan.armed_workers;
        let (rounds, kill_on) = (plan.rounds, plan.kill_on);
        worker_tasks.push(tokio::spawn(async move {
            let mut generation = 0;
            let faults: Vec<String> = if armed {
                (0..rounds)
                    .flat_map(|_| STEPS.iter().map(|s| format!("{s}:{kill_on}")))
                    .collect()
            } else {
                vec![]
            };
            for fault in faults {
                let mut w = stack.worker(n, generation, Some(fault.clone()));
                generation += 1;
                // Dies by its own hand at the armed step, or is stopped at the end of the load.
                let mut up_since = Instant::now();
                loop {
                    if let Some(status) = w.0.try_wait().unwrap() {
                        if status.signal() == Some(9) {
                            kills.lock().unwrap().push(format!("worker {n} at {fault}"));
                            break;
                        }
                        // A worker that cannot start (Postgres cut off: it migrates first) exits;
                        // a supervisor starts it again, as systemd or Kubernetes would.
                        assert!(
                            up_since.elapsed() < Duration::from_secs(30),
                            "worker {n} ({fault}) ended after running: {status}"
                        );
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        w = stack.worker(n, generation, Some(fault.clone()));
                        generation += 1;
                        up_since = Instant::now();
                        continue;
                    }
                    if stop.is_cancelled() {
                        return w;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            let w = stack.worker(n, generation, None);
            stop.cancelled().await;
            w
        }));
    }

    // Process faults on a timeline.
    let started = Instant::now();
    let mut timeline: Vec<(u64, &str, u64)> = plan
        .api_kills
        .iter()
        .map(|&t| (t, "api", 1))
        .chain(plan.redis_kills.iter().map(|&t| (t, "redis", 2)))
        .chain(plan.postgres_cuts.iter().map(|&(t, d)| (t, "postgres", d)))
        .chain(plan.smtp_cuts.iter().map(|&(t, d)| (t, "smtp", d)))
        .chain(plan.smtp_421.iter().map(|&(t, d)| (t, "421", d)))
        .chain(plan.log_rotations.iter().map(|&t| (t, "logrotate", 0)))
        .chain(plan.imap_cuts.iter().map(|&(t, d)| (t, "imap", d)))
        .collect();
    timeline.sort();
    let faults = {
        let stack = stack.clone();
        let (apis, redis, kills) = (apis.clone(), redis.clone(), kills.clone());
        let (pg_proxy, smtp_proxy, imap_proxy) =
            (pg_proxy.clone(), smtp_proxy.clone(), imap_proxy.clone());
        tokio::spawn(async move {
            let mut restores = tokio::task::JoinSet::new();
            for (at, what, secs) in timeline {
                tokio::time::sleep_until((started + Duration::from_secs(at)).into()).await;
                let (proxy, mode) = match what {
                    "postgres" => (Some(pg_proxy.clone()), Mode::Cut),
                    "smtp" => (Some(smtp_proxy.clone()), Mode::Cut),
                    "imap" => (Some(imap_proxy.clone()), Mode::Cut),
                    "421" => (
                        Some(smtp_proxy.clone()),
                        Mode::Reply("421 4.3.2 checker: service not available\r\n"),
                    ),
                    _ => (None, Mode::Pass),
                };
                if let Some(proxy) = proxy {
                    proxy.set(mode);
                    kills
                        .lock()
                        .unwrap()
                        .push(format!("{what} cut at {at} s for {secs} s"));
                    restores.spawn(async move {
                        tokio::time::sleep(Duration::from_secs(secs)).await;
                        proxy.set(Mode::Pass);
                    });
                    continue;
                }
                match what {
                    "logrotate" => {
                        let status = Command::new("postfix")
                            .arg("logrotate")
                            .stdout(Stdio::null())
                            .status()
                            .expect("postfix logrotate");
                        assert!(status.success(), "postfix logrotate: {status}");
                        kills.lock().unwrap().push(format!("log rotated at {at} s"));
                    }
                    "api" => {
                        let n = (at as usize) % 2;
                        apis.lock().await[n].kill();
                        kills.lock().unwrap().push(format!("api {n} at {at} s"));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        apis.lock().await[n] = stack.api(n);
                    }
                    _ => {
                        redis.lock().await.kill();
                        kills
                            .lock()
                            .unwrap()
                            .push(format!("redis at {at} s (restarted empty)"));
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        *redis.lock().await = stack.redis();
                    }
                }
            }
            while restores.join_next().await.is_some() {}
        })
    };

    // The load: paced, each message its own task.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut sends = tokio::task::JoinSet::new();
    let gap = Duration::from_micros(1_000_000 / plan.per_second);
    let unavailable = Arc::new(Unavailable::default());
    let bounce_every = plan.bounce_every;
    for i in 0..plan.messages {
        tokio::time::sleep_until((started + gap * i as u32).into()).await;
        let (http, token, domain, ports) =
            (http.clone(), token.clone(), domain.clone(), stack.api_ports);
        let unavailable = unavailable.clone();
        sends.spawn(async move {
            (
                i,
                send_one(&http, ports, &token, &domain, i, &unavailable, bounce_every).await,
            )
        });
    }
    let mut answers = HashMap::new();
    while let Some(r) = sends.join_next().await {
        let (i, a) = r.unwrap();
        answers.insert(i, a);
    }
    faults.await.unwrap();
    eprintln!("load done in {:?}", started.elapsed());

    // Everything must settle: no message or recipient left open.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let open = scalar(
            &db,
            "select count(*) from messages m where m.status in ('pending', 'submitted')
                or exists (select 1 from recipients r where r.message_id = m.id
                            and r.status in ('pending', 'deferred'))",
        )
        .await;
        if open == 0 {
            break;
        }
        if Instant::now() >= deadline {
            let examples: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
                "select m.rfc_message_id, m.status, m.queue_id, string_agg(r.status, ',')
                   from messages m join recipients r on r.message_id = m.id
                  where m.status in ('pending', 'submitted') or r.status in ('pending', 'deferred')
                  group by m.id limit 10",
            )
            .fetch_all(&db)
            .await
            .unwrap();
            panic!(
                "{open} messages never settled; the first (Message-ID, status, queue id, \
                 recipients): {examples:#?}; process logs in {}",
                stack.logs.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The bounce reports come back on Postfix's schedule after the statuses settle (the log
    // says `bounced` first): the workers keep running until every one is read and filed.
    let bounced = scalar(
        &db,
        "select count(*) from recipients where domain = 'sink-hard.test'",
    )
    .await;
    if bounced > 0 {
        reports_all_read(&domain, bounced as usize).await;
    }
    stop_workers.cancel();
    for t in worker_tasks {
        drop(t.await.unwrap());
    }

    // Postfix delivers on its own schedule: wait for the sink to have every stored message.
    // (id, Message-ID, status, whether it was meant to bounce)
    let stored: Vec<(uuid::Uuid, String, String, bool)> = sqlx::query_as(
        "select m.id, m.rfc_message_id, m.status,
                exists (select 1 from recipients r where r.message_id = m.id
                         and r.domain = 'sink-hard.test')
           from messages m",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    while Instant::now() < deadline {
        let counts = sink_counts(&sink_dir, since, &domain);
        if stored
            .iter()
            .all(|(_, rfc, _, bounces)| *bounces || counts.contains_key(rfc))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A little longer, so that a second copy on its way is counted too. The sink's files only
    // ever accumulate, so this read holds everything the earlier ones saw.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts = sink_counts(&sink_dir, since, &domain);

    // The verdict.
    let in_db: HashSet<uuid::Uuid> = stored.iter().map(|(id, ..)| *id).collect();
    let accepted: Vec<uuid::Uuid> = answers
        .values()
        .filter_map(|a| match a {
            Answer::Accepted(id) => Some(*id),
            Answer::GaveUp(_) => None,
        })
        .collect();
    let gave_up: Vec<String> = answers
        .iter()
        .filter_map(|(i, a)| match a {
            Answer::GaveUp(why) => Some(format!("message {i}: {why}")),
            Answer::Accepted(_) => None,
        })
        .collect();
    let lost_db: Vec<_> = accepted.iter().filter(|id| !in_db.contains(id)).collect();
    let unsent: Vec<_> = stored
        .iter()
        .filter(|(_, rfc, _, bounces)| !bounces && !counts.contains_key(rfc))
        .collect();
    let not_sent_status: Vec<_> = stored
        .iter()
        .filter(|(_, _, s, bounces)| s != if *bounces { "bounced" } else { "sent" })
        .collect();
    let dupes: Vec<_> = stored
        .iter()
        .filter_map(|(_, rfc, ..)| counts.get(rfc).filter(|n| **n > 1).map(|n| (rfc, *n)))
        .collect();
    let kills = kills.lock().unwrap().clone();
    let retried = scalar(&db, "select count(*) from messages where attempts > 1").await;
    let recovered = scalar(
        &db,
        "select count(*) from delivery_events
          where event = 'submitted' and smtp_response like 'queued by an earlier attempt%'",
    )
    .await;
    eprintln!(
        "checker: {} messages sent by the client, {} got a 202, {} gave up; {} stored; \
         faults: {kills:?}; {retried} claimed again, {recovered} found in the MTA log instead \
         of re-sent; lost = {}, duplicates = {}, stuck = {}",
        plan.messages,
        accepted.len(),
        gave_up.len(),
        stored.len(),
        lost_db.len() + unsent.len(),
        dupes.len(),
        not_sent_status.len(),
    );
    // No process may panic, whatever was done to it (a SIGKILL is not a panic).
    let mut panics = Vec::new();
    for entry in std::fs::read_dir(&stack.logs).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if line.contains("panicked at") {
                let next = text.lines().nth(i + 1).unwrap_or_default();
                panics.push(format!("{}: {line} {next}", entry.path().display()));
            }
        }
    }
    assert!(panics.is_empty(), "panics: {panics:#?}");
    assert!(gave_up.is_empty(), "the client gave up on: {gave_up:?}");
    assert!(lost_db.is_empty(), "202 but not stored: {lost_db:?}");
    assert!(unsent.is_empty(), "stored but never delivered: {unsent:?}");
    assert!(
        not_sent_status.is_empty(),
        "not `sent`: {not_sent_status:?}"
    );
    // A logical message is stored once however often the client retried it.
    assert_eq!(
        stored.len(),
        plan.messages,
        "one stored message per idempotency key"
    );
    assert!(dupes.is_empty(), "delivered twice: {dupes:?}");
    let expected_kills = plan.armed_workers * plan.rounds * STEPS.len()
        + plan.api_kills.len()
        + plan.redis_kills.len()
        + plan.postgres_cuts.len()
        + plan.smtp_cuts.len()
        + plan.smtp_421.len()
        + plan.log_rotations.len()
        + plan.imap_cuts.len();
    use std::sync::atomic::Ordering::Relaxed;
    let (answers_503, bare_503) = (
        unavailable.answers.load(Relaxed),
        unavailable.without_retry_after.load(Relaxed),
    );
    eprintln!("checker: {answers_503} answers were 503 ({bare_503} without Retry-After)");
    assert_eq!(bare_503, 0, "every 503 carries Retry-After");
    if !plan.postgres_cuts.is_empty() {
        assert!(
            answers_503 > 0,
            "with Postgres cut off the API must answer 503, not hang"
        );
    }
    assert_eq!(
        kills.len(),
        expected_kills,
        "every fault must fire: {kills:?}"
    ); // Kept when a check fails, for a look at what the processes said.
    let _ = std::fs::remove_dir_all(&stack.logs);
}

/// Waits until the bounce reader has taken every report about our messages out of the bounce
/// mailbox's inbox and filed at least `bounced` of them under `Processed`: the reports that came
/// while IMAP was cut off were read once it was back.
async fn reports_all_read(domain: &str, bounced: usize) {
    let master = env("MAILAPI_IMAP_MASTER_PASSWORD");
    let user = format!(
        "bounces@{}*{}",
        std::env::var("MAILAPI_BOUNCE_DOMAIN").unwrap_or_else(|_| "bounces.mailapi.local".into()),
        std::env::var("MAILAPI_IMAP_MASTER_USER").unwrap_or_else(|_| "mailapi-master".into())
    );
    let count = |folder: &'static str| {
        let (user, master) = (user.clone(), master.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", 143))
                .await
                .unwrap();
            let mut client = async_imap::Client::new(tcp);
            client.read_response().await.unwrap().unwrap();
            let mut session = client
                .login(&user, &master)
                .await
                .map_err(|(e, _)| e)
                .unwrap();
            session.examine(folder).await.unwrap();
            let found = session
                .uid_search(format!("TEXT \"@{domain}\""))
                .await
                .unwrap()
                .len();
            let _ = session.logout().await;
            found
        }
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (waiting, filed) = (count("INBOX").await, count("Processed").await);
        if waiting == 0 && filed >= bounced {
            eprintln!("checker: {filed} bounce reports read and filed, none left waiting");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bounce reports: {waiting} still in the inbox, {filed} of {bounced} filed"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// An admin token made with the API's own CLI, as an operator would.
fn admin_token(db_url: &str) -> String {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checker_short_form() {
    run(Plan {
        messages: 1500,
        per_second: 60,
        rounds: 1,
        armed_workers: 1,
        kill_on: 20,
        api_kills: &[6, 15],
        redis_kills: &[9],
        postgres_cuts: &[(18, 5)],
        smtp_cuts: &[(3, 3)],
        smtp_421: &[(12, 3)],
        log_rotations: &[],
        bounce_every: 0,
        imap_cuts: &[],
        skew_secs: 120,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long form, on demand (about 10 minutes): see the module documentation"]
async fn checker_long_form() {
    run(Plan {
        messages: 30_000,
        per_second: 100,
        rounds: 3,
        armed_workers: 2,
        kill_on: 50,
        api_kills: &[20, 65, 110, 155, 200, 245],
        redis_kills: &[40, 130, 220],
        postgres_cuts: &[(75, 30), (260, 30)],
        smtp_cuts: &[(50, 10), (140, 10)],
        smtp_421: &[(185, 10), (230, 10)],
        log_rotations: &[90, 210],
        bounce_every: 100,
        imap_cuts: &[(115, 30)],
        skew_secs: 120,
    })
    .await;
}
