//! Self-signup, approval, permission grants and mailbox users, on a fresh database per test.

mod approval;
mod grants;
mod signup;

use serde_json::{Value, json};
use testkit::TestApp;

async fn signup(app: &TestApp, body: &Value) -> reqwest::Response {
    app.http
        .post(app.api("/auth/signup"))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn form(domain: &str) -> Value {
    json!({
        "domain": domain,
        "email": format!("admin@{domain}"),
        "password": "SecurePassword123",
        "name": "Your Name"
    })
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.db).await.unwrap()
}
