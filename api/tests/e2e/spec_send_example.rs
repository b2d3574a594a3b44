//! The spec's Python example for `POST /mail/send` runs unchanged apart from URL and token.

use testkit::TestApp;

#[tokio::test]
async fn the_spec_python_send_example_prints_the_message_id() {
    let app = TestApp::spawn(&[]).await;
    app.domain("yourdomain.com", true).await;
    let token = app.admin_token().await;
    let dir =
        std::env::temp_dir().join(format!("mailapi-example-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("document.pdf"), b"%PDF-1.4\n% test document\n").unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/examples/send_email.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .current_dir(&dir)
        .env("EXAMPLE_API_URL", app.api(""))
        .env("EXAMPLE_TOKEN", &token)
        .output()
        .await
        .expect("python3 (deploy/test.sh installs `requests`)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = stdout
        .trim()
        .strip_prefix("Message ID: ")
        .expect("prints the message id");
    let stored: String = sqlx::query_scalar("select subject from messages where id = $1::uuid")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, "Invoice Attached");
    let _ = std::fs::remove_dir_all(dir);
}
