//! Mailboxes over REST against the real Dovecot: messages go in by IMAP APPEND (as the master
//! user) or through Postfix on port 25, and come out through the API.
//!
//! Each test uses its own `<uuid>.test` domain on the main database (the one Dovecot reads) and
//! removes it, its tokens and its maildirs when it ends, even when it fails.

mod access;
mod changes;
mod delivery;
mod errors;
mod examples;
mod listing;
mod pool;
mod reading;
mod search;
mod support;

use api::auth::TokenType;
use serde_json::Value;
use testkit::TestApp;

struct Fixture {
    app: TestApp,
    domain: String,
    domain_id: i64,
    alice: String,
    alice_token: String,
    bob: String,
    bob_token: String,
    admin: String,
    _cleanup: Cleanup,
}

/// Deletes the domain (mailboxes and their tokens cascade), the admin token and the maildirs.
struct Cleanup {
    database_url: String,
    domain: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let url = self.database_url.clone();
        let domain = self.domain.clone();
        // Drop cannot await; a thread with its own runtime can, even while a test unwinds.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(db) = sqlx::PgPool::connect(&url).await {
                    let _ = sqlx::query("delete from api_tokens where name = $1")
                        .bind(format!("admin {domain}"))
                        .execute(&db)
                        .await;
                    let _ = sqlx::query("delete from domains where domain = $1")
                        .bind(&domain)
                        .execute(&db)
                        .await;
                }
            });
            let _ = std::fs::remove_dir_all(format!("/var/vmail/{domain}"));
        })
        .join();
    }
}

impl Fixture {
    async fn new() -> Fixture {
        Self::with_overrides(&[]).await
    }

    async fn with_overrides(overrides: &[(&str, &str)]) -> Fixture {
        let app = TestApp::spawn_main_db(overrides).await;
        let domain = format!("{}.test", uuid::Uuid::new_v4().simple());
        let cleanup = Cleanup {
            database_url: app.database_url.clone(),
            domain: domain.clone(),
        };
        let domain_id = app.domain(&domain, true).await;
        let alice = format!("alice@{domain}");
        let bob = format!("bob@{domain}");
        let alice_token = app.mailbox_with_token(&alice, domain_id).await;
        let bob_token = app.mailbox_with_token(&bob, domain_id).await;
        let (secret, _) = api::tokens::create_token(
            &app.db,
            TokenType::Admin,
            None,
            &format!("admin {domain}"),
            None,
        )
        .await
        .unwrap();
        Fixture {
            app,
            domain,
            domain_id,
            alice,
            alice_token,
            bob,
            bob_token,
            admin: secret.expose().to_owned(),
            _cleanup: cleanup,
        }
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.app.get(path, Some(token)).await
    }

    async fn get_json(&self, path: &str, token: &str) -> Value {
        let resp = self.get(path, token).await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("JSON body");
        assert_eq!(status, 200, "GET {path}: {body}");
        assert_eq!(body["success"], true, "{body}");
        body
    }
}
