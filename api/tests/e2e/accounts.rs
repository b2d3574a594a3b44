//! Signup to signed mail, end to end on the real stack (main database, Postfix, Dovecot): the new
//! mailbox logs in to IMAP with its password, may not send while its domain is pending, and once
//! an admin approves it sends mail whose DKIM signature an independent verifier (dkimpy) accepts
//! with the key the DNS endpoint publishes. Needs `deploy/infra-up.sh` and python3 with dkimpy
//! (`pip install dkimpy`, which deploy/test.sh does, or Debian's `python3-dkim`).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

async fn imap_login(app: &TestApp, user: &str, password: &str) -> bool {
    let imap = &app.settings.imap;
    let tcp = tokio::net::TcpStream::connect((imap.host.as_str(), imap.port))
        .await
        .expect("Dovecot on the IMAP port (deploy/infra-up.sh)");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.unwrap();
    match client.login(user, password).await {
        Ok(mut session) => {
            session
                .select("INBOX")
                .await
                .expect("INBOX of a new mailbox");
            let _ = session.logout().await;
            true
        }
        Err(_) => false,
    }
}

/// A python3 that has dkimpy: the one on PATH (deploy/test.sh pip-installs it there), then the
/// system one (Debian's python3-dkim).
fn python_with_dkim() -> &'static str {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import dkim"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("python3 with dkimpy: pip install dkimpy (or apt-get install python3-dkim)")
}

/// Runs dkimpy's verifier over `raw`, answering its DNS query for `record_name` with
/// `record_value` only (any other name gets nothing). Returns dkimpy's verdict and its log.
fn dkimpy_verify(raw: &[u8], record_name: &str, record_value: &str) -> (bool, String) {
    const SCRIPT: &str = r#"
import logging, sys, dkim, io
name, value = sys.argv[1], sys.argv[2]
log = io.StringIO()
logger = logging.getLogger("dkim"); logger.addHandler(logging.StreamHandler(log)); logger.setLevel(logging.DEBUG)
asked = []
def dnsfunc(qname, timeout=5):
    q = qname.decode() if isinstance(qname, bytes) else qname
    asked.append(q)
    return value.encode() if q.rstrip('.') == name else None
ok = dkim.verify(sys.stdin.buffer.read(), logger=logger, dnsfunc=dnsfunc)
print("asked:", asked)
print(log.getvalue())
sys.exit(0 if ok else 1)
"#;
    let mut child = Command::new(python_with_dkim())
        .args(["-c", SCRIPT, record_name, record_value])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), log)
}

async fn wait_submitted(app: &TestApp, token: &str, id: &str) {
    for _ in 0..300 {
        let s: Value = app
            .get(&format!("/mail/{id}/status"), Some(token))
            .await
            .json()
            .await
            .unwrap();
        if ["submitted", "sent"].contains(&s["status"].as_str().unwrap_or_default()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("message {id} was never submitted");
}

#[tokio::test]
async fn signup_login_approval_and_a_dkim_signed_message() {
    let app = TestApp::spawn_main_db(&[]).await;
    let domain = format!(
        "su-{}.test",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let me = format!("admin@{domain}");
    let password = "Signup-Password-1";

    let resp = app
        .http
        .post(app.api("/auth/signup"))
        .json(&json!({"domain": domain, "email": me, "password": password, "name": "E2E"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();

    // Dovecot reads our tables: the password works at once, a wrong one does not.
    assert!(
        imap_login(&app, &me, password).await,
        "IMAP login with the signup password"
    );
    assert!(!imap_login(&app, &me, "not-the-password").await);

    // Pending: sending from the domain is refused.
    let subject = format!("Signed {}", uuid::Uuid::new_v4().simple());
    let mail = json!({"from": me, "to": [me], "subject": subject, "body": {"text": "DKIM test\n"}});
    assert_error(
        app.post_json("/mail/send", &token, &mail).await,
        403,
        "DOMAIN_NOT_ALLOWED",
    )
    .await;

    let (admin_secret, admin_info) = api::tokens::create_token(
        &app.db,
        api::auth::TokenType::Admin,
        None,
        "e2e admin",
        None,
    )
    .await
    .unwrap();
    let admin = admin_secret.expose().to_owned();
    let r = app
        .post_json(&format!("/domains/{domain}/approve"), &admin, &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let dns: Value = app
        .get(&format!("/domains/{domain}/dns"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let dkim = dns["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["purpose"] == "dkim")
        .expect("a DKIM record once approved")
        .clone();

    // Approved: the message goes out, signed, and arrives in the sender's own mailbox.
    let stop = app.start_worker().stop;
    let r = app.post_json("/mail/send", &token, &mail).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_submitted(&app, &token, &id).await;
    let raw = app.fetch_inbox(&me, &subject).await;
    stop.cancel();
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains(&format!("d={domain}")),
        "signed for the domain:\n{text}"
    );
    assert!(text.contains(&format!("s={}", dns["dkim_selector"].as_str().unwrap())));

    // A manage_users holder adds a mailbox that can log in at once, and can switch it off.
    let grant = json!({"email": me, "domain": domain, "permissions": ["manage_users"]});
    assert_eq!(
        app.post_json("/permissions/bulk", &admin, &grant)
            .await
            .status(),
        201
    );
    let second = format!("second@{domain}");
    let r = app
        .post_json(
            &format!("/domains/{domain}/users"),
            &token,
            &json!({"email": second, "password": "second-pass-1"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert!(imap_login(&app, &second, "second-pass-1").await);
    let r = app
        .http
        .patch(app.api(&format!("/domains/{domain}/users/{second}")))
        .header("X-MAILAPI-TOKEN", &token)
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        !imap_login(&app, &second, "second-pass-1").await,
        "an inactive mailbox cannot log in"
    );

    let name = dkim["name"].as_str().unwrap();
    let value = dkim["value"].as_str().unwrap();
    let (ok, log) = dkimpy_verify(&raw, name, value);
    // The same check fails with another key, so the verdict above means something.
    let other = {
        let key = api::routes::domains::dkim::generate_rsa(chrono::Utc::now()).unwrap();
        shared::dkim::txt_value(
            shared::dkim::Algorithm::Rsa,
            &shared::dkim::public_key_record(shared::dkim::Algorithm::Rsa, &key.public).unwrap(),
        )
    };
    let (forged, forged_log) = dkimpy_verify(&raw, name, &other);

    sqlx::query("delete from domains where domain = $1")
        .bind(&domain)
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("delete from api_tokens where id = $1")
        .bind(admin_info.id)
        .execute(&app.db)
        .await
        .unwrap();

    // Asserted after the clean-up so that a failure leaves no domain behind.
    assert!(
        ok,
        "dkimpy verifies the signature with the published key:\n{log}\n{text}"
    );
    assert!(!forged, "a different key must not verify");
    assert!(
        forged_log.contains("valid: False"),
        "dkimpy ran and said no: {forged_log}"
    );
}
