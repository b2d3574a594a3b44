//! Tests of the DSN parser against the real samples in tests/fixtures/.

use super::*;
use proptest::prelude::*;
use std::sync::LazyLock;

// The real reports (Postfix 3.7.11 to the `bounces` mailbox), read from tests/fixtures/ with
// their CRLF line ends made LF: the tests choose the line ends themselves (see `crlf`).
fn lf(s: &str) -> String {
    s.replace("\r\n", "\n")
}

static ERROR_TRANSPORT: LazyLock<String> = LazyLock::new(|| {
    lf(include_str!(
        "../../tests/fixtures/dsn-verify-error_transport-20261123201756-24105.eml"
    ))
});

static EXTERNAL_HARD: LazyLock<String> = LazyLock::new(|| {
    lf(include_str!(
        "../../tests/fixtures/dsn-verify-external_hard-20261123201756-24105.eml"
    ))
});

static EXTERNAL_SOFT: LazyLock<String> = LazyLock::new(|| {
    lf(include_str!(
        "../../tests/fixtures/dsn-verify-external_soft-20261123201756-24105.eml"
    ))
});

static UNKNOWN_LOCAL: LazyLock<String> = LazyLock::new(|| {
    lf(include_str!(
        "../../tests/fixtures/dsn-verify-unknown_local-20261123201756-24105.eml"
    ))
});

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

#[test]
fn unknown_local_user() {
    let r = parse_report(&crlf(&UNKNOWN_LOCAL)).unwrap();
    assert_eq!(r.queue_id.as_deref(), Some("4jYHLY2GC8z5n8M"));
    assert_eq!(r.reporting_mta.as_deref(), Some("mail.mailapi.test"));
    assert_eq!(
        r.original_message_id.as_deref(),
        Some("<verify-unknown_local-20261123201756-24105@mailapi.test>")
    );
    assert_eq!(r.verp_tag, None, "the samples were sent without VERP");
    assert_eq!(r.recipients.len(), 1);
    let rcpt = &r.recipients[0];
    assert_eq!(rcpt.final_recipient, "nobody@mailapi.test");
    assert_eq!(
        rcpt.original_recipient.as_deref(),
        Some("nobody@mailapi.test")
    );
    assert_eq!(rcpt.action, Action::Failed);
    assert_eq!(rcpt.status.as_deref(), Some("5.1.1"));
    assert_eq!(
        rcpt.diagnostic.as_deref(),
        Some("smtp; 550 5.1.1 <nobody@mailapi.test> User doesn't exist: nobody@mailapi.test")
    );
    assert_eq!(
        rcpt.outcome(),
        Outcome::Bounced {
            dsn_code: "5.1.1".into()
        }
    );
    let evidence = rcpt.evidence(&r);
    assert!(evidence.contains("Status: 5.1.1"), "{evidence}");
    assert!(
        evidence.contains("X-Postfix-Queue-ID: 4jYHLY2GC8z5n8M"),
        "{evidence}"
    );
}

#[test]
fn external_hard_with_folded_diagnostic() {
    let r = parse_report(&crlf(&EXTERNAL_HARD)).unwrap();
    let rcpt = &r.recipients[0];
    assert_eq!(rcpt.final_recipient, "dave@bounce.example");
    assert_eq!(rcpt.remote_mta.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        rcpt.diagnostic.as_deref(),
        Some("smtp; 550 5.1.1 Recipient address rejected: User unknown (smtp-sink)")
    );
    assert!(matches!(rcpt.outcome(), Outcome::Bounced { dsn_code } if dsn_code == "5.1.1"));
}

#[test]
fn error_transport() {
    // LF-only line ends parse the same.
    let r = parse_report(ERROR_TRANSPORT.as_bytes()).unwrap();
    assert_eq!(r.queue_id.as_deref(), Some("4jYHLY6pzRz5n9c"));
    let rcpt = &r.recipients[0];
    assert_eq!(rcpt.final_recipient, "gina@error.example");
    assert_eq!(
        rcpt.diagnostic.as_deref(),
        Some("X-Postfix; mailapi-lab: simulated unknown user")
    );
    assert!(matches!(rcpt.outcome(), Outcome::Bounced { dsn_code } if dsn_code == "5.1.1"));
}

#[test]
fn expired_soft_failure_is_failed_not_bounced() {
    let r = parse_report(&crlf(&EXTERNAL_SOFT)).unwrap();
    let rcpt = &r.recipients[0];
    assert_eq!(rcpt.final_recipient, "erin@defer.example");
    assert_eq!(
        rcpt.outcome(),
        Outcome::Failed {
            dsn_code: "4.2.0".into()
        }
    );
}

#[test]
fn delayed_is_not_a_bounce_and_bare_5_0_0_uses_the_text() {
    let delayed = UNKNOWN_LOCAL.replace("Action: failed", "Action: delayed");
    let r = parse_report(delayed.as_bytes()).unwrap();
    assert_eq!(r.recipients[0].outcome(), Outcome::NotABounce);

    let bare = EXTERNAL_HARD.replace("Status: 5.1.1", "Status: 5.0.0");
    let r = parse_report(bare.as_bytes()).unwrap();
    assert!(
        matches!(r.recipients[0].outcome(), Outcome::Bounced { dsn_code } if dsn_code == "5.1.1")
    );

    let vague = ERROR_TRANSPORT
        .replace("Status: 5.1.1", "Status: 5.0.0")
        .replace("simulated unknown user", "mailbox is over quota");
    let r = parse_report(vague.as_bytes()).unwrap();
    assert!(
        matches!(r.recipients[0].outcome(), Outcome::Bounced { dsn_code } if dsn_code == "5.2.2")
    );
    assert_eq!(classify_diagnostic("smtp; 550 go away"), "5.0.0");
    assert_eq!(
        classify_diagnostic("Host or domain name not found"),
        "5.1.2"
    );
}

#[test]
fn verp_tag_from_delivered_to() {
    let tagged = UNKNOWN_LOCAL.replacen(
        "Delivered-To: bounces@mailapi.test",
        "Delivered-To: bounces+0192aabbccddeeff00112233445566ff@mailapi.test",
        1,
    );
    let r = parse_report(tagged.as_bytes()).unwrap();
    assert_eq!(
        r.verp_tag.as_deref(),
        Some("0192aabbccddeeff00112233445566ff")
    );
    let to_only = UNKNOWN_LOCAL.replacen(
        "To: bounces@mailapi.test",
        "To: <bounces+abc123@bounces.example>",
        1,
    );
    assert_eq!(
        parse_report(to_only.as_bytes())
            .unwrap()
            .verp_tag
            .as_deref(),
        Some("abc123")
    );
    assert_eq!(verp_tag("bounces+@x"), None);
    assert_eq!(verp_tag("bounces+a b@x"), None);
}

#[test]
fn not_a_report() {
    assert_eq!(parse_report(b""), Err(DsnError::NotMime));
    let plain = b"From: a@b.c\r\nSubject: hi\r\n\r\nhello\r\n";
    assert_eq!(parse_report(plain), Err(DsnError::NoStatusPart));
    let empty = UNKNOWN_LOCAL.replace("Final-Recipient: rfc822; nobody@mailapi.test", "");
    assert_eq!(parse_report(empty.as_bytes()), Err(DsnError::NoRecipients));
}

fn sample() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(vec![
        ERROR_TRANSPORT.as_str(),
        EXTERNAL_HARD.as_str(),
        EXTERNAL_SOFT.as_str(),
        UNKNOWN_LOCAL.as_str(),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn truncated_reports_never_panic(report in sample(), cut in 0usize..3000) {
        let bytes = report.as_bytes();
        let _ = parse_report(&bytes[..cut.min(bytes.len())]);
    }

    #[test]
    fn mangled_reports_never_panic(
        report in sample(),
        edits in proptest::collection::vec((0usize..3000, any::<u8>(), 0u8..3), 1..20),
    ) {
        let mut bytes = report.as_bytes().to_vec();
        for (at, byte, op) in edits {
            let at = at.min(bytes.len());
            match op {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => {}
            }
        }
        if let Ok(r) = parse_report(&bytes) {
            for rcpt in &r.recipients {
                let _ = rcpt.outcome();
                let _ = rcpt.evidence(&r);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = parse_report(&bytes);
    }

    #[test]
    fn generated_status_fields_never_panic(fields in "[ -~\t\n]{0,400}") {
        let report = UNKNOWN_LOCAL.replace(
            "Final-Recipient: rfc822; nobody@mailapi.test",
            &format!("Final-Recipient: rfc822; x@y.z\n{fields}"),
        );
        if let Ok(r) = parse_report(report.as_bytes()) {
            for rcpt in &r.recipients {
                let _ = rcpt.outcome();
            }
        }
    }
}
