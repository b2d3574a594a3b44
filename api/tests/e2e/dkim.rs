//! DKIM checked the way receivers check it. Mail from a domain approved through the API goes
//! through the worker and the real Postfix to the accept-all sink; an independent verifier
//! (Python's dkimpy, with PyNaCl for Ed25519) checks the copy the sink wrote against the records
//! `GET /domains/{domain}/dns` publishes: the RSA signature alone, then RSA and Ed25519 once a
//! `manage_domains` holder turns Ed25519 on with `PATCH /domains/{domain}`.
//!
//! Needs `deploy/infra-up.sh` (Postfix, the sink on 2525 writing to MAILAPI_SINK_DIR) and
//! python3 with dkimpy and PyNaCl (deploy/test.sh pip-installs both).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

/// Every field the signer covers, each of them present in the test messages.
const SIGNED: [&str; 11] = [
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

/// dkimpy's verdict on each DKIM-Signature of a message, in the order they appear.
#[derive(Debug)]
struct Verdict {
    algorithm: String,
    selector: String,
    signed: Vec<String>,
    ok: bool,
}

/// Runs dkimpy over `raw`, answering its DNS queries from `records` (name → TXT value) and
/// nothing else. Returns its verdict per signature and its debug log.
fn dkimpy(raw: &[u8], records: &[(String, String)]) -> (Vec<Verdict>, String) {
    const SCRIPT: &str = r#"
import io, json, logging, sys
import dkim, dkim.util
import nacl  # dkimpy verifies ed25519-sha256 with PyNaCl; fail here, not with a vague verdict
records = dict(json.loads(sys.argv[1]))
log = io.StringIO()
logger = logging.getLogger("dkim"); logger.addHandler(logging.StreamHandler(log)); logger.setLevel(logging.DEBUG)
def dnsfunc(qname, timeout=5):
    q = (qname.decode() if isinstance(qname, bytes) else qname).rstrip(".")
    v = records.get(q)
    return v.encode() if v is not None else None
message = sys.stdin.buffer.read()
d = dkim.DKIM(message, logger=logger)
sigs = [v for (k, v) in d.headers if k.lower() == b"dkim-signature"]
out = []
for i, sig in enumerate(sigs):
    tags = dkim.util.parse_tag_value(sig)
    try:
        ok = d.verify(idx=i, dnsfunc=dnsfunc)
    except dkim.DKIMException as e:  # e.g. a body hash mismatch: a "no", as dkim.verify() says
        print(f"signature {i}: {e}", file=log)
        ok = False
    out.append({"a": tags[b"a"].decode(), "s": tags[b"s"].decode(),
                "h": [h.strip().decode() for h in tags[b"h"].split(b":")], "ok": bool(ok)})
print(json.dumps(out))
print(log.getvalue(), file=sys.stderr)
"#;
    let python = ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import dkim, nacl"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .expect("python3 with dkimpy and PyNaCl: pip install dkimpy pynacl (deploy/test.sh does)");
    let mut child = Command::new(python)
        .args(["-c", SCRIPT, &serde_json::to_string(records).unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "dkimpy failed to run:\n{log}");
    let verdicts: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let verdicts = verdicts
        .into_iter()
        .map(|v| Verdict {
            algorithm: v["a"].as_str().unwrap().to_owned(),
            selector: v["s"].as_str().unwrap().to_owned(),
            signed: v["h"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap().to_owned())
                .collect(),
            ok: v["ok"].as_bool().unwrap(),
        })
        .collect();
    (verdicts, log)
}

/// The DKIM records the DNS endpoint tells the domain to publish, as (name, value).
async fn published_dkim(
    app: &TestApp,
    token: &str,
    domain: &str,
) -> (Value, Vec<(String, String)>) {
    let dns: Value = app
        .get(&format!("/domains/{domain}/dns"), Some(token))
        .await
        .json()
        .await
        .unwrap();
    let records = dns["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["purpose"] == "dkim")
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (dns, records)
}

/// Sends the message that exercises every signed field, a custom field, a multipart body
/// (text and HTML alternatives) and a binary attachment; returns its `<id@domain>`.
async fn send_full_message(app: &TestApp, token: &str, domain: &str) -> String {
    let attachment: Vec<u8> = (0..=255u8).cycle().take(5_000).collect();
    let body = json!({
        "from": format!("Sënder Näme <sender@{domain}>"),
        "to": ["first@sink-ok.test", "Second Person <second@sink-ok.test>"],
        "cc": ["copy@sink-ok.test"],
        "reply_to": format!("replies@{domain}"),
        "subject": format!("Grüße {}: a subject long enough that the MIME builder folds it", uuid::Uuid::new_v4().simple()),
        "body": {
            "text": "Plain  text   with runs of spaces \t\nand trailing blank lines\n\n\n",
            "html": "<p>HTML <b>body</b></p>",
        },
        "headers": {
            "X-Custom-Header": "custom value",
            "List-Unsubscribe": format!("<https://{domain}/unsubscribe/1>, <mailto:unsubscribe@{domain}>"),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "attachments": [{
            "filename": "report.bin",
            "content": base64::engine::general_purpose::STANDARD.encode(&attachment),
            "content_type": "application/octet-stream",
        }],
    });
    let r = app.post_json("/mail/send", token, &body).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = uuid::Uuid::parse_str(&id).unwrap();
    shared::outgoing::rfc_message_id(id, domain)
}

/// The sink's copy of the message with this Message-ID, as it was on the wire: smtp-sink stores
/// lines with LF endings, SMTP carries CRLF.
async fn from_sink(message_id: &str) -> Vec<u8> {
    let dir = PathBuf::from(
        std::env::var("MAILAPI_SINK_DIR")
            .expect("MAILAPI_SINK_DIR (source /etc/mailapi/mailapi.env; deploy/infra-up.sh)"),
    );
    let needle = format!("\nMessage-ID: {message_id}\n");
    for _ in 0..600 {
        for entry in std::fs::read_dir(&dir).expect("MAILAPI_SINK_DIR").flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            if text.contains(&needle) {
                return text.replace('\n', "\r\n").into_bytes();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no message {message_id} reached the sink on 2525 within 60 s");
}

fn oversigned() -> Vec<String> {
    SIGNED
        .iter()
        .flat_map(|h| [h.to_string(), h.to_string()])
        .collect()
}

/// Replaces the first `from` in `raw` (which must be there).
fn tamper(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    assert!(text.contains(from), "{from:?} not in the message");
    text.replacen(from, to, 1).into_bytes()
}

#[tokio::test]
async fn dkimpy_verifies_rsa_then_rsa_and_ed25519_signatures_on_mail_from_the_sink() {
    let app = TestApp::spawn_main_db(&[]).await;
    let domain = format!(
        "dkim-{}.test",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let domain_id = app.domain(&domain, false).await;
    let sender = format!("sender@{domain}");
    let user = app.mailbox_with_token(&sender, domain_id).await;
    let admin = app.admin_token().await;

    // Approval makes the RSA key; Ed25519 cannot be turned on before it.
    let patch = |token: &str, body: Value| {
        app.http
            .patch(app.api(&format!("/domains/{domain}")))
            .header("X-MAILAPI-TOKEN", token.to_owned())
            .json(&body)
            .send()
    };
    assert_error(
        patch(&admin, json!({"dkim_ed25519": true})).await.unwrap(),
        409,
        "DOMAIN_NOT_APPROVED",
    )
    .await;
    let r = app
        .post_json(&format!("/domains/{domain}/approve"), &admin, &json!({}))
        .await;
    assert_eq!(r.status(), 200);

    // 1. RSA only, the default. Each step starts a new worker, so a new key cache: it reads the
    // domain's keys as they are now.
    let worker = app.start_worker();
    let id = send_full_message(&app, &user, &domain).await;
    let raw = from_sink(&id).await;
    worker.shut_down().await;
    let (dns, records) = published_dkim(&app, &admin, &domain).await;
    let rsa_selector = dns["dkim_selector"].as_str().unwrap().to_owned();
    assert_eq!(dns["dkim_ed25519_selector"], Value::Null);
    assert_eq!(records.len(), 1, "{dns}");
    let (verdicts, log) = dkimpy(&raw, &records);
    assert_eq!(verdicts.len(), 1, "one signature:\n{log}");
    assert_eq!(
        (
            verdicts[0].algorithm.as_str(),
            verdicts[0].selector.as_str()
        ),
        ("rsa-sha256", rsa_selector.as_str())
    );
    assert_eq!(verdicts[0].signed, oversigned());
    assert!(verdicts[0].ok, "dkimpy: RSA signature\n{log}");

    // 2. A domain user may turn Ed25519 on once it holds manage_domains.
    assert_error(
        patch(&user, json!({"dkim_ed25519": true})).await.unwrap(),
        403,
        "ACCESS_DENIED",
    )
    .await;
    let grant = json!({"email": sender, "domain": domain, "permissions": ["manage_domains"]});
    assert_eq!(
        app.post_json("/permissions/bulk", &admin, &grant)
            .await
            .status(),
        201
    );
    let r = patch(&user, json!({"dkim_ed25519": true})).await.unwrap();
    assert_eq!(r.status(), 200);
    let on: Value = r.json().await.unwrap();
    assert_eq!(on["dkim_ed25519"], true);
    let ed_selector = on["dkim_ed25519_selector"].as_str().unwrap().to_owned();
    assert_ne!(ed_selector, rsa_selector);

    let worker = app.start_worker();
    let id = send_full_message(&app, &user, &domain).await;
    let raw = from_sink(&id).await;
    worker.shut_down().await;
    let (dns, records) = published_dkim(&app, &user, &domain).await;
    assert_eq!(dns["dkim_ed25519_selector"], ed_selector.as_str());
    assert_eq!(records.len(), 2, "{dns}");
    assert!(records[0].1.starts_with("v=DKIM1; k=rsa; p="));
    assert!(records[1].1.starts_with("v=DKIM1; k=ed25519; p="));
    assert_eq!(records[1].0, format!("{ed_selector}._domainkey.{domain}"));

    let (verdicts, log) = dkimpy(&raw, &records);
    let summary: Vec<(&str, &str, bool)> = verdicts
        .iter()
        .map(|v| (v.algorithm.as_str(), v.selector.as_str(), v.ok))
        .collect();
    // RSA first, then Ed25519, and dkimpy accepts both with the published keys.
    assert_eq!(
        summary,
        [
            ("rsa-sha256", rsa_selector.as_str(), true),
            ("ed25519-sha256", ed_selector.as_str(), true)
        ],
        "\n{log}"
    );
    for v in &verdicts {
        assert_eq!(v.signed, oversigned());
    }

    // The verdicts mean something: another key, a changed signed field, a changed attachment
    // byte, or a second From each make dkimpy say no.
    let other_rsa = {
        let key = api::routes::domains::dkim::generate_rsa(chrono::Utc::now()).unwrap();
        shared::dkim::txt_value(
            shared::dkim::Algorithm::Rsa,
            &shared::dkim::public_key_record(shared::dkim::Algorithm::Rsa, &key.public).unwrap(),
        )
    };
    let other_ed = {
        let key = api::routes::domains::dkim::generate_ed25519(chrono::Utc::now()).unwrap();
        shared::dkim::txt_value(shared::dkim::Algorithm::Ed25519, &key.public)
    };
    let forged = [
        (records[0].0.clone(), other_rsa),
        (records[1].0.clone(), other_ed),
    ];
    let (v, log) = dkimpy(&raw, &forged);
    assert!(
        v.iter().all(|v| !v.ok),
        "other keys must not verify:\n{log}"
    );
    let text = String::from_utf8_lossy(&raw).into_owned();
    let attachment_line = text
        .lines()
        .find(|l| l.starts_with("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"))
        .expect("the attachment's first base64 line")
        .to_owned();
    for broken in [
        tamper(&raw, "Subject: ", "Subject: Re: "),
        tamper(&raw, "Cc: ", "Cc: extra@sink-ok.test, "),
        tamper(
            &raw,
            "List-Unsubscribe=One-Click",
            "List-Unsubscribe=Two-Click",
        ),
        tamper(
            &raw,
            &attachment_line,
            &attachment_line.replacen('A', "B", 1),
        ),
        tamper(&raw, "\r\nFrom: ", "\r\nFrom: ceo@elsewhere.test\r\nFrom: "),
    ] {
        let (v, log) = dkimpy(&broken, &records);
        assert_eq!(v.len(), 2);
        assert!(
            v.iter().all(|v| !v.ok),
            "tampered mail must not verify:\n{log}"
        );
    }

    // Off again: the key is kept, the record is no longer listed.
    let off: Value = patch(&user, json!({"dkim_ed25519": false}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(off["dkim_ed25519"], false);
    assert_eq!(off["dkim_ed25519_selector"], ed_selector.as_str());
    let (_, records) = published_dkim(&app, &user, &domain).await;
    assert_eq!(records.len(), 1);

    sqlx::query("delete from domains where id = $1")
        .bind(domain_id)
        .execute(&app.db)
        .await
        .unwrap();
}
