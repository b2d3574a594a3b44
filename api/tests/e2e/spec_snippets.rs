//! The spec's client snippets (curl, Python, Node.js, PHP) run unchanged but for the URL, the
//! token and the message id, against the real API: the quick start in all four languages, the
//! Node.js status example and the Python error handling. (The send, mailbox listing and
//! attachment examples have their own tests: `spec_send_example.rs`, `mailbox/examples.rs`.)
//!
//! The files are in `tests/examples/`, as the guide prints them. Node.js needs `axios`, which
//! deploy/test.sh installs under `target/spec-examples/node_modules` (or set NODE_PATH).

use serde_json::json;
use testkit::TestApp;

const SPEC_URL: &str = "https://mail-api.solutechhub.com/api/v1";

struct Snippets {
    app: TestApp,
    token: String,
    message_id: String,
}

impl Snippets {
    async fn new() -> Self {
        let app = TestApp::spawn(&[]).await;
        app.domain("yourdomain.com", true).await;
        let token = app.admin_token().await;
        let body = json!({
            "from": "sender@yourdomain.com",
            "to": ["recipient@example.com"],
            "subject": "Hello from API",
            "body": {"text": "hi"},
        });
        let v: serde_json::Value = app
            .post_json("/mail/send", &token, &body)
            .await
            .json()
            .await
            .unwrap();
        let message_id = v["message_id"].as_str().unwrap().to_owned();
        Self {
            app,
            token,
            message_id,
        }
    }

    /// Runs `tests/examples/<file>` with `program`, with `prefix` and `suffix` added around it
    /// (for a snippet that is only a function), and returns its standard output.
    async fn run(&self, file: &str, program: &str, prefix: &str, suffix: &str) -> String {
        let src = std::fs::read_to_string(format!(
            "{}/tests/examples/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let script = format!("{prefix}{src}{suffix}")
            .replace(SPEC_URL, &self.app.api(""))
            .replace("your-token-here", &self.token)
            .replace("550e8400-e29b-41d4-a716-446655440000", &self.message_id);
        let dir = std::env::temp_dir().join(format!("mailapi-snippet-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), script).unwrap();
        let node_path = std::env::var("NODE_PATH").unwrap_or_else(|_| {
            format!(
                "{}/../target/spec-examples/node_modules",
                env!("CARGO_MANIFEST_DIR")
            )
        });
        let out = tokio::process::Command::new(program)
            .arg(file)
            .current_dir(&dir)
            .env("NODE_PATH", node_path)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run {program} ({e}): deploy/test.sh installs it"));
        let _ = std::fs::remove_dir_all(&dir);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{program} {file} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

#[tokio::test]
async fn the_quick_start_works_in_every_language() {
    let s = Snippets::new().await;
    let curl = s.run("quickstart.sh", "bash", "", "").await;
    let v: serde_json::Value = serde_json::from_str(&curl).expect("curl prints the JSON");
    assert_eq!(v["messages"][0]["message_id"], s.message_id.as_str());

    let python = s.run("quickstart.py", "python3", "", "").await;
    assert!(python.contains("'success': True"), "{python}");
    assert!(python.contains(&s.message_id), "{python}");

    let node = s.run("quickstart.js", "node", "", "").await;
    assert!(node.contains("success: true"), "{node}");
    assert!(node.contains(&s.message_id), "{node}");

    let php = s.run("quickstart.php", "php", "", "").await;
    assert!(php.contains("[success] => 1"), "{php}");
    assert!(
        php.contains(&format!("[message_id] => {}", s.message_id)),
        "{php}"
    );
}

#[tokio::test]
async fn the_node_status_example_prints_each_recipient() {
    let s = Snippets::new().await;
    let out = s.run("message_status.js", "node", "", "").await;
    assert_eq!(
        out,
        "Overall status: pending\n recipient@example.com: pending\n"
    );
}

#[tokio::test]
async fn the_python_error_handling_example_reads_our_errors() {
    let s = Snippets::new().await;
    // The snippet is a function using the quick start's API_URL and TOKEN: define those before
    // it and call it after it.
    let prefix = format!("API_URL = \"{SPEC_URL}\"\nTOKEN = \"your-token-here\"\n");
    let suffix = r#"
print(send_email({"from": "a@not-ours.test", "to": ["b@example.com"], "body": {"text": "x"}}))
TOKEN = "mapi_not_a_real_token"
print(send_email({"from": "a@yourdomain.com", "to": ["b@example.com"], "body": {"text": "x"}}))
TOKEN = "your-token-here"
r = send_email({"from": "sender@yourdomain.com", "to": ["b@example.com"], "body": {"text": "x"}})
print(r["status"], r["queue_id"])
"#;
    let out = s.run("error_handling.py", "python3", &prefix, suffix).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("Error: "), "{out}");
    assert_eq!(
        lines[1],
        "Please use an email address from an allowed domain."
    );
    assert_eq!(lines[2], "None");
    assert_eq!(lines[3], "Error: Your API token is invalid.");
    assert_eq!(lines[4], "None");
    assert_eq!(lines[5], "pending None", "{out}");
}
