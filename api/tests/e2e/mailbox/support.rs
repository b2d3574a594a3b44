//! IMAP and SMTP helpers, and the messages the tests put in mailboxes.

use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub(super) type Imap = async_imap::Session<TcpStream>;

/// Logs in as `email` through the master user, as the API does.
pub(super) async fn imap_as(email: &str) -> Imap {
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
pub(super) async fn append(email: &str, folder: &str, flags: Option<&str>, raw: &[u8]) -> u32 {
    let mut s = imap_as(email).await;
    let status = s.status(folder, "(UIDNEXT)").await.expect("STATUS");
    let uid = status.uid_next.expect("UIDNEXT");
    s.append(folder, flags, None, raw).await.expect("APPEND");
    s.logout().await.ok();
    uid
}

/// CRLF line endings, as a message on the wire has.
pub(super) fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

pub(super) fn plain_message(to: &str, i: u32) -> Vec<u8> {
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

pub(super) const LATIN1_SUBJECT: &str = "Grüße aus Köln – Квартальный отчёт";

/// Non-ASCII subject and names, ISO-8859-1 quoted-printable body, Cc, extra headers.
pub(super) fn latin1_message(to: &str) -> Vec<u8> {
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
pub(super) fn binary_payload() -> Vec<u8> {
    let mut v: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    v.extend_from_slice(b"\r\n\0\r\r\n%PDF-1.4 end");
    v
}

pub(super) fn png_payload() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..200u8).map(|b| b.wrapping_mul(7)));
    v
}

pub(super) const PDF_NAME: &str = "Übersicht Q3 – Bericht.pdf";

/// mixed( alternative( text, related( html, inline image with Content-ID ) ),
///        PDF with a non-ASCII RFC 2231 name, a forwarded message )
pub(super) fn nested_message(to: &str) -> Vec<u8> {
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
pub(super) async fn smtp_deliver(to: &str, raw: &[u8]) {
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

pub(super) fn messages(body: &Value) -> &Vec<Value> {
    body["messages"].as_array().expect("messages array")
}
