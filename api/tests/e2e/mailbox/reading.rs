//! A whole message decoded, and its attachments byte for byte, small and large.

use base64::Engine as _;
use serde_json::{Value, json};
use testkit::assert_error;

use super::Fixture;
use super::support::{
    LATIN1_SUBJECT, PDF_NAME, append, binary_payload, crlf, latin1_message, nested_message,
    png_payload,
};

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
