//! `/openapi.json`, `/docs` and `/redoc`: the document is OpenAPI 3.1 and lists exactly the
//! routes the router serves (a route added without an annotation fails here), the two viewers
//! load nothing from another origin, and schemathesis (PyPI) fuzzing every operation with an
//! admin token finds no 5xx and no response outside the documented schemas.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use testkit::TestApp;

/// Every (method, path) the router serves, read off `api/src/routes/**/*.rs` by hand. The
/// source scan below keeps this list honest about paths; the document must match it exactly.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/dashboard"),
    ("get", "/dashboard/app.js"),
    ("get", "/dashboard/style.css"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/docs/"),
    ("get", "/docs/{rest}"),
    ("get", "/redoc"),
    ("get", "/redoc/redoc.standalone.js"),
    ("get", "/api/v1/tokens/me"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("post", "/api/v1/mail/send"),
    ("get", "/api/v1/mail/sent"),
    ("get", "/api/v1/mail/{message_id}/status"),
    ("get", "/api/v1/mail/{message_id}/events"),
    ("get", "/api/v1/mailbox/{email}/folders"),
    ("get", "/api/v1/mailbox/{email}/messages"),
    ("get", "/api/v1/mailbox/{email}/messages/{uid}"),
    ("delete", "/api/v1/mailbox/{email}/messages/{uid}"),
    (
        "get",
        "/api/v1/mailbox/{email}/messages/{uid}/attachment/{index}",
    ),
    ("post", "/api/v1/mailbox/{email}/messages/{uid}/flags"),
    ("post", "/api/v1/mailbox/{email}/messages/{uid}/move"),
    ("get", "/api/v1/mailbox/{email}/search"),
    ("get", "/api/v1/domains/pending"),
    ("patch", "/api/v1/domains/{domain}"),
    ("post", "/api/v1/domains/{domain}/approve"),
    ("get", "/api/v1/domains/{domain}/dns"),
    ("post", "/api/v1/domains/{domain}/dns/verify"),
    ("get", "/api/v1/domains/{domain}/users"),
    ("post", "/api/v1/domains/{domain}/users"),
    ("patch", "/api/v1/domains/{domain}/users/{email}"),
    ("delete", "/api/v1/domains/{domain}/users/{email}"),
    ("post", "/api/v1/permissions/bulk"),
    ("get", "/api/v1/permissions"),
    ("delete", "/api/v1/permissions/{id}"),
    ("post", "/api/v1/auth/signup"),
    ("get", "/api/v1/suppressions"),
    ("post", "/api/v1/suppressions"),
    ("delete", "/api/v1/suppressions/{domain}/{email}"),
    ("get", "/api/v1/stats/delivery"),
    ("get", "/api/v1/stats/domain/{domain}"),
    ("get", "/api/v1/queue"),
];

/// Routes that answer without a token.
const PUBLIC: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/dashboard",
    "/dashboard/app.js",
    "/dashboard/style.css",
    "/openapi.json",
    "/docs",
    "/docs/",
    "/docs/{rest}",
    "/redoc",
    "/redoc/redoc.standalone.js",
    "/api/v1/auth/signup",
];

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let resp = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("the document is JSON")
}

#[tokio::test]
async fn document_is_openapi_3_1_and_lists_every_route() {
    let app = TestApp::spawn(&[]).await;
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi version {version}");

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                documented.insert((method.to_string(), path.clone()));
                check_operation(path, method, op);
            }
        }
    }
    let expected: BTreeSet<_> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "routes without documentation: {missing:?}"
    );
    assert!(extra.is_empty(), "documented but not in ROUTES: {extra:?}");

    let scheme = &doc["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["type"], "apiKey", "{scheme}");
    assert_eq!(scheme["in"], "header");
    assert_eq!(scheme["name"], "X-MAILAPI-TOKEN");
    let error = &doc["components"]["schemas"]["ErrorBody"];
    for field in ["success", "error", "message"] {
        assert!(error["properties"].get(field).is_some(), "{error}");
    }
}

/// Security as the router applies it, and the error shape on every error response.
fn check_operation(path: &str, method: &str, op: &Value) {
    let security = op.get("security").and_then(Value::as_array);
    let open = security.is_some_and(|s| {
        s.iter()
            .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
    });
    assert_eq!(
        open,
        PUBLIC.contains(&path),
        "{method} {path}: security {security:?}"
    );
    let responses = op["responses"].as_object().expect("responses");
    assert!(
        responses
            .keys()
            .any(|s| s.starts_with('2') || s.starts_with('3')),
        "{method} {path} documents no success"
    );
    if path.starts_with("/api/v1/") {
        for status in ["500", "503"] {
            assert!(
                responses.contains_key(status),
                "{method} {path} lacks {status}"
            );
        }
        if !open {
            assert!(responses.contains_key("401"), "{method} {path} lacks 401");
        }
        for (status, resp) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &resp["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
}

/// Every path string given to `.route(` in the routes' sources is in ROUTES (under `/api/v1`
/// for the authenticated modules), so ROUTES cannot fall behind the router.
#[test]
fn routes_list_covers_the_sources() {
    let mut found = Vec::new();
    collect_route_paths(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes"),
        &mut found,
    );
    assert!(found.len() >= 30, "scan found only {found:?}");
    for (file, path) in found {
        let known = ROUTES
            .iter()
            .any(|(_, p)| *p == path || *p == format!("/api/v1{path}"));
        assert!(
            known,
            "{file}: route {path} is not in ROUTES (nor documented)"
        );
    }
}

fn collect_route_paths(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_route_paths(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split(".route(").skip(1) {
                let rest = piece.trim_start();
                if let Some(quoted) = rest.strip_prefix('"')
                    && let Some(end) = quoted.find('"')
                {
                    out.push((path.display().to_string(), quoted[..end].to_owned()));
                }
            }
        }
    }
}

/// Each documented operation is served: with sample parameters, none falls through to the
/// router's 404/405 fallbacks.
#[tokio::test]
async fn every_documented_route_is_served() {
    let app = TestApp::spawn(&[]).await;
    let token = app.admin_token().await;
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (method, path) in ROUTES {
        let url = app.url(
            &path
                .replace("{rest}", "index.css")
                .replace("{email}", "a@example.com")
                .replace("{domain}", "example.com")
                .replace("{message_id}", "0190b1c2-0000-7000-8000-000000000000")
                .replace("{id}", "999999")
                .replace("{uid}", "1")
                .replace("{index}", "0"),
        );
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = no_redirect
            .request(method.clone(), &url)
            .header("X-MAILAPI-TOKEN", &token)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(
            !body.contains("No such endpoint"),
            "{method} {path} is not routed: {status} {body}"
        );
    }
}

#[tokio::test]
async fn docs_and_redoc_load_only_same_origin_assets() {
    let app = TestApp::spawn(&[]).await;
    for (page, needle) in [
        ("/docs", "swagger-ui"),
        ("/redoc", "Redoc.init('/openapi.json'"),
    ] {
        let resp = app.http.get(app.url(page)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{page}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/html"), "{page}: {ct}");
        let base = resp.url().clone();
        let html = resp.text().await.unwrap();
        assert!(html.contains(needle), "{page}: {html}");
        let assets = asset_refs(&html);
        assert!(!assets.is_empty(), "{page} references no assets");
        for asset in assets {
            assert!(
                !asset.contains("//"),
                "{page} loads {asset} from another origin"
            );
            let url = base.join(&asset).unwrap();
            let resp = app.http.get(url.clone()).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{page}: {url}");
        }
    }
    let js = app
        .http
        .get(app.url("/redoc/redoc.standalone.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().contains("Redoc"));
}

/// `src="..."` and `href="..."` values of a page.
fn asset_refs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for piece in html.split(attr).skip(1) {
            if let Some(end) = piece.find('"') {
                out.push(piece[..end].to_owned());
            }
        }
    }
    out
}

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
