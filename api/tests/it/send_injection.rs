//! Header and SMTP injection through every field of `POST /mail/send`, and each field at and past
//! its size limit: refused with 400, a stable code naming the field, and nothing stored or
//! queued (so nothing can be sent). Raw CR, LF, bare LF and NUL; RFC 2047 encoded-words that
//! decode to them; dot lines in bodies are content, not SMTP (tests/e2e/send.rs delivers them
//! intact).
//!
//! Seen failing before the fix it came with: encoded-words decoding to CRLF in the subject,
//! header values, display names and filenames were accepted (202) and stored.

use serde_json::{Value, json};
use testkit::{TestApp, assert_error};

fn good() -> Value {
    json!({
        "from": "Sender <sender@inj.test>",
        "to": ["Rcpt <rcpt@sink-ok.test>"],
        "cc": ["cc@sink-ok.test"],
        "bcc": ["bcc@sink-ok.test"],
        "reply_to": "reply@inj.test",
        "subject": "Hello",
        "body": {"text": "hi", "html": "<p>hi</p>"},
        "headers": {"X-Campaign": "spring"},
        "attachments": [{"filename": "a.txt", "content": "aGk=", "content_type": "text/plain"}],
    })
}

/// `good()` with the value at `path` replaced (an index step is a number).
fn with(path: &str, value: Value) -> Value {
    let mut body = good();
    let mut cur = &mut body;
    let steps: Vec<&str> = path.split('.').collect();
    for (i, step) in steps.iter().enumerate() {
        let last = i == steps.len() - 1;
        let next = match step.parse::<usize>() {
            Ok(n) => &mut cur[n],
            Err(_) => &mut cur[*step],
        };
        if last {
            *next = value.clone();
            break;
        }
        cur = next;
    }
    body
}

/// Values that end a header line, raw or hidden in an encoded-word.
const BREAKERS: &[&str] = &[
    "a\r\nBcc: victim@example.net",
    "a\nBcc: victim@example.net",
    "a\rBcc: victim@example.net",
    "a\u{0}b",
    "=?utf-8?q?a=0D=0ABcc:_victim@example.net?=",
    "=?UTF-8?B?YQ0KQmNjOiB2aWN0aW1AZXhhbXBsZS5uZXQ=?=",
    "=?utf-8?q?a=00b?=",
];

#[tokio::test]
async fn injection_in_any_field_is_refused_and_nothing_is_stored_or_queued() {
    let app = TestApp::spawn(&[]).await;
    let d = app.domain("inj.test", true).await;
    let user = app.mailbox_with_token("sender@inj.test", d).await;

    for breaker in BREAKERS {
        let named = format!("{breaker} <x@sink-ok.test>");
        let cases: Vec<(Value, &str, &str)> = vec![
            (with("subject", json!(breaker)), "INVALID_HEADER", "subject"),
            (
                with("headers", json!({"X-Campaign": breaker})),
                "INVALID_HEADER",
                "headers.X-Campaign",
            ),
            (
                with("from", json!(format!("{breaker} <sender@inj.test>"))),
                "INVALID_HEADER",
                "from",
            ),
            (with("to.0", json!(named)), "INVALID_HEADER", "to[0]"),
            (with("cc.0", json!(named)), "INVALID_HEADER", "cc[0]"),
            (with("bcc.0", json!(named)), "INVALID_HEADER", "bcc[0]"),
            (
                with("reply_to", json!(format!("{breaker} <r@inj.test>"))),
                "INVALID_HEADER",
                "reply_to",
            ),
            (
                with("attachments.0.filename", json!(format!("{breaker}.txt"))),
                "INVALID_ATTACHMENT",
                "attachments[0].filename",
            ),
        ];
        for (body, code, field) in cases {
            let resp = app.post_json("/mail/send", &user, &body).await;
            let err = assert_error(resp, 400, code).await;
            assert_eq!(err["field"], field, "{breaker:?}: {err}");
        }
    }
    // Raw breakers in the address itself, and in header names and content types.
    let raw_only = [
        (
            with(
                "to.0",
                json!("rcpt@sink-ok.test\r\nRCPT TO:<v@example.net>"),
            ),
            "INVALID_HEADER",
            "to[0]",
        ),
        (
            with("from", json!("sender@inj.test\r\nRSET")),
            "INVALID_HEADER",
            "from",
        ),
        (
            with("headers", json!({"X-A\r\nBcc": "v@example.net"})),
            "INVALID_HEADER",
            "headers.X-A\r\nBcc",
        ),
        (
            with("headers", json!({"X-A:B": "v"})),
            "INVALID_HEADER",
            "headers.X-A:B",
        ),
        (
            with(
                "attachments.0.content_type",
                json!("text/plain\r\nX-Evil: 1"),
            ),
            "INVALID_ATTACHMENT",
            "attachments[0].content_type",
        ),
        // NUL in a body: it cannot be carried by SMTP DATA.
        (
            with("body.text", json!("a\u{0}b")),
            "INVALID_BODY",
            "body.text",
        ),
        (
            with("body.html", json!("<p>\u{0}</p>")),
            "INVALID_BODY",
            "body.html",
        ),
    ];
    for (body, code, field) in raw_only {
        let resp = app.post_json("/mail/send", &user, &body).await;
        let err = assert_error(resp, 400, code).await;
        assert_eq!(err["field"], field, "{err}");
    }
    assert_eq!(app.stored().await, (0, 0));
    assert_eq!(app.stream_len().await, 0);

    // Encoded-words that decode to ordinary text are fine, and so is a body full of dot lines.
    let fine = with("subject", json!("=?utf-8?q?Gr=C3=BC=C3=9Fe?="));
    let fine = {
        let mut f = fine;
        f["body"]["html"] = json!("<p>a</p>\n.\n<p>b</p>\r\n.\r\n");
        f
    };
    assert_eq!(
        app.post_json("/mail/send", &user, &fine).await.status(),
        202
    );
}

#[tokio::test]
async fn every_field_past_its_size_limit_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn(&[("MAILAPI_SMTP_MAX_MESSAGE_BYTES", "300000")]).await;
    let d = app.domain("inj.test", true).await;
    let user = app.mailbox_with_token("sender@inj.test", d).await;
    let many_headers: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    let attachment = json!({"filename": "a.txt", "content": "aGk=", "content_type": "text/plain"});
    let long_local = "a".repeat(65);
    let cases = [
        (
            with("subject", json!("s".repeat(2001))),
            "INVALID_HEADER",
            "subject",
        ),
        (
            with("headers", json!({"X-Long": "v".repeat(999)})),
            "INVALID_HEADER",
            "headers.X-Long",
        ),
        (
            with("headers", json!({ "X-".to_owned() + &"n".repeat(75): "v" })),
            "INVALID_HEADER",
            "headers.X-nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
        ),
        (
            with("headers", Value::Object(many_headers)),
            "INVALID_HEADER",
            "headers",
        ),
        (
            with("attachments", json!(vec![attachment; 101])),
            "INVALID_ATTACHMENT",
            "attachments",
        ),
        (
            with("attachments.0.filename", json!("f".repeat(256))),
            "INVALID_ATTACHMENT",
            "attachments[0].filename",
        ),
        (
            with("to.0", json!(format!("{long_local}@sink-ok.test"))),
            "INVALID_ADDRESS",
            "to[0]",
        ),
        (
            with("to.0", json!(format!("{}@sink-ok.test", "a".repeat(250)))),
            "INVALID_ADDRESS",
            "to[0]",
        ),
        (
            with(
                "to.0",
                json!(format!("{} <x@sink-ok.test>", "n".repeat(257))),
            ),
            "INVALID_ADDRESS",
            "to[0]",
        ),
        (
            with("attachments.0.content", json!(base64_of(400_000))),
            "MESSAGE_TOO_LARGE",
            "attachments",
        ),
        (
            with(
                "to",
                json!(
                    (0..101)
                        .map(|i| format!("r{i}@sink-ok.test"))
                        .collect::<Vec<_>>()
                ),
            ),
            "TOO_MANY_RECIPIENTS",
            "to",
        ),
    ];
    for (body, code, field) in cases {
        let resp = app.post_json("/mail/send", &user, &body).await;
        let err = assert_error(resp, 400, code).await;
        assert_eq!(err["field"], field, "{err}");
    }
    assert_eq!(app.stored().await, (0, 0));
    assert_eq!(app.stream_len().await, 0);
}

/// Standard base64 of `n` zero bytes.
fn base64_of(n: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(vec![0u8; n])
}
