//! Mailboxes over REST against the real Dovecot: messages go in by IMAP APPEND (as the master
//! user) or through Postfix on port 25, and come out through the API.
//!
//! Each test uses its own `<uuid>.test` domain on the main database (the one Dovecot reads) and
//! removes it, its tokens and its maildirs when it ends, even when it fails.

use std::time::Duration;

use api::auth::TokenType;
use base64::Engine as _;
use futures::StreamExt;
use serde_json::{Value, json};
use testkit::{TestApp, assert_error};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// Fixture

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

// ---------------------------------------------------------------------------------------------
// IMAP and SMTP helpers

type Imap = async_imap::Session<TcpStream>;

/// Logs in as `email` through the master user, as the API does.
async fn imap_as(email: &str) -> Imap {
    let tcp = TcpStream::connect(("127.0.0.1", 143))
        .await
        .expect("Dovecot IMAP on 127.0.0.1:143 (run deploy/infra-up.sh)");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.unwrap().expect("greeting");
    let master = testkit::env_or("MAILAPI_IMAP_MASTER_USER", "mailapi-master");
    let password = std::env::var("MAILAPI_IMAP_MASTER_PASSWORD")
        .expect("MAILAPI_IMAP_MASTER_PASSWORD (source /etc/mailapi/mailapi.env)");
    client
        .login(format!("{email}*{master}"), password)
        .await
        .map_err(|(e, _)| e)
        .expect("master login")
}

/// Appends `raw` to `folder` and returns its UID.
async fn append(email: &str, folder: &str, flags: Option<&str>, raw: &[u8]) -> u32 {
    let mut s = imap_as(email).await;
    let status = s.status(folder, "(UIDNEXT)").await.expect("STATUS");
    let uid = status.uid_next.expect("UIDNEXT");
    s.append(folder, flags, None, raw).await.expect("APPEND");
    s.logout().await.ok();
    uid
}

/// CRLF line endings, as a message on the wire has.
fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

fn plain_message(to: &str, i: u32) -> Vec<u8> {
    crlf(&format!(
        "From: Sender {i} <sender{i}@example.com>\n\
         To: {to}\n\
         Subject: Page message {i}\n\
         Date: Mon, 23 Nov 2026 10:{i:02}:00 +0000\n\
         Message-ID: <page{i}@example.com>\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\
         \n\
         Plain body number {i}.\n"
    ))
}

const LATIN1_SUBJECT: &str = "Grüße aus Köln – Квартальный отчёт";

/// Non-ASCII subject and names, ISO-8859-1 quoted-printable body, Cc, extra headers.
fn latin1_message(to: &str) -> Vec<u8> {
    let subject = base64::engine::general_purpose::STANDARD.encode(LATIN1_SUBJECT);
    let mut raw = crlf(&format!(
        "From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.com>\n\
         To: \"Alice\" <{to}>\n\
         Cc: =?ISO-8859-1?Q?Ren=E9e?= <renee@example.com>, carol@example.com\n\
         Reply-To: juergen@example.com\n\
         Subject: =?UTF-8?B?{subject}?=\n\
         Date: Tue, 24 Nov 2026 09:30:00 +0100\n\
         Message-ID: <latin1@example.com>\n\
         X-Priority: 1\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=ISO-8859-1\n\
         Content-Transfer-Encoding: quoted-printable\n\
         \n"
    ));
    raw.extend_from_slice(
        b"Gr=FC=DFe aus K=F6ln, wir besprechen die Tagesordnung f=FCr das Meeting morgen.\r\n",
    );
    raw
}

/// Bytes that survive nothing but a faithful decoder: every byte value, CR, LF and NUL.
fn binary_payload() -> Vec<u8> {
    let mut v: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    v.extend_from_slice(b"\r\n\0\r\r\n%PDF-1.4 end");
    v
}

fn png_payload() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..200u8).map(|b| b.wrapping_mul(7)));
    v
}

const PDF_NAME: &str = "Übersicht Q3 – Bericht.pdf";

/// mixed( alternative( text, related( html, inline image with Content-ID ) ),
///        PDF with a non-ASCII RFC 2231 name, a forwarded message )
fn nested_message(to: &str) -> Vec<u8> {
    let b64 = |d: &[u8]| {
        let s = base64::engine::general_purpose::STANDARD.encode(d);
        s.as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let pdf_name_2231: String = PDF_NAME
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    crlf(&format!(
        "From: \"Карл Öhman\" <karl@example.com>\n\
         To: {to}\n\
         Subject: Quarterly report\n\
         Date: Wed, 25 Nov 2026 08:00:00 +0000\n\
         Message-ID: <nested@example.com>\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\n\
         \n\
         --outer\n\
         Content-Type: multipart/alternative; boundary=\"alt\"\n\
         \n\
         --alt\n\
         Content-Type: text/plain; charset=utf-8\n\
         \n\
         See the quarterly report attached, with the budget figures.\n\
         --alt\n\
         Content-Type: multipart/related; boundary=\"rel\"\n\
         \n\
         --rel\n\
         Content-Type: text/html; charset=utf-8\n\
         \n\
         <p>See the <b>quarterly</b> report <img src=\"cid:logo123@example.com\"></p>\n\
         --rel\n\
         Content-Type: image/png; name=\"logo.png\"\n\
         Content-ID: <logo123@example.com>\n\
         Content-Disposition: inline; filename=\"logo.png\"\n\
         Content-Transfer-Encoding: base64\n\
         \n\
         {png}\n\
         --rel--\n\
         --alt--\n\
         --outer\n\
         Content-Type: application/pdf\n\
         Content-Disposition: attachment; filename*=UTF-8''{pdf_name_2231}\n\
         Content-Transfer-Encoding: base64\n\
         \n\
         {pdf}\n\
         --outer\n\
         Content-Type: message/rfc822\n\
         \n\
         From: someone@example.com\n\
         Subject: Forwarded inner\n\
         \n\
         Inner body.\n\
         --outer--\n",
        png = b64(&png_payload()),
        pdf = b64(&binary_payload()),
    ))
}

/// Delivers through Postfix's MX port, as the outside world would.
async fn smtp_deliver(to: &str, raw: &[u8]) {
    let tcp = TcpStream::connect(("127.0.0.1", 25))
        .await
        .expect("Postfix on 127.0.0.1:25 (run deploy/infra-up.sh)");
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    let mut expect = async |code: &str| {
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            assert!(line.starts_with(code), "SMTP expected {code}, got {line:?}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    };
    expect("220").await;
    for (cmd, code) in [
        ("EHLO test.local\r\n".to_owned(), "250"),
        ("MAIL FROM:<sender@example.com>\r\n".to_owned(), "250"),
        (format!("RCPT TO:<{to}>\r\n"), "250"),
        ("DATA\r\n".to_owned(), "354"),
    ] {
        w.write_all(cmd.as_bytes()).await.unwrap();
        expect(code).await;
    }
    w.write_all(raw).await.unwrap();
    w.write_all(b".\r\n").await.unwrap();
    expect("250").await;
    w.write_all(b"QUIT\r\n").await.unwrap();
}

fn messages(body: &Value) -> &Vec<Value> {
    body["messages"].as_array().expect("messages array")
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn folders_with_counts_and_sizes() {
    let f = Fixture::new().await;
    let a = plain_message(&f.alice, 1);
    let b = latin1_message(&f.alice);
    append(&f.alice, "INBOX", Some("(\\Seen)"), &a).await;
    append(&f.alice, "INBOX", None, &b).await;
    // A folder with a non-ASCII name travels as modified UTF-7 and comes back readable.
    let mut s = imap_as(&f.alice).await;
    s.create("Entw&APw-rfe 2024").await.unwrap();
    s.logout().await.ok();
    append(&f.alice, "Entw&APw-rfe 2024", None, &a).await;

    let body = f
        .get_json(&format!("/mailbox/{}/folders", f.alice), &f.alice_token)
        .await;
    assert_eq!(body["mailbox"], f.alice);
    let folders = body["folders"].as_array().unwrap();
    let names: Vec<&str> = folders.iter().filter_map(|x| x["name"].as_str()).collect();
    for expected in ["INBOX", "Sent", "Drafts", "Trash", "Spam", "Entwürfe 2024"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let inbox = folders.iter().find(|x| x["name"] == "INBOX").unwrap();
    assert_eq!(inbox["messages"], 2);
    assert_eq!(inbox["unread"], 1);
    assert_eq!(inbox["size"], (a.len() + b.len()) as u64, "{inbox}");
    let sent = folders.iter().find(|x| x["name"] == "Sent").unwrap();
    assert_eq!(sent["messages"], 0);
    assert_eq!(sent["size"], 0);

    let list = f
        .get_json(
            &format!("/mailbox/{}/messages?folder=Entw%C3%BCrfe%202024", f.alice),
            &f.alice_token,
        )
        .await;
    assert_eq!(list["folder"], "Entwürfe 2024");
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn message_list_pages_newest_first() {
    let f = Fixture::new().await;
    let mut uids = Vec::new();
    for i in 1..=5 {
        let flags = (i == 2).then_some("(\\Seen \\Flagged)");
        uids.push(append(&f.alice, "INBOX", flags, &plain_message(&f.alice, i)).await);
    }
    let nested_uid = append(&f.alice, "INBOX", None, &nested_message(&f.alice)).await;
    let latin_uid = append(&f.alice, "INBOX", None, &latin1_message(&f.alice)).await;
    let base = format!("/mailbox/{}/messages", f.alice);

    // Defaults: INBOX, 50, newest first.
    let all = f.get_json(&base, &f.alice_token).await;
    assert_eq!(all["folder"], "INBOX");
    assert_eq!(all["total"], 7);
    let got: Vec<u64> = messages(&all)
        .iter()
        .map(|m| m["uid"].as_u64().unwrap())
        .collect();
    let mut want: Vec<u64> = uids.iter().map(|u| u64::from(*u)).collect();
    want.push(u64::from(nested_uid));
    want.push(u64::from(latin_uid));
    want.reverse();
    assert_eq!(got, want);

    // Decoded fields.
    let latin = &messages(&all)[0];
    assert_eq!(latin["subject"], LATIN1_SUBJECT);
    assert_eq!(
        latin["from"],
        json!({"name": "Jürgen Müller", "email": "juergen@example.com"})
    );
    assert_eq!(latin["to"], json!([{"name": "Alice", "email": f.alice}]));
    assert_eq!(latin["date"], "2026-11-24T08:30:00Z");
    assert_eq!(latin["message_id"], "<latin1@example.com>");
    assert_eq!(latin["has_attachments"], false);
    assert_eq!(latin["flags"], json!([]));
    assert_eq!(latin["size"], latin1_message(&f.alice).len() as u64);
    let nested = &messages(&all)[1];
    assert_eq!(nested["has_attachments"], true);
    assert_eq!(nested["from"]["name"], "Карл Öhman");
    let second = messages(&all).iter().find(|m| m["uid"] == uids[1]).unwrap();
    let mut flags: Vec<&str> = second["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    flags.sort();
    assert_eq!(flags, ["\\Flagged", "\\Seen"]);

    // Pages.
    let p = f
        .get_json(&format!("{base}?limit=2&offset=2"), &f.alice_token)
        .await;
    assert_eq!(p["total"], 7);
    let got: Vec<u64> = messages(&p)
        .iter()
        .map(|m| m["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(got, want[2..4]);
    let last = f
        .get_json(&format!("{base}?limit=5&offset=5"), &f.alice_token)
        .await;
    assert_eq!(messages(&last).len(), 2);
    let past = f
        .get_json(&format!("{base}?offset=7"), &f.alice_token)
        .await;
    assert!(messages(&past).is_empty());
    assert_eq!(past["total"], 7);

    for (bad, field) in [
        ("limit=0", "limit"),
        ("limit=-3", "limit"),
        ("offset=-1", "offset"),
        ("limit=abc", "limit"),
        ("offset=1.5", "offset"),
    ] {
        let body = assert_error(
            f.get(&format!("{base}?{bad}"), &f.alice_token).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(body["field"], field, "{bad}: {body}");
    }
}

/// The spec's "max 200": with more messages than that in the folder, `limit=500` is capped to a
/// page of 200 (listing and search), not refused.
#[tokio::test]
async fn pages_are_capped_at_200() {
    let f = Fixture::new().await;
    const STORED: u32 = 210;
    let mut s = imap_as(&f.alice).await;
    for i in 1..=STORED {
        s.append("INBOX", None, None, &plain_message(&f.alice, i % 60))
            .await
            .expect("APPEND");
    }
    s.logout().await.ok();

    let list = f
        .get_json(
            &format!("/mailbox/{}/messages?limit=500", f.alice),
            &f.alice_token,
        )
        .await;
    assert_eq!(list["total"], STORED);
    assert_eq!(list["limit"], 200);
    assert_eq!(messages(&list).len(), 200);
    let rest = f
        .get_json(
            &format!("/mailbox/{}/messages?limit=500&offset=200", f.alice),
            &f.alice_token,
        )
        .await;
    assert_eq!(messages(&rest).len(), (STORED - 200) as usize);

    let found = f
        .get_json(
            &format!("/mailbox/{}/search?q=Plain%20body&limit=500", f.alice),
            &f.alice_token,
        )
        .await;
    assert_eq!(found["total"], STORED);
    assert_eq!(messages(&found).len(), 200);
    let body = assert_error(
        f.get(
            &format!("/mailbox/{}/search?q=Plain%20body&offset=-1", f.alice),
            &f.alice_token,
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["field"], "offset", "{body}");
}

#[tokio::test]
async fn full_message_decodes_and_does_not_mark_seen() {
    let f = Fixture::new().await;
    let latin_uid = append(&f.alice, "INBOX", None, &latin1_message(&f.alice)).await;
    let nested_uid = append(&f.alice, "INBOX", None, &nested_message(&f.alice)).await;

    let path = format!("/mailbox/{}/messages/{latin_uid}", f.alice);
    let m = f.get_json(&path, &f.alice_token).await;
    assert_eq!(m["uid"], latin_uid);
    assert_eq!(m["subject"], LATIN1_SUBJECT);
    assert_eq!(m["message_id"], "<latin1@example.com>");
    assert_eq!(m["date"], "2026-11-24T08:30:00Z");
    assert_eq!(
        m["cc"],
        json!([
            {"name": "Renée", "email": "renee@example.com"},
            {"name": null, "email": "carol@example.com"}
        ])
    );
    assert_eq!(m["headers"]["X-Priority"], "1");
    assert_eq!(m["headers"]["Reply-To"], "juergen@example.com");
    assert_eq!(m["headers"]["Subject"], LATIN1_SUBJECT);
    assert_eq!(
        m["body"]["text"].as_str().unwrap().trim_end(),
        "Grüße aus Köln, wir besprechen die Tagesordnung für das Meeting morgen."
    );
    assert_eq!(m["attachments"], json!([]));
    assert_eq!(m["flags"], json!([]));
    // Reading twice: still unseen, because the API fetches with BODY.PEEK.
    let again = f.get_json(&path, &f.alice_token).await;
    assert_eq!(again["flags"], json!([]));
    let list = f
        .get_json(&format!("/mailbox/{}/folders", f.alice), &f.alice_token)
        .await;
    let inbox = list["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "INBOX")
        .unwrap()
        .clone();
    assert_eq!(inbox["unread"], 2);

    // Nested multipart: text and html bodies, inline image, attachment, forwarded message.
    let n = f
        .get_json(
            &format!("/mailbox/{}/messages/{nested_uid}?folder=INBOX", f.alice),
            &f.alice_token,
        )
        .await;
    assert!(
        n["body"]["text"]
            .as_str()
            .unwrap()
            .contains("quarterly report attached")
    );
    assert!(
        n["body"]["html"]
            .as_str()
            .unwrap()
            .contains("<b>quarterly</b>")
    );
    let atts = n["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 3, "{atts:?}");
    for (i, a) in atts.iter().enumerate() {
        assert_eq!(a["index"], i);
    }
    let logo = atts.iter().find(|a| a["filename"] == "logo.png").unwrap();
    assert_eq!(logo["content_type"], "image/png");
    assert_eq!(logo["content_id"], "logo123@example.com");
    assert_eq!(logo["size"], png_payload().len());
    let pdf = atts.iter().find(|a| a["filename"] == PDF_NAME).unwrap();
    assert_eq!(pdf["content_type"], "application/pdf");
    assert_eq!(pdf["size"], binary_payload().len());
    assert_eq!(pdf["content_id"], Value::Null);
    let fwd = atts
        .iter()
        .find(|a| a["content_type"] == "message/rfc822")
        .unwrap();
    assert!(fwd["size"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn attachments_download_byte_identical() {
    let f = Fixture::new().await;
    let uid = append(&f.alice, "INBOX", None, &nested_message(&f.alice)).await;
    let detail = f
        .get_json(
            &format!("/mailbox/{}/messages/{uid}", f.alice),
            &f.alice_token,
        )
        .await;
    let atts = detail["attachments"].as_array().unwrap();
    let index_of = |name: &str| {
        atts.iter()
            .find(|a| a["filename"] == name)
            .and_then(|a| a["index"].as_u64())
            .unwrap()
    };

    let pdf = f
        .get(
            &format!(
                "/mailbox/{}/messages/{uid}/attachment/{}",
                f.alice,
                index_of(PDF_NAME)
            ),
            &f.alice_token,
        )
        .await;
    assert_eq!(pdf.status(), 200);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let cd = pdf.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        cd,
        "attachment; filename*=UTF-8''%C3%9Cbersicht%20Q3%20%E2%80%93%20Bericht.pdf; \
         filename=\"_bersicht Q3 _ Bericht.pdf\""
    );
    assert_eq!(
        pdf.bytes().await.unwrap().as_ref(),
        binary_payload().as_slice()
    );

    let logo = f
        .get(
            &format!(
                "/mailbox/{}/messages/{uid}/attachment/{}?folder=INBOX",
                f.alice,
                index_of("logo.png")
            ),
            &f.alice_token,
        )
        .await;
    assert_eq!(logo.status(), 200);
    assert_eq!(logo.headers()["content-type"], "image/png");
    assert_eq!(
        logo.headers()["content-disposition"],
        "attachment; filename=\"logo.png\""
    );
    assert_eq!(
        logo.bytes().await.unwrap().as_ref(),
        png_payload().as_slice()
    );

    assert_error(
        f.get(
            &format!("/mailbox/{}/messages/{uid}/attachment/3", f.alice),
            &f.alice_token,
        )
        .await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_error(
        f.get(
            &format!("/mailbox/{}/messages/{}/attachment/0", f.alice, uid + 50),
            &f.alice_token,
        )
        .await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn a_large_attachment_downloads_intact() {
    let f = Fixture::new().await;
    let payload: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&payload);
    let mut raw = crlf(&format!(
        "From: big@example.com\n\
         To: {}\n\
         Subject: Big file\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"b\"\n\
         \n\
         --b\n\
         Content-Type: text/plain\n\
         \n\
         See attached.\n\
         --b\n\
         Content-Type: application/octet-stream\n\
         Content-Disposition: attachment; filename=\"big.bin\"\n\
         Content-Transfer-Encoding: base64\n\
         \n",
        f.alice
    ));
    for line in b64.as_bytes().chunks(76) {
        raw.extend_from_slice(line);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"--b--\r\n");
    let uid = append(&f.alice, "INBOX", None, &raw).await;
    let detail = f
        .get_json(
            &format!("/mailbox/{}/messages/{uid}", f.alice),
            &f.alice_token,
        )
        .await;
    assert_eq!(detail["attachments"][0]["size"], payload.len());
    let r = f
        .get(
            &format!("/mailbox/{}/messages/{uid}/attachment/0", f.alice),
            &f.alice_token,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        payload.len().to_string().as_str()
    );
    assert!(r.bytes().await.unwrap().as_ref() == payload.as_slice());
}

#[tokio::test]
async fn search_subject_sender_body_with_snippets() {
    let f = Fixture::new().await;
    for i in 1..=3 {
        append(&f.alice, "INBOX", None, &plain_message(&f.alice, i)).await;
    }
    let latin_uid = append(&f.alice, "INBOX", None, &latin1_message(&f.alice)).await;
    let nested_uid = append(&f.alice, "INBOX", None, &nested_message(&f.alice)).await;
    let base = format!("/mailbox/{}/search", f.alice);

    // Body, non-ASCII, in an ISO-8859-1 message: found, snippet around the match.
    let r = f
        .get_json(&format!("{base}?q=K%C3%B6ln"), &f.alice_token)
        .await;
    assert_eq!(r["query"], "Köln");
    assert_eq!(r["total"], 1, "{r}");
    let hit = &messages(&r)[0];
    assert_eq!(hit["uid"], latin_uid);
    assert_eq!(hit["folder"], "INBOX");
    assert_eq!(hit["subject"], LATIN1_SUBJECT);
    assert_eq!(hit["from"]["email"], "juergen@example.com");
    assert_eq!(hit["date"], "2026-11-24T08:30:00Z");
    assert!(hit["snippet"].as_str().unwrap().contains("Köln"), "{hit}");

    // Subject match; the snippet comes from the body of a multipart message.
    let r = f
        .get_json(&format!("{base}?q=QUARTERLY&folder=INBOX"), &f.alice_token)
        .await;
    assert_eq!(r["total"], 1);
    assert_eq!(messages(&r)[0]["uid"], nested_uid);
    assert!(
        messages(&r)[0]["snippet"]
            .as_str()
            .unwrap()
            .contains("quarterly report attached")
    );

    // Sender, several hits, newest first, limit.
    let r = f
        .get_json(&format!("{base}?q=example.com&limit=2"), &f.alice_token)
        .await;
    assert_eq!(r["total"], 5);
    let uids: Vec<u64> = messages(&r)
        .iter()
        .map(|m| m["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(uids, [u64::from(nested_uid), u64::from(latin_uid)]);

    // Restricting fields (beyond the spec): "budget" is only in a body.
    let r = f
        .get_json(&format!("{base}?q=budget&in=subject,from"), &f.alice_token)
        .await;
    assert_eq!(r["total"], 0);
    let r = f
        .get_json(&format!("{base}?q=budget&in=body"), &f.alice_token)
        .await;
    assert_eq!(r["total"], 1);

    // A term that tries to add a command is only ever a search string.
    let r = f
        .get_json(&format!("{base}?q=%22%20ALL%20%22%5C"), &f.alice_token)
        .await;
    assert_eq!(r["total"], 0);

    for bad in [
        "q=a",
        "q=",
        "",
        "q=%20x%20",
        "q=ab%0D%0AA1%20LOGOUT",
        "q=ab&in=nope",
    ] {
        assert_error(
            f.get(&format!("{base}?{bad}"), &f.alice_token).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
    }
}

#[tokio::test]
async fn flags_move_and_delete() {
    let f = Fixture::new().await;
    let uid = append(&f.alice, "INBOX", None, &plain_message(&f.alice, 1)).await;
    let msg =
        |uid: u32, folder: &str| format!("/mailbox/{}/messages/{uid}?folder={folder}", f.alice);
    let post =
        async |path: String, body: Value| f.app.post_json(&path, &f.alice_token, &body).await;

    let r = post(
        format!("/mailbox/{}/messages/{uid}/flags", f.alice),
        json!({"add": ["\\Seen", "\\Flagged"]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let mut flags: Vec<String> = serde_json::from_value(body["flags"].clone()).unwrap();
    flags.sort();
    assert_eq!(flags, ["\\Flagged", "\\Seen"]);
    let r = post(
        format!("/mailbox/{}/messages/{uid}/flags", f.alice),
        json!({"remove": ["\\Seen"]}),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["flags"], json!(["\\Flagged"]));
    assert_eq!(
        f.get_json(&msg(uid, "INBOX"), &f.alice_token).await["flags"],
        json!(["\\Flagged"])
    );
    assert_error(
        post(
            format!("/mailbox/{}/messages/{uid}/flags", f.alice),
            json!({"add": ["\\Deleted"]}),
        )
        .await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    assert_error(
        post(
            format!("/mailbox/{}/messages/999/flags", f.alice),
            json!({"add": ["\\Seen"]}),
        )
        .await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;

    // Move: to a missing folder is refused; to Spam works and reports the new UID.
    assert_error(
        post(
            format!("/mailbox/{}/messages/{uid}/move", f.alice),
            json!({"to_folder": "Nowhere"}),
        )
        .await,
        400,
        "INVALID_FOLDER",
    )
    .await;
    let r = post(
        format!("/mailbox/{}/messages/{uid}/move", f.alice),
        json!({"to_folder": "Spam"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let moved: Value = r.json().await.unwrap();
    assert_eq!(moved["to_folder"], "Spam");
    let spam_uid = moved["new_uid"].as_u64().unwrap() as u32;
    assert_error(
        f.get(&msg(uid, "INBOX"), &f.alice_token).await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;
    let in_spam = f.get_json(&msg(spam_uid, "Spam"), &f.alice_token).await;
    assert_eq!(in_spam["subject"], "Page message 1");

    // Delete: to Trash, then from Trash for good.
    let r = f
        .app
        .http
        .delete(f.app.api(&msg(spam_uid, "Spam")))
        .header("X-MAILAPI-TOKEN", &f.alice_token)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["to_folder"], "Trash", "{body}");
    assert_eq!(body["deleted"], false);
    let trash_uid = body["new_uid"].as_u64().unwrap() as u32;
    f.get_json(&msg(trash_uid, "Trash"), &f.alice_token).await;
    let r = f
        .app
        .http
        .delete(f.app.api(&msg(trash_uid, "Trash")))
        .header("X-MAILAPI-TOKEN", &f.alice_token)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["deleted"], true, "{body}");
    assert_error(
        f.get(&msg(trash_uid, "Trash"), &f.alice_token).await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn error_codes() {
    let f = Fixture::new().await;
    let uid = append(&f.alice, "INBOX", None, &plain_message(&f.alice, 1)).await;
    let a = &f.alice;
    let t = &f.alice_token;

    for path in [
        format!("/mailbox/{a}/messages?folder=Nope"),
        format!("/mailbox/{a}/messages/{uid}?folder=Nope"),
        format!("/mailbox/{a}/search?q=hello&folder=Nope"),
        // CR/LF/NUL never reach the server.
        format!("/mailbox/{a}/messages?folder=INBOX%0D%0AA1%20DELETE%20INBOX"),
        format!("/mailbox/{a}/messages?folder=IN%00BOX"),
        format!("/mailbox/{a}/messages?folder="),
    ] {
        assert_error(f.get(&path, t).await, 400, "INVALID_FOLDER").await;
    }
    // Quotes and backslashes are escaped, not interpreted.
    assert_error(
        f.get(
            &format!("/mailbox/{a}/messages?folder=INBOX%22%20%22x%5C"),
            t,
        )
        .await,
        400,
        "INVALID_FOLDER",
    )
    .await;
    for path in [
        format!("/mailbox/{a}/messages/{}", uid + 1),
        format!("/mailbox/{a}/messages/0"),
        format!("/mailbox/{a}/messages/4294967295"),
    ] {
        assert_error(f.get(&path, t).await, 404, "MESSAGE_NOT_FOUND").await;
    }
    assert_error(
        f.get(&format!("/mailbox/{a}/messages/abc"), t).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;
    // Unknown mailbox: 404 for whoever may look (admin, or view_mailbox on its domain).
    let ghost = format!("ghost@{}", f.domain);
    assert_error(
        f.get(&format!("/mailbox/{ghost}/folders"), &f.admin).await,
        404,
        "MAILBOX_NOT_FOUND",
    )
    .await;
    // ...and 403 for a user token, exactly as for an existing one.
    assert_error(
        f.get(&format!("/mailbox/{ghost}/folders"), t).await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    // An inactive mailbox cannot log in to Dovecot: to the API it does not exist.
    sqlx::query("update mailboxes set active = false where email = $1")
        .bind(&f.bob)
        .execute(&f.app.db)
        .await
        .unwrap();
    assert_error(
        f.get(&format!("/mailbox/{}/folders", f.bob), &f.admin)
            .await,
        404,
        "MAILBOX_NOT_FOUND",
    )
    .await;
    // The inbox still works after all that.
    let list = f.get_json(&format!("/mailbox/{a}/messages"), t).await;
    assert_eq!(list["total"], 1);
}

/// IMAP injection through every value that reaches Dovecot: folder names (list, read, search,
/// move), search terms and UIDs. Each is refused with a 4xx or matched literally, never run as
/// a command, and the mailbox is intact afterwards (same messages, same folders).
/// Seen failing before the fix it came with: `INBOX/../..` got Dovecot's `[CANNOT] Invalid
/// mailbox name`, which the API answered 500 IMAP_ERROR instead of 400 INVALID_FOLDER.
#[tokio::test]
async fn imap_injection_is_refused_or_taken_literally() {
    let f = Fixture::new().await;
    let uid = append(&f.alice, "INBOX", None, &plain_message(&f.alice, 1)).await;
    let a = &f.alice;
    let t = &f.alice_token;
    let folders_before = f.get_json(&format!("/mailbox/{a}/folders"), t).await;

    // Literals, wildcards and hierarchy tricks as folder names: no such folder, or not a name.
    for folder in [
        "%7B5%7D",               // {5}
        "%7B5%2B%7D%0D%0Aabcde", // {5+} CRLF abcde
        "*",
        "%25",             // %
        "INBOX%2F..%2F..", // INBOX/../..
        "%2Fx",            // /x
        "a%2F%2Fb",        // a//b
        "..",
        "INBOX%20(FLAGS)",
        "%22INBOX%22", // "INBOX"
        "INBOX%09x",   // TAB
    ] {
        for path in [
            format!("/mailbox/{a}/messages?folder={folder}"),
            format!("/mailbox/{a}/messages/{uid}?folder={folder}"),
            format!("/mailbox/{a}/search?q=hello&folder={folder}"),
        ] {
            assert_error(f.get(&path, t).await, 400, "INVALID_FOLDER").await;
        }
    }
    for to_folder in [
        "Spam\r\nA1 DELETE INBOX",
        "{5}",
        "Spam\" DELETE \"INBOX",
        "*",
        "",
    ] {
        let resp = f
            .app
            .http
            .post(f.app.api(&format!("/mailbox/{a}/messages/{uid}/move")))
            .header("X-MAILAPI-TOKEN", t)
            .json(&json!({ "to_folder": to_folder }))
            .send()
            .await
            .unwrap();
        assert_error(resp, 400, "INVALID_FOLDER").await;
    }

    // Search terms are data: literal syntax, quotes and IMAP keywords find nothing.
    for q in [
        "%7B5%7D",               // {5}
        "%7B5%2B%7D",            // {5+}
        "x%22%20OR%20ALL%20%22", // x" OR ALL "
        "ALL",
        "1%3A*", // 1:*
    ] {
        let found = f.get_json(&format!("/mailbox/{a}/search?q={q}"), t).await;
        assert_eq!(found["total"], 0, "q={q}: {found}");
    }
    let long = "a".repeat(513);
    assert_error(
        f.get(&format!("/mailbox/{a}/search?q={long}"), t).await,
        400,
        "VALIDATION_ERROR",
    )
    .await;

    // UIDs are numbers, never sets or ranges.
    for id in ["1:*", "1,2", "1%3A*", "*", "-1", "1%20", "%201"] {
        assert_error(
            f.get(&format!("/mailbox/{a}/messages/{id}"), t).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
    }

    // Nothing moved, nothing deleted, no folder made.
    let list = f.get_json(&format!("/mailbox/{a}/messages"), t).await;
    assert_eq!(list["total"], 1);
    let folders_after = f.get_json(&format!("/mailbox/{a}/folders"), t).await;
    let names = |v: &Value| {
        let mut n: Vec<(String, u64)> = v["folders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_owned(),
                    f["messages"].as_u64().unwrap(),
                )
            })
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&folders_before), names(&folders_after));
}

#[tokio::test]
async fn access_rules() {
    let f = Fixture::new().await;
    let uid = append(&f.bob, "INBOX", None, &nested_message(&f.bob)).await;
    let b = &f.bob;
    let reads = [
        format!("/mailbox/{b}/folders"),
        format!("/mailbox/{b}/messages"),
        format!("/mailbox/{b}/messages/{uid}"),
        format!("/mailbox/{b}/messages/{uid}/attachment/0"),
        format!("/mailbox/{b}/search?q=quarterly"),
    ];
    // Alice's user token: refused everywhere on Bob's mailbox, reads and changes alike.
    for path in &reads {
        assert_error(f.get(path, &f.alice_token).await, 403, "ACCESS_DENIED").await;
        assert_error(f.app.get(path, None).await, 401, "NO_API_TOKEN").await;
    }
    assert_error(
        f.app
            .post_json(
                &format!("/mailbox/{b}/messages/{uid}/flags"),
                &f.alice_token,
                &json!({"add": ["\\Seen"]}),
            )
            .await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    assert_error(
        f.app
            .post_json(
                &format!("/mailbox/{b}/messages/{uid}/move"),
                &f.alice_token,
                &json!({"to_folder": "Trash"}),
            )
            .await,
        403,
        "ACCESS_DENIED",
    )
    .await;
    let r = f
        .app
        .http
        .delete(f.app.api(&format!("/mailbox/{b}/messages/{uid}")))
        .header("X-MAILAPI-TOKEN", &f.alice_token)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "ACCESS_DENIED").await;
    // Case in the address does not get around it.
    assert_error(
        f.get(
            &format!("/mailbox/{}/folders", b.to_uppercase()),
            &f.alice_token,
        )
        .await,
        403,
        "ACCESS_DENIED",
    )
    .await;

    // Bob's own token, and an admin token, read it.
    for token in [&f.bob_token, &f.admin] {
        for path in &reads {
            let r = f.get(path, token).await;
            assert_eq!(r.status(), 200, "{path}");
        }
    }

    // view_mailbox on the domain opens every mailbox there to Alice.
    let alice_id: i64 = sqlx::query_scalar("select id from mailboxes where email = $1")
        .bind(&f.alice)
        .fetch_one(&f.app.db)
        .await
        .unwrap();
    sqlx::query("insert into permissions (mailbox_id, domain_id, permission) values ($1, $2, 'view_mailbox')")
        .bind(alice_id)
        .bind(f.domain_id)
        .execute(&f.app.db)
        .await
        .unwrap();
    for path in &reads {
        let r = f.get(path, &f.alice_token).await;
        assert_eq!(r.status(), 200, "{path}");
    }
    // ...but not another domain's mailboxes.
    assert_error(
        f.get("/mailbox/someone@other-domain.test/folders", &f.alice_token)
            .await,
        403,
        "ACCESS_DENIED",
    )
    .await;
}

#[tokio::test]
async fn postfix_delivery_shows_up() {
    let f = Fixture::new().await;
    let raw = crlf(&format!(
        "From: Outside <outside@example.com>\n\
         To: {}\n\
         Subject: Delivered by Postfix\n\
         Message-ID: <postfix-{}@example.com>\n\
         \n\
         Hello through LMTP.\n",
        f.alice, f.domain
    ));
    smtp_deliver(&f.alice, &raw).await;
    let path = format!("/mailbox/{}/messages", f.alice);
    let mut list = Value::Null;
    for _ in 0..100 {
        list = f.get_json(&path, &f.alice_token).await;
        if list["total"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(list["total"], 1, "not delivered within 10 s: {list}");
    let m = &messages(&list)[0];
    assert_eq!(m["subject"], "Delivered by Postfix");
    let uid = m["uid"].as_u64().unwrap();
    let full = f
        .get_json(
            &format!("/mailbox/{}/messages/{uid}", f.alice),
            &f.alice_token,
        )
        .await;
    assert!(
        full["headers"]["Received"]
            .as_str()
            .unwrap()
            .contains("Postfix")
    );
    assert_eq!(
        full["body"]["text"].as_str().unwrap().trim_end(),
        "Hello through LMTP."
    );
}

#[tokio::test]
async fn concurrent_requests_and_a_killed_connection() {
    let f = Fixture::new().await;
    for i in 1..=3 {
        append(&f.alice, "INBOX", None, &plain_message(&f.alice, i)).await;
    }
    let path = format!("/mailbox/{}/messages", f.alice);
    let requests = (0..20).map(|_| f.get(&path, &f.alice_token));
    for r in futures::future::join_all(requests).await {
        assert_eq!(r.status(), 200);
    }
    // Kill every IMAP connection of the user; the pool notices and reconnects.
    let out = std::process::Command::new("doveadm")
        .args(["kick", &f.alice])
        .output()
        .expect("doveadm");
    assert!(out.status.success(), "{out:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let list = f.get_json(&path, &f.alice_token).await;
        assert_eq!(list["total"], 3);
    }
}

#[tokio::test]
async fn a_stuck_imap_server_gives_imap_error() {
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let f = Fixture::with_overrides(&[("MAILAPI_IMAP_PORT", &port)]).await;
    let started = std::time::Instant::now();
    assert_error(
        f.get(&format!("/mailbox/{}/folders", f.alice), &f.alice_token)
            .await,
        500,
        "IMAP_ERROR",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(20));
    held.abort();

    // Nothing listening at all (Dovecot down): IMAP_ERROR at once.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let f = Fixture::with_overrides(&[("MAILAPI_IMAP_PORT", &port)]).await;
    assert_error(
        f.get(&format!("/mailbox/{}/messages", f.alice), &f.alice_token)
            .await,
        500,
        "IMAP_ERROR",
    )
    .await;
}

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

#[tokio::test]
async fn pool_bounds_reuse_and_eviction() {
    use api::imap::{ImapError, ImapPool, PoolConfig};
    let f = Fixture::new().await;
    let pool = ImapPool::new(
        f.app.settings.imap.clone(),
        PoolConfig {
            max_total: 3,
            max_per_mailbox: 2,
            acquire_timeout: Duration::from_millis(300),
            ..PoolConfig::default()
        },
    );
    let a1 = pool.acquire(&f.alice).await.unwrap();
    let a2 = pool.acquire(&f.alice).await.unwrap();
    // A third for the same mailbox waits for one of the two, then gives up.
    assert!(matches!(
        pool.acquire(&f.alice).await,
        Err(ImapError::PoolExhausted(_))
    ));
    let b1 = pool.acquire(&f.bob).await.unwrap();
    assert_eq!(pool.open_sessions(), 3);
    // Returned sessions are reused, not reopened.
    drop(a1);
    let a1 = pool.acquire(&f.alice).await.unwrap();
    assert_eq!(pool.open_sessions(), 3);
    drop(a1);
    // The pool is full: Bob's second session evicts Alice's idle one.
    let b2 = pool.acquire(&f.bob).await.unwrap();
    assert_eq!(pool.open_sessions(), 3);
    // A waiting request gets the first session returned.
    let (p, alice) = (pool.clone(), f.alice.clone());
    let waiter = tokio::spawn(async move {
        let mut s = p.acquire(&alice).await?;
        s.examine(&api::imap::FolderName::inbox()).await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(a2);
    waiter.await.unwrap().unwrap();
    drop((b1, b2));
}

#[tokio::test]
async fn a_reused_session_sees_new_and_expunged_mail() {
    let f = Fixture::new().await;
    let path = format!("/mailbox/{}/messages", f.alice);
    let total = async || f.get_json(&path, &f.alice_token).await["total"].clone();
    append(&f.alice, "INBOX", None, &plain_message(&f.alice, 1)).await;
    assert_eq!(total().await, 1);
    // Arrivals and expunges by other connections reach the pooled session's count.
    let second = append(&f.alice, "INBOX", None, &plain_message(&f.alice, 2)).await;
    append(&f.alice, "INBOX", None, &plain_message(&f.alice, 3)).await;
    assert_eq!(total().await, 3);
    let mut other = imap_as(&f.alice).await;
    other.select("INBOX").await.unwrap();
    other
        .uid_store(second.to_string(), "+FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap()
        .collect::<Vec<_>>()
        .await;
    other.expunge().await.unwrap().collect::<Vec<_>>().await;
    other.logout().await.ok();
    let list = f.get_json(&path, &f.alice_token).await;
    assert_eq!(list["total"], 2);
    let uids: Vec<u64> = messages(&list)
        .iter()
        .map(|m| m["uid"].as_u64().unwrap())
        .collect();
    assert!(!uids.contains(&u64::from(second)), "{uids:?}");
    assert_error(
        f.get(&format!("{path}/{second}"), &f.alice_token).await,
        404,
        "MESSAGE_NOT_FOUND",
    )
    .await;
}
