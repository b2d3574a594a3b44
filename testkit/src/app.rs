//! The real API for a test, after zero-to-production's `spawn_app`: a fresh Postgres database
//! (migrations applied), a per-test Redis key prefix, and `api::run` served on port 0 in this
//! process; plus the requests and rows tests make through it.

use std::net::SocketAddr;
use std::time::Duration;

use api::auth::TokenType;
use futures::TryStreamExt as _;
use secrecy::ExposeSecret;
use shared::config::Settings;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::fresh_database;
use crate::env::{base_database_url, redis_url, settings};
use crate::redis::require_redis;
use crate::workers::Worker;

pub struct TestApp {
    pub addr: SocketAddr,
    pub db: PgPool,
    pub database_url: String,
    pub prefix: String,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub settings: Settings,
    /// The task serving the API; [`TestApp::stop`] waits for it.
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// A new database and key prefix, and one API process serving them.
    pub async fn spawn(overrides: &[(&str, &str)]) -> TestApp {
        shared::install_crypto_provider();
        require_redis().await;
        let (database_url, db) = fresh_database().await;
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        Self::spawn_on(database_url, db, prefix, overrides).await
    }

    /// An API process on the main `mailapi` database, the one Postfix and Dovecot read: for
    /// tests that need mail to reach a mailbox we create. Such tests must use their own unique
    /// domain (e.g. `<uuid>.test`) and delete it at the end, because the database is shared.
    pub async fn spawn_main_db(overrides: &[(&str, &str)]) -> TestApp {
        shared::install_crypto_provider();
        require_redis().await;
        let url = base_database_url();
        let db = PgPool::connect(&url).await.unwrap_or_else(|e| {
            panic!("cannot reach Postgres at MAILAPI_DATABASE_URL ({e}); run `deploy/infra-up.sh` and source /etc/mailapi/mailapi.env")
        });
        // Several tests start on this database at once: take turns as the binaries do, so that a
        // migration that builds an index concurrently cannot deadlock them (shared::db::migrate).
        shared::db::migrate(&db).await.expect("migrations apply");
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        Self::spawn_on(url, db, prefix, overrides).await
    }

    /// Another API process sharing this one's database and Redis keys (a second replica).
    pub async fn replica(&self) -> TestApp {
        self.replica_with(&[]).await
    }

    /// A replica with its own setting overrides (they do not carry over from this one).
    pub async fn replica_with(&self, overrides: &[(&str, &str)]) -> TestApp {
        Self::spawn_on(
            self.database_url.clone(),
            self.db.clone(),
            self.prefix.clone(),
            overrides,
        )
        .await
    }

    async fn spawn_on(
        database_url: String,
        db: PgPool,
        prefix: String,
        overrides: &[(&str, &str)],
    ) -> TestApp {
        let settings = settings(&database_url, &prefix, overrides);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let s = settings.clone();
        let token = shutdown.clone();
        let server =
            tokio::spawn(async move { api::run(s, listener, token).await.expect("api runs") });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let app = TestApp {
            addr,
            db,
            database_url,
            prefix,
            http,
            shutdown,
            settings,
            server: Some(server),
        };
        app.wait_until_up().await;
        app
    }

    async fn wait_until_up(&self) {
        for _ in 0..100 {
            if self.http.get(self.url("/health")).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("API did not come up");
    }

    /// Shuts the API down as SIGTERM would and waits until `api::run` has returned.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("the API stops cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn api(&self, path: &str) -> String {
        self.url(&format!("/api/v1{path}"))
    }

    /// Rows in `messages` and `recipients`: what a refused request must not have added.
    pub async fn stored(&self) -> (i64, i64) {
        sqlx::query_as("select (select count(*) from messages), (select count(*) from recipients)")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Entries in this app's (unsharded) send stream: what a refused request must not queue.
    pub async fn stream_len(&self) -> i64 {
        let client = deadpool_redis::redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let key = shared::jobs::Keys::new(&self.prefix).send_stream();
        deadpool_redis::redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    pub async fn admin_token(&self) -> String {
        let (secret, _) =
            api::tokens::create_token(&self.db, TokenType::Admin, None, "test admin", None)
                .await
                .unwrap();
        secret.expose().to_owned()
    }

    /// Inserts an active domain (or pending) and returns its id.
    pub async fn domain(&self, domain: &str, active: bool) -> i64 {
        sqlx::query_scalar("insert into domains (domain, active) values ($1, $2) returning id")
            .bind(domain)
            .bind(active)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Inserts a mailbox and returns a user token bound to it.
    pub async fn mailbox_with_token(&self, email: &str, domain_id: i64) -> String {
        let local = email.split('@').next().unwrap();
        sqlx::query("insert into mailboxes (domain_id, local_part, email, password_hash) values ($1, $2, $3, $4)")
            .bind(domain_id)
            .bind(local)
            .bind(email)
            .bind(shared::password::hash_password("password123"))
            .execute(&self.db)
            .await
            .unwrap();
        let (secret, _) =
            api::tokens::create_token(&self.db, TokenType::User, Some(email), "user", None)
                .await
                .unwrap();
        secret.expose().to_owned()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.api(path));
        if let Some(t) = token {
            req = req.header("X-MAILAPI-TOKEN", t);
        }
        req.send().await.unwrap()
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.http
            .post(self.api(path))
            .header("X-MAILAPI-TOKEN", token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The newest INBOX message of `mailbox` containing `marker`, read as the master user.
    pub async fn fetch_inbox(&self, mailbox: &str, marker: &str) -> Vec<u8> {
        let imap = &self.settings.imap;
        let password = imap
            .master_password
            .as_ref()
            .expect("MAILAPI_IMAP_MASTER_PASSWORD (source /etc/mailapi/mailapi.env)")
            .expose_secret()
            .to_owned();
        for _ in 0..150 {
            let tcp = tokio::net::TcpStream::connect((imap.host.as_str(), imap.port))
                .await
                .unwrap();
            let mut client = async_imap::Client::new(tcp);
            client.read_response().await.unwrap();
            let mut session = client
                .login(format!("{mailbox}*{}", imap.master_user), &password)
                .await
                .map_err(|(e, _)| e)
                .unwrap();
            let mbox = session.examine("INBOX").await.unwrap();
            if mbox.exists > 0 {
                let fetched: Vec<_> = session
                    .fetch(mbox.exists.to_string(), "BODY.PEEK[]")
                    .await
                    .unwrap()
                    .try_collect()
                    .await
                    .unwrap();
                let body = fetched[0].body().unwrap().to_vec();
                if String::from_utf8_lossy(&body).contains(marker) {
                    let _ = session.logout().await;
                    return body;
                }
            }
            let _ = session.logout().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no message with {marker} arrived in {mailbox}");
    }

    pub fn settings_secret_db(&self) -> String {
        self.settings.database_url.expose_secret().to_owned()
    }

    /// A worker in this process on this app's settings: its database, Redis and key prefix.
    pub fn start_worker(&self) -> Worker {
        Worker::start(self.settings.clone())
    }

    /// A worker named `name` (its stream consumer and its `(worker <name>)` in the events),
    /// without a metrics listener, so that several can run beside each other.
    pub fn start_named_worker(&self, name: &str) -> Worker {
        let mut settings = self.settings.clone();
        settings.worker.consumer_name = name.to_owned();
        settings.worker.metrics_listen = None;
        Worker::start(settings)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Asserts the spec's error shape and code, and returns the body.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    let got = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("error body is JSON");
    assert_eq!(got, status, "status for {body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}
