//! One JSON log line per request: route, status, latency and the token's id, never its secret.

use std::io::Write;
use std::sync::{Arc, Mutex};

use testkit::TestApp;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn each_request_is_logged_with_its_token_id_and_never_the_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .with_env_filter("mailapi::request=info")
        .init();
    let app = TestApp::spawn(&[]).await;
    let token = app.admin_token().await;
    assert_eq!(app.get("/tokens/me", Some(&token)).await.status(), 200);
    assert_eq!(
        app.get("/tokens/me", Some("mapi_bogus")).await.status(),
        401
    );
    let id: i64 = sqlx::query_scalar("select id from api_tokens")
        .fetch_one(&app.db)
        .await
        .unwrap();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["route"] == "/api/v1/tokens/me")
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["token_id"], id);
    assert!(lines[0]["latency_ms"].as_f64().is_some());
    assert_eq!(lines[1]["status"], 401);
    assert!(lines[1].get("token_id").is_none_or(|t| t.is_null()));
    assert!(!text.contains(&token), "the secret must never be logged");
}
