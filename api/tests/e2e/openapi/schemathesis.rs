//! schemathesis (PyPI) fuzzing every operation with an admin token: no 5xx, and no response
//! outside the documented schemas.

use std::process::Stdio;
use std::time::Duration;
use testkit::TestApp;

/// schemathesis from PyPI against the live document with an admin token: every operation,
/// the IMAP and stats ones included, with every check (positive and negative data, response
/// schemas, status codes, content types...) and 15 generated cases per operation and phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let version = tokio::process::Command::new("python3")
        .args(["-m", "schemathesis.cli", "--version"])
        .output()
        .await;
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "schemathesis is not installed: `python3 -m pip install schemathesis` (deploy/test.sh does it)"
    );
    // The token limits would turn most generated requests into 429s that test nothing.
    let app = TestApp::spawn(&[
        ("MAILAPI_RATE_LIMIT_PER_MINUTE", "1000000"),
        ("MAILAPI_RATE_LIMIT_PER_HOUR", "1000000"),
        ("MAILAPI_SIGNUPS_PER_DOMAIN_PER_HOUR", "1000000"),
        ("MAILAPI_SIGNUPS_PER_IP_PER_HOUR", "1000000"),
    ])
    .await;
    // DELETE /tokens/{id} with small ids is among the generated cases: an admin token with id 1
    // would revoke itself and leave the rest of the run testing 401s. Start ids far from any
    // boundary value.
    sqlx::query("select setval(pg_get_serial_sequence('api_tokens', 'id'), 730641925481)")
        .execute(&app.db)
        .await
        .unwrap();
    let token = app.admin_token().await;
    // The mailbox routes run against the real Dovecot: it reads the main database, so the
    // mailbox exists there (under a domain of this run's own, removed at the end) and in the
    // API's fresh database, which takes every write the fuzzing makes.
    let domain = format!("{}.test", uuid::Uuid::new_v4().simple());
    let email = format!("fuzz@{domain}");
    let main = sqlx::PgPool::connect(&testkit::base_database_url())
        .await
        .expect("main database");
    let _cleanup = MainDbDomain {
        database_url: testkit::base_database_url(),
        domain: domain.clone(),
    };
    for db in [&main, &app.db] {
        let domain_id: i64 = sqlx::query_scalar(
            "insert into domains (domain, active) values ($1, true) returning id",
        )
        .bind(&domain)
        .fetch_one(db)
        .await
        .unwrap();
        sqlx::query("insert into mailboxes (domain_id, local_part, email, password_hash) values ($1, 'fuzz', $2, $3)")
            .bind(domain_id)
            .bind(&email)
            .bind(shared::password::hash_password("password123"))
            .execute(db)
            .await
            .unwrap();
    }
    append_message(&email).await;
    let write = |name: &str, text: String| {
        let path = std::env::temp_dir().join(format!("schemathesis-{domain}-{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let everything = write("all", EXEMPTIONS.to_owned());
    // The mailbox run names the fuzz mailbox and its INBOX: random addresses and folders only
    // ever reach MAILBOX_NOT_FOUND and INVALID_FOLDER.
    let mailbox = write(
        "mailbox",
        format!(
            "[parameters]\n\"path.email\" = \"{email}\"\n\"query.folder\" = \"INBOX\"\n\n{EXEMPTIONS}"
        ),
    );

    let url = app.url("/openapi.json");
    let started = std::time::Instant::now();
    // Revoking a token is run apart, last: the stateful phase learns the calling token's id from
    // `GET /tokens/me` and would otherwise revoke it mid-run, leaving the rest testing 401s.
    const REVOKE: &str = "DELETE /api/v1/tokens/{id}";
    let main = schemathesis(
        &url,
        &token,
        &everything,
        "all",
        &["--exclude-name", REVOKE],
    )
    .await;
    eprintln!("{main}");
    // A revoked token shows as operations answering only 401. (Schemathesis also files an
    // operation answering only 403 under "Authentication failed": POST /mail/send from the
    // random domains it generates is 403 DOMAIN_NOT_ALLOWED, which is right.)
    assert!(
        !main.contains("401 Unauthorized ("),
        "the token stopped working mid-run:\n{main}"
    );
    // Negative data is left out here: schemathesis would report its negative `email` values as
    // accepted, though the request carried the pinned address (the first run has them).
    let checks = "not_a_server_error,status_code_conformance,content_type_conformance,\
                  response_headers_conformance,response_schema_conformance,\
                  positive_data_acceptance,missing_required_header,unsupported_method,\
                  allow_header_conformance,use_after_free,ensure_resource_availability,\
                  ignored_auth";
    let inbox = schemathesis(
        &url,
        &token,
        &mailbox,
        checks,
        &["--include-path-regex", "^/api/v1/mailbox/"],
    )
    .await;
    eprintln!("{inbox}");
    schemathesis(
        &url,
        &token,
        &everything,
        "all",
        &["--include-name", REVOKE],
    )
    .await;
    eprintln!("schemathesis took {:?} in all", started.elapsed());
    for config in [everything, mailbox] {
        let _ = std::fs::remove_file(config);
    }
}

/// Operations where a request the document calls valid can still get a 400, because the rule
/// depends on another value in a way JSON Schema cannot state; each is documented in words.
const EXEMPTIONS: &str = r#"
# The mailbox address must be in the domain (signup: the body's; users: the path's).
[[operations]]
include-name = "POST /api/v1/auth/signup"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

[[operations]]
include-name = "POST /api/v1/domains/{domain}/users"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# The period: end after start, at most 366 days, relative to the clock when one is left out.
[[operations]]
include-name = "GET /api/v1/stats/delivery"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

[[operations]]
include-name = "GET /api/v1/stats/domain/{domain}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# The destination must be an existing folder of the mailbox (the spec's INVALID_FOLDER).
[[operations]]
include-name = "POST /api/v1/mailbox/{email}/messages/{uid}/move"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# A webhook URL's host must resolve, and only to addresses the server allows
# (MAILAPI_WEBHOOK_ALLOW_PRIVATE): a DNS answer, not a string rule.
[[operations]]
include-name = "POST /api/v1/webhooks"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

[[operations]]
include-name = "PATCH /api/v1/webhooks/{id}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]

# Exactly one of event_ids, dead_letters: true, or from and to, with from before to.
[[operations]]
include-name = "POST /api/v1/webhooks/{id}/replay"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]
"#;

/// A message with an attachment in the mailbox's INBOX (UID 1), appended as the master user.
async fn append_message(email: &str) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", 143))
        .await
        .expect("Dovecot IMAP on 127.0.0.1:143 (run deploy/infra-up.sh)");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.unwrap().expect("greeting");
    let master = testkit::env_or("MAILAPI_IMAP_MASTER_USER", "mailapi-master");
    let password = std::env::var("MAILAPI_IMAP_MASTER_PASSWORD")
        .expect("MAILAPI_IMAP_MASTER_PASSWORD (source /etc/mailapi/mailapi.env)");
    let mut session = client
        .login(format!("{email}*{master}"), password)
        .await
        .map_err(|(e, _)| e)
        .expect("master login");
    let raw = format!(
        "From: Sender <sender@example.com>\r\nTo: {email}\r\nSubject: Fuzz target\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nHello\r\n\
         --b\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=a.bin\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--b--\r\n"
    );
    session
        .append("INBOX", None, None, raw.as_bytes())
        .await
        .expect("APPEND");
    session.logout().await.ok();
}

/// Removes this run's domain (its mailbox cascades) from the main database, and its maildir.
struct MainDbDomain {
    database_url: String,
    domain: String,
}

impl Drop for MainDbDomain {
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

/// Runs schemathesis (15 cases per operation and phase, one worker) and fails the test on any
/// failure; returns its report.
async fn schemathesis(
    url: &str,
    token: &str,
    config: &str,
    checks: &str,
    select: &[&str],
) -> String {
    let header = format!("X-MAILAPI-TOKEN: {token}");
    // Through python3, the interpreter deploy/test.sh installs it into, whatever PATH holds.
    let mut args = vec![
        "-m",
        "schemathesis.cli",
        "--no-color",
        "--config-file",
        config,
        "run",
        url,
        "-H",
        &header,
        "--checks",
        checks,
        "--max-examples",
        "15",
        "--seed",
        "1",
        // One worker: with two threads, hypothesis's lambda descriptions sometimes trip
        // CPython 3.11's "AST constructor recursion depth mismatch" (a crash in the tool, not
        // a finding); one worker costs a few seconds here.
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
    ];
    args.extend_from_slice(select);
    // It keeps a replay store in its working directory: not in the source tree.
    let run = tokio::process::Command::new("python3")
        .args(&args)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("schemathesis starts");
    let output = tokio::time::timeout(Duration::from_secs(300), run.wait_with_output())
        .await
        .expect("schemathesis finishes within 5 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis failed:\n{stdout}\n{stderr}"
    );
    stdout
}
