//! The signer against RFC 8463's published example (an independent answer for canonicalisation
//! and both algorithms), and against the worker's own messages. The end-to-end check with an
//! independent verifier (dkimpy) is api/tests/dkim_e2e.rs.

use base64::Engine as _;
use ring::signature::{
    ED25519, Ed25519KeyPair, RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
    RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use shared::address::{EmailAddress, NamedAddress};
use shared::dkim::Algorithm;
use shared::outgoing::{OutgoingAttachment, OutgoingMessage};

use super::canon::split_message;
use super::signer::{SIGNED_HEADERS, append_own_field, body_hash, header_hash_input};
use super::{DomainSigner, SigningKey};

const RSA_PEM: &str = include_str!("../../../shared/testdata/dkim-rsa2048.pem");
const ED25519_PEM: &str = include_str!("../../../shared/testdata/dkim-ed25519.pem");

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.chars().filter(|c| !c.is_whitespace()).collect::<String>())
        .unwrap()
}

/// RFC 8463 appendix A.3: the example message with both signatures, lines ending in CRLF.
fn rfc8463_message() -> Vec<u8> {
    [
        "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;",
        " d=football.example.com; i=@football.example.com;",
        " q=dns/txt; s=brisbane; t=1528637909; h=from : to :",
        " subject : date : message-id : from : subject : date;",
        " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;",
        " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus",
        " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==",
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;",
        " d=football.example.com; i=@football.example.com;",
        " q=dns/txt; s=test; t=1528637909; h=from : to : subject :",
        " date : message-id : from : subject : date;",
        " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;",
        " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3",
        " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz",
        " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=",
        "From: Joe SixPack <joe@football.example.com>",
        "To: Suzie Q <suzie@shopping.example.net>",
        "Subject: Is dinner ready?",
        "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)",
        "Message-ID: <20030712040037.46341.5F8J@football.example.com>",
        "",
        "Hi.",
        "",
        "We lost the game.  Are you hungry yet?",
        "",
        "Joe.",
        "",
    ]
    .join("\r\n")
    .into_bytes()
}

/// A received DKIM-Signature field split into its text with an empty `b=` (what was hashed),
/// its `h=` names and its `b=` and `bh=` values.
struct Received {
    unsigned: String,
    names: Vec<String>,
    b: Vec<u8>,
    bh: String,
    tags: Vec<(String, String)>,
}

fn received(field_name: &[u8], field_value: &[u8]) -> Received {
    let text = format!(
        "{}:{}",
        String::from_utf8_lossy(field_name),
        String::from_utf8_lossy(field_value)
    );
    // Here (ours and the RFC's), b= is the tag after bh=.
    let bh_at = text.find("bh=").unwrap();
    let after_bh = bh_at + text[bh_at..].find(';').unwrap() + 1;
    let b_at = after_bh + text[after_bh..].find("b=").unwrap();
    let value_end = text[b_at..].find(';').map_or(text.len(), |i| b_at + i);
    let unsigned = format!("{}{}", &text[..b_at + 2], &text[value_end..]);
    let tags: Vec<(String, String)> = text
        .split_once(':')
        .unwrap()
        .1
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| {
            let clean = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            (clean(k), clean(v))
        })
        .collect();
    let tag = |k: &str| tags.iter().find(|(n, _)| n == k).unwrap().1.clone();
    Received {
        unsigned,
        names: tag("h").split(':').map(str::to_owned).collect(),
        b: b64(&tag("b")),
        bh: tag("bh"),
        tags,
    }
}

/// The data-hash input a verifier computes for `sig` over `message`.
fn data_to_verify(message: &[u8], sig: &Received) -> Vec<u8> {
    let (fields, _) = split_message(message);
    let names: Vec<&str> = sig.names.iter().map(String::as_str).collect();
    let mut data = header_hash_input(&fields, &names);
    append_own_field(&sig.unsigned, &mut data);
    data
}

fn signatures(message: &[u8]) -> Vec<Received> {
    let (fields, _) = split_message(message);
    fields
        .iter()
        .filter(|f| f.is("dkim-signature"))
        .map(|f| received(f.name, f.value))
        .collect()
}

#[test]
fn reproduces_rfc_8463_ed25519_signature_and_verifies_its_rsa_one() {
    let message = rfc8463_message();
    let (_, body) = split_message(&message);
    let sigs = signatures(&message);
    assert_eq!(sigs.len(), 2);
    for sig in &sigs {
        assert_eq!(body_hash(body), sig.bh);
    }

    // Ed25519 is deterministic: the RFC's key must give the RFC's signature, byte for byte.
    let seed = b64("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=");
    let key = SigningKey::Ed25519(Ed25519KeyPair::from_seed_unchecked(&seed).unwrap());
    assert_eq!(
        key.public_key(),
        b64("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    );
    assert_eq!(
        key.sign(&data_to_verify(&message, &sigs[0])).unwrap(),
        sigs[0].b
    );

    // The RFC's RSA key is 1024 bits, which ring will not sign with; verify its signature
    // over the data we compute instead. The SubjectPublicKeyInfo of a 1024-bit key holds the
    // RSAPublicKey from byte 22.
    let spki = b64(
        "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi
         Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZ
         yVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
    );
    let rsa = UnparsedPublicKey::new(&RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, &spki[22..]);
    rsa.verify(&data_to_verify(&message, &sigs[1]), &sigs[1].b)
        .unwrap();
}

fn addr(email: &str, name: Option<&str>) -> NamedAddress {
    NamedAddress {
        name: name.map(str::to_owned),
        email: EmailAddress::parse(email).unwrap(),
    }
}

/// Every header the signer covers, a custom one it does not, and a multipart body with an
/// attachment: the bytes the worker sends.
fn sample() -> Vec<u8> {
    let message = OutgoingMessage {
        from: addr("sender@a.test", Some("Sënder Name")),
        to: vec![addr("to@b.test", None), addr("to2@b.test", None)],
        cc: vec![addr("cc@b.test", Some("Cc Person"))],
        bcc: vec![addr("hidden@b.test", None)],
        reply_to: Some(addr("replies@a.test", None)),
        subject: "Grüße, a subject long enough to be folded by the MIME builder into two lines"
            .into(),
        text: Some("text line  with  spaces   \nsecond line\n\n\n".into()),
        html: Some("<p>hi</p>".into()),
        headers: vec![
            ("X-Custom-Header".into(), "custom value".into()),
            (
                "List-Unsubscribe".into(),
                "<https://a.test/u/1>, <mailto:u@a.test>".into(),
            ),
            (
                "List-Unsubscribe-Post".into(),
                "List-Unsubscribe=One-Click".into(),
            ),
        ],
        attachments: vec![OutgoingAttachment {
            filename: "report.pdf".into(),
            content_type: "application/pdf".into(),
            content_base64: base64::engine::general_purpose::STANDARD.encode([0u8, 1, 2, 255]),
        }],
    };
    message
        .build("<id@a.test>", chrono::Utc::now())
        .unwrap()
        .formatted()
}

fn dual_signer() -> DomainSigner {
    DomainSigner::new(
        "a.test",
        vec![
            (
                "mail202612".into(),
                SigningKey::from_pem(Algorithm::Rsa, RSA_PEM).unwrap(),
            ),
            (
                "ed202612".into(),
                SigningKey::from_pem(Algorithm::Ed25519, ED25519_PEM).unwrap(),
            ),
        ],
    )
}

/// Verifies every signature on `message` as a receiver would (body hash, then the signature
/// with the signer's public key); `Err` names the first failure.
fn verify_all(message: &[u8], signer_keys: &[Vec<u8>]) -> Result<(), String> {
    let (_, body) = split_message(message);
    let sigs = signatures(message);
    if sigs.len() != signer_keys.len() {
        return Err(format!("{} signatures", sigs.len()));
    }
    for (sig, public) in sigs.iter().zip(signer_keys) {
        if body_hash(body) != sig.bh {
            return Err("body hash".into());
        }
        let data = data_to_verify(message, sig);
        let a = &sig.tags.iter().find(|(k, _)| k == "a").unwrap().1;
        let ok = match a.as_str() {
            "rsa-sha256" => {
                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public).verify(&data, &sig.b)
            }
            "ed25519-sha256" => UnparsedPublicKey::new(&ED25519, public).verify(
                ring::digest::digest(&ring::digest::SHA256, &data).as_ref(),
                &sig.b,
            ),
            other => return Err(format!("algorithm {other}")),
        };
        ok.map_err(|_| format!("{a} signature"))?;
    }
    Ok(())
}

#[test]
fn signs_rsa_then_ed25519_over_every_listed_header_and_the_untouched_message() {
    let message = sample();
    let signer = dual_signer();
    let signed = signer.sign_at(&message, 1_765_000_000).unwrap();
    let sigs = signatures(&signed);
    assert_eq!(sigs.len(), 2);
    let tag = |s: &Received, k: &str| s.tags.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(tag(&sigs[0], "a"), "rsa-sha256");
    assert_eq!(tag(&sigs[0], "s"), "mail202612");
    assert_eq!(tag(&sigs[1], "a"), "ed25519-sha256");
    assert_eq!(tag(&sigs[1], "s"), "ed202612");
    for s in &sigs {
        assert_eq!(tag(s, "d"), "a.test");
        assert_eq!(tag(s, "c"), "relaxed/relaxed");
        assert_eq!(tag(s, "t"), "1765000000");
        assert_eq!(tag(s, "v"), "1");
        // Every header of the list, once per instance and once more (oversigned).
        let expected: Vec<String> = SIGNED_HEADERS
            .iter()
            .flat_map(|h| [h.to_string(), h.to_string()])
            .collect();
        assert_eq!(s.names, expected);
    }
    // The signature fields go in front; the message itself is sent as built.
    assert!(signed.ends_with(&message));
    assert!(signed.starts_with(b"DKIM-Signature: v=1; a=rsa-sha256;"));
    let head = &signed[..signed.len() - message.len()];
    for line in String::from_utf8_lossy(head).split("\r\n") {
        assert!(line.len() <= 78, "{line:?} is {} long", line.len());
    }

    let keys: Vec<Vec<u8>> = [RSA_PEM, ED25519_PEM]
        .iter()
        .zip([Algorithm::Rsa, Algorithm::Ed25519])
        .map(|(pem, alg)| SigningKey::from_pem(alg, pem).unwrap().public_key())
        .collect();
    verify_all(&signed, &keys).unwrap();
}

#[test]
fn changing_a_signed_byte_or_adding_a_listed_header_breaks_the_signatures() {
    let signed = dual_signer().sign_at(&sample(), 1_765_000_000).unwrap();
    let keys: Vec<Vec<u8>> = [(RSA_PEM, Algorithm::Rsa), (ED25519_PEM, Algorithm::Ed25519)]
        .iter()
        .map(|(pem, alg)| SigningKey::from_pem(*alg, pem).unwrap().public_key())
        .collect();
    let text = String::from_utf8(signed.clone()).unwrap();
    let tampered = |from: &str, to: &str| {
        assert!(text.contains(from), "{from:?} not in the message");
        text.replacen(from, to, 1).into_bytes()
    };
    // Relaxed canonicalisation forgives whitespace and header-name case.
    verify_all(&tampered("Reply-To: ", "reply-to:   "), &keys).unwrap();
    verify_all(
        &tampered("\r\n\r\n", "\r\nX-Added-By-Relay: yes\r\n\r\n"),
        &keys,
    )
    .unwrap();
    // It forgives nothing else in a signed header or the body.
    for (from, to) in [
        ("Cc: ", "Cc: x@evil.test, "),
        ("Reply-To: ", "Reply-To: x"),
        (
            "List-Unsubscribe: <https://a.test/u/1>",
            "List-Unsubscribe: <https://evil.test/u/1>",
        ),
        ("List-Unsubscribe=One-Click", "List-Unsubscribe=Two-Click"),
        (
            "Content-Type: multipart/mixed",
            "Content-Type: multipart/alternative",
        ),
        ("MIME-Version: 1.0", "MIME-Version: 1.1"),
        ("second line", "Second line"),
        ("report.pdf", "report.exe"),
    ] {
        assert!(
            verify_all(&tampered(from, to), &keys).is_err(),
            "{from:?} -> {to:?}"
        );
    }
    // Oversigning: a second From (or Subject) added on the way is caught.
    for extra in ["From: ceo@a.test", "Subject: urgent"] {
        let added = tampered("\r\n\r\n", &format!("\r\n{extra}\r\n\r\n"));
        assert!(verify_all(&added, &keys).is_err(), "{extra}");
    }
}

#[test]
fn a_domain_without_ed25519_gets_one_rsa_signature() {
    let signer = DomainSigner::new(
        "a.test",
        vec![(
            "mail202612".into(),
            SigningKey::from_pem(Algorithm::Rsa, RSA_PEM).unwrap(),
        )],
    );
    assert_eq!(signer.algorithms(), [Algorithm::Rsa]);
    let signed = signer.sign(&sample()).unwrap();
    let sigs = signatures(&signed);
    assert_eq!(sigs.len(), 1);
    let public = SigningKey::from_pem(Algorithm::Rsa, RSA_PEM)
        .unwrap()
        .public_key();
    verify_all(&signed, &[public]).unwrap();
}
