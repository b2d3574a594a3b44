//! Tests of the log line parser against the real samples in tests/fixtures/.

use super::*;
use proptest::prelude::*;

// The real samples (Postfix 3.7.11), one file each under tests/fixtures/.
const ALIAS: &str = include_str!("../../tests/fixtures/postfix-alias.log");
const ERROR_TRANSPORT: &str = include_str!("../../tests/fixtures/postfix-error_transport.log");
const EXPIRED: &str = include_str!("../../tests/fixtures/postfix-expired.log");
const EXTERNAL_DOWN: &str = include_str!("../../tests/fixtures/postfix-external_down.log");
const EXTERNAL_HARD: &str = include_str!("../../tests/fixtures/postfix-external_hard.log");
const EXTERNAL_OK: &str = include_str!("../../tests/fixtures/postfix-external_ok.log");
const EXTERNAL_SOFT: &str = include_str!("../../tests/fixtures/postfix-external_soft.log");
const LOCAL: &str = include_str!("../../tests/fixtures/postfix-local.log");
const MULTI: &str = include_str!("../../tests/fixtures/postfix-multi.log");
const RCPT_REJECT: &str = include_str!("../../tests/fixtures/postfix-rcpt_reject.log");
const RETRY_TRANSPORT: &str = include_str!("../../tests/fixtures/postfix-retry_transport.log");
const SENDMAIL: &str = include_str!("../../tests/fixtures/postfix-sendmail.log");
const UNKNOWN_LOCAL: &str = include_str!("../../tests/fixtures/postfix-unknown_local.log");

const ALL: [&str; 13] = [
    ALIAS,
    ERROR_TRANSPORT,
    EXPIRED,
    EXTERNAL_DOWN,
    EXTERNAL_HARD,
    EXTERNAL_OK,
    EXTERNAL_SOFT,
    LOCAL,
    MULTI,
    RCPT_REJECT,
    RETRY_TRANSPORT,
    SENDMAIL,
    UNKNOWN_LOCAL,
];

fn events(sample: &str) -> Vec<Event<'_>> {
    sample
        .lines()
        .map(|l| parse(l).unwrap_or_else(|e| panic!("{e}: {l}")).event)
        .collect()
}

fn deliveries(sample: &str) -> Vec<Delivery<'_>> {
    events(sample)
        .into_iter()
        .filter_map(|e| match e {
            Event::Delivery(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[test]
fn every_sample_line_parses() {
    for sample in ALL {
        for line in sample.lines() {
            let parsed = parse(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(parsed.host, "mail");
            assert!(parsed.program.starts_with("postfix/"), "{line}");
            assert!(parsed.timestamp(2026).is_some(), "{line}");
        }
    }
}

#[test]
fn local_delivery() {
    let ev = events(LOCAL);
    assert_eq!(ev[0], Event::Other);
    assert_eq!(
        ev[1],
        Event::Cleanup {
            qid: "4jYHLY0Qbrz5n8M",
            message_id: "<verify-local-20261123201756-24105@mailapi.test>"
        }
    );
    assert_eq!(
        ev[2],
        Event::Qmgr {
            qid: "4jYHLY0Qbrz5n8M",
            from: "bounces@mailapi.test",
            size: Some(516),
            nrcpt: Some(1)
        }
    );
    assert_eq!(
        ev[3],
        Event::Delivery(Delivery {
            qid: "4jYHLY0Qbrz5n8M",
            to: "alice@mailapi.test",
            orig_to: None,
            relay: "mail.mailapi.test[private/dovecot-lmtp]",
            delay: Some("0.09"),
            dsn: Some("2.0.0"),
            status: DeliveryStatus::Sent,
            response: "250 2.0.0 <alice@mailapi.test> RHVIBnWfBGtBXgAAg+zDdQ Saved",
        })
    );
    assert_eq!(
        ev[4],
        Event::Removed {
            qid: "4jYHLY0Qbrz5n8M"
        }
    );
}

#[test]
fn alias_keeps_the_original_recipient() {
    let d = &deliveries(ALIAS)[0];
    assert_eq!(d.to, "admin@mailapi.test");
    assert_eq!(d.orig_to, Some("postmaster@mailapi.test"));
    assert_eq!(d.status, DeliveryStatus::Sent);
}

#[test]
fn unknown_local_user_bounces_with_its_report() {
    let ev = events(UNKNOWN_LOCAL);
    let Event::Delivery(d) = &ev[3] else {
        panic!("{:?}", ev[3])
    };
    assert_eq!(d.status, DeliveryStatus::Bounced);
    assert_eq!(d.dsn, Some("5.1.1"));
    assert_eq!(
        d.response,
        "host mail.mailapi.test[private/dovecot-lmtp] said: 550 5.1.1 <nobody@mailapi.test> \
         User doesn't exist: nobody@mailapi.test (in reply to RCPT TO command)"
    );
    assert_eq!(
        ev[4],
        Event::BounceNotification {
            qid: "4jYHLY2GC8z5n8M",
            report_qid: "4jYHLY2P9zz5n8f"
        }
    );
    assert_eq!(
        ev[6],
        Event::Cleanup {
            qid: "4jYHLY2P9zz5n8f",
            message_id: "<4jYHLY2P9zz5n8f@mail.mailapi.test>"
        }
    );
    assert!(matches!(ev[7], Event::Qmgr { from: "", .. }));
}

#[test]
fn external_outcomes() {
    let ok = &deliveries(EXTERNAL_OK)[0];
    assert_eq!(
        (ok.to, ok.status),
        ("carol@example.com", DeliveryStatus::Sent)
    );
    assert_eq!(ok.relay, "127.0.0.1[127.0.0.1]:2526");
    assert_eq!(ok.response, "250 2.0.0 Ok");

    let hard = &deliveries(EXTERNAL_HARD)[0];
    assert_eq!(
        (hard.status, hard.dsn),
        (DeliveryStatus::Bounced, Some("5.1.1"))
    );
    assert!(hard.response.ends_with("(in reply to RCPT TO command)"));

    let soft = &deliveries(EXTERNAL_SOFT)[0];
    assert_eq!(
        (soft.status, soft.dsn),
        (DeliveryStatus::Deferred, Some("4.2.0"))
    );
    assert_eq!(
        soft.response,
        "host 127.0.0.1[127.0.0.1] said: 450 4.2.0 Mailbox busy, try again later \
         (smtp-sink) (in reply to RCPT TO command)"
    );

    let down = &deliveries(EXTERNAL_DOWN)[0];
    assert_eq!((down.relay, down.dsn), ("none", Some("4.4.1")));
    assert_eq!(
        down.response,
        "connect to 127.0.0.1[127.0.0.1]:2529: Connection refused"
    );

    let error = &deliveries(ERROR_TRANSPORT)[0];
    assert_eq!(error.status, DeliveryStatus::Bounced);
    assert_eq!(error.response, "mailapi-lab: simulated unknown user");

    let retry = &deliveries(RETRY_TRANSPORT)[0];
    assert_eq!(retry.status, DeliveryStatus::Deferred);
    assert_eq!(retry.response, "mailapi-lab: simulated temporary failure");
}

#[test]
fn expiry_is_its_own_event() {
    let ev = events(EXPIRED);
    // `postsuper: QID: expired` only marks the file; the qmgr line is the expiry.
    assert_eq!(ev[4], Event::Other);
    assert!(matches!(ev[5], Event::Qmgr { nrcpt: Some(1), .. }));
    assert_eq!(
        ev[6],
        Event::Expired {
            qid: "4jYHLY5PLrz5n8M",
            from: "bounces@mailapi.test"
        }
    );
    let plain = "Nov 23 20:18:01 mail postfix/qmgr[1]: 4jYHLY5PLrz5n8M: \
                 from=<a@b.c>, status=expired, returned to sender";
    assert!(matches!(parse(plain).unwrap().event, Event::Expired { .. }));
}

#[test]
fn multi_recipient_lines_in_completion_order() {
    let d = deliveries(MULTI);
    let got: Vec<_> = d.iter().map(|d| (d.to, d.status, d.dsn)).collect();
    assert_eq!(
        got,
        vec![
            (
                "nobody@mailapi.test",
                DeliveryStatus::Bounced,
                Some("5.1.1")
            ),
            ("ivan@example.com", DeliveryStatus::Sent, Some("2.0.0")),
            ("alice@mailapi.test", DeliveryStatus::Sent, Some("2.0.0")),
            ("bob@mailapi.test", DeliveryStatus::Sent, Some("2.0.0")),
            (
                "judy@defer.example",
                DeliveryStatus::Deferred,
                Some("4.2.0")
            ),
            ("bounces@mailapi.test", DeliveryStatus::Sent, Some("2.0.0")),
        ]
    );
    assert!(matches!(
        events(MULTI)[2],
        Event::Qmgr { nrcpt: Some(5), .. }
    ));
}

#[test]
fn noqueue_reject() {
    let parsed = parse(RCPT_REJECT.trim_end()).unwrap();
    assert_eq!(parsed.program, "postfix/smtpd");
    assert_eq!(
        parsed.event,
        Event::RcptReject {
            qid: None,
            from: "bounces@mailapi.test",
            to: "nobody@mailapi.test",
            response: "550 5.1.1 <nobody@mailapi.test>: Recipient address rejected: \
                       User unknown in virtual mailbox table",
            client: "localhost[127.0.0.1]",
        }
    );
    let with_qid = RCPT_REJECT.replace("NOQUEUE", "4jYHLZ18yXz5nBD");
    assert!(matches!(
        parse(with_qid.trim_end()).unwrap().event,
        Event::RcptReject {
            qid: Some("4jYHLZ18yXz5nBD"),
            ..
        }
    ));
}

#[test]
fn pickup_and_sendmail() {
    let ev = events(SENDMAIL);
    assert_eq!(ev[0], Event::Other);
    assert!(matches!(&ev[3], Event::Delivery(d) if d.status == DeliveryStatus::Sent));
}

#[test]
fn malformed_known_lines_are_errors() {
    let cut = "Nov 23 20:17:57 mail postfix/smtp[1]: 4jYHLY3rhwz5n8M: to=<carol@example.com";
    assert_eq!(parse(cut), Err(ParseError::Malformed("delivery")));
    let no_status = "Nov 23 20:17:57 mail postfix/smtp[1]: 4jYHLY3rhwz5n8M: to=<c@d.e>, relay=x";
    assert_eq!(parse(no_status), Err(ParseError::Malformed("delivery")));
    assert_eq!(parse("garbage"), Err(ParseError::NotSyslog));
    assert_eq!(parse(""), Err(ParseError::NotSyslog));
    let reject = "Nov 23 20:17:58 mail postfix/smtpd[1]: NOQUEUE: reject: RCPT from x: 550 no";
    assert_eq!(parse(reject), Err(ParseError::Malformed("reject")));
}

#[test]
fn space_padded_day_and_enhanced_codes() {
    let line = "Nov  3 01:02:03 mail postfix/qmgr[1]: 4jYHLY0Qbrz5n8M: removed";
    let parsed = parse(line).unwrap();
    assert_eq!(parsed.time, "Nov  3 01:02:03");
    let ts = parsed.timestamp(2026).unwrap();
    assert_eq!(ts.to_string(), "2026-11-03 01:02:03");
    assert_eq!(enhanced_code("550 5.1.1 <x>: no"), Some("5.1.1"));
    assert_eq!(enhanced_code("450 try later"), None);
    assert!(!is_enhanced_code("5.1"));
    assert!(!is_enhanced_code("7.1.1"));
}

fn sample_line() -> impl Strategy<Value = String> {
    let lines: Vec<String> = ALL
        .iter()
        .flat_map(|s| s.lines())
        .map(str::to_owned)
        .collect();
    proptest::sample::select(lines)
}

/// What the follower does with raw bytes: lossy UTF-8, then parse.
fn parse_bytes(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let _ = parse(&text);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn truncated_samples_never_panic(line in sample_line(), cut in 0usize..400) {
        let bytes = line.as_bytes();
        parse_bytes(&bytes[..cut.min(bytes.len())]);
    }

    #[test]
    fn mangled_samples_never_panic(
        line in sample_line(),
        edits in proptest::collection::vec((0usize..400, any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = line.into_bytes();
        for (at, byte, op) in edits {
            let at = at.min(bytes.len());
            match op {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => {}
            }
        }
        parse_bytes(&bytes);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        parse_bytes(&bytes);
    }

    #[test]
    fn random_text_with_our_keywords_never_panics(
        parts in proptest::collection::vec(prop_oneof![
            Just("Nov 23 20:17:57 mail postfix/qmgr[1]: ".to_owned()),
            Just("4jYHLY0Qbrz5n8M: ".to_owned()),
            Just("NOQUEUE: reject: RCPT from ".to_owned()),
            Just("to=<".to_owned()), Just("from=<".to_owned()), Just(">, ".to_owned()),
            Just("status=".to_owned()), Just("; from=<".to_owned()), Just("> to=<".to_owned()),
            Just("(".to_owned()), Just(")".to_owned()), Just(": ".to_owned()),
            "[ -~]{0,12}", "\\PC{0,4}",
        ], 0..12),
    ) {
        let line = parts.concat();
        let _ = parse(&line);
    }

    /// A delivery line built from generated fields parses back to those fields.
    #[test]
    fn delivery_round_trip(
        local in "[a-z0-9._+-]{1,20}",
        domain in "[a-z0-9-]{1,20}\\.[a-z]{2,6}",
        orig in proptest::option::of("[a-z0-9._-]{1,12}@[a-z]{1,10}\\.test"),
        status in prop_oneof![Just("sent"), Just("deferred"), Just("bounced")],
        dsn in "[245]\\.[0-9]\\.[0-9]{1,2}",
        response in "[ -~]{0,80}",
    ) {
        let to = format!("{local}@{domain}");
        let orig_part = orig.as_ref().map(|o| format!("orig_to=<{o}>, ")).unwrap_or_default();
        let line = format!(
            "Nov 23 20:17:57 mail postfix/smtp[24165]: 4jYHLY3rhwz5n8M: to=<{to}>, {orig_part}\
             relay=127.0.0.1[127.0.0.1]:2526, delay=0.02, delays=0/0.01/0/0, dsn={dsn}, \
             status={status} ({response})"
        );
        let parsed = parse(&line).unwrap();
        let Event::Delivery(d) = parsed.event else { panic!("not a delivery: {line}") };
        prop_assert_eq!(d.to, to.as_str());
        prop_assert_eq!(d.orig_to, orig.as_deref());
        prop_assert_eq!(d.dsn, Some(dsn.as_str()));
        prop_assert_eq!(d.response, response.as_str());
        let want = match status {
            "sent" => DeliveryStatus::Sent,
            "deferred" => DeliveryStatus::Deferred,
            _ => DeliveryStatus::Bounced,
        };
        prop_assert_eq!(d.status, want);
    }
}
