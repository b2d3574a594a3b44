//! The spec's mailbox examples, run unchanged but for URL, token, mailbox, UID and index.

use super::Fixture;
use super::support::{
    PDF_NAME, append, binary_payload, nested_message, plain_message, png_payload,
};

/// Runs one of the spec's examples from `tests/examples/` with only the URL, token, mailbox,
/// UID and index replaced, in a scratch directory; returns that directory and the output.
/// (Async: the API under test is served by this test's runtime, so blocking here would hang.)
async fn run_example(
    f: &Fixture,
    file: &str,
    program: &str,
    token: &str,
    uid: u32,
    index: usize,
) -> (std::path::PathBuf, String) {
    let src = std::fs::read_to_string(format!(
        "{}/tests/examples/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let script = src
        .replace("https://mail-api.solutechhub.com/api/v1", &f.app.api(""))
        .replace("your-token-here", token)
        .replace("user@yourdomain.com", &f.alice)
        .replace("uid = 1234", &format!("uid = {uid}"))
        .replace(
            "attachment_index = 0",
            &format!("attachment_index = {index}"),
        );
    let dir = std::env::temp_dir().join(format!("mailapi-example-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), script).unwrap();
    let out = tokio::process::Command::new(program)
        .arg(file)
        .current_dir(&dir)
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): apt-get install -y php-cli php-curl; pip install requests")
        });
    assert!(
        out.status.success(),
        "{program} {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn spec_examples_run_unchanged() {
    let f = Fixture::new().await;
    append(&f.alice, "INBOX", None, &plain_message(&f.alice, 1)).await;
    let uid = append(&f.alice, "INBOX", None, &nested_message(&f.alice)).await;
    let detail = f
        .get_json(
            &format!("/mailbox/{}/messages/{uid}", f.alice),
            &f.alice_token,
        )
        .await;
    let index_of = |name: &str| {
        detail["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["filename"] == name)
            .and_then(|a| a["index"].as_u64())
            .unwrap() as usize
    };

    // Section 5, PHP: prints "subject - sender" per message, newest first.
    let (dir, out) = run_example(&f, "list_messages.php", "php", &f.alice_token, 0, 0).await;
    assert_eq!(
        out,
        "Quarterly report - karl@example.com\nPage message 1 - sender1@example.com\n"
    );
    std::fs::remove_dir_all(dir).ok();

    // Section 7, Python: saves the attachment under the name from Content-Disposition.
    let png = index_of("logo.png");
    let (dir, _) = run_example(
        &f,
        "download_attachment.py",
        "python3",
        &f.alice_token,
        uid,
        png,
    )
    .await;
    assert_eq!(std::fs::read(dir.join("logo.png")).unwrap(), png_payload());
    std::fs::remove_dir_all(dir).ok();
    // A non-ASCII name: the naive split lands on the ASCII fallback, never on `filename*`.
    let pdf = index_of(PDF_NAME);
    let (dir, _) = run_example(
        &f,
        "download_attachment.py",
        "python3",
        &f.alice_token,
        uid,
        pdf,
    )
    .await;
    assert_eq!(
        std::fs::read(dir.join("_bersicht Q3 _ Bericht.pdf")).unwrap(),
        binary_payload()
    );
    std::fs::remove_dir_all(dir).ok();
}
