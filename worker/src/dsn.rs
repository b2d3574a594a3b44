//! RFC 3464 delivery status notifications: mail-parser splits the MIME; the
//! `message/delivery-status` fields (RFC 822-style header groups, one per-message group then one
//! per recipient) are parsed here, because mail-parser hands that part over as opaque bytes.
//!
//! What a report tells us: which message (the VERP tag of `bounces+<tag>@...`, the original's
//! Message-ID, Postfix's queue id) and, per recipient, whether it failed for good.

use mail_parser::{MessageParser, MimeHeaders};

use crate::logline::is_enhanced_code;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// `<tag>` of `bounces+<tag>@...` in `Delivered-To`/`To`: identifies our message.
    pub verp_tag: Option<String>,
    /// `X-Postfix-Queue-ID` of the original message.
    pub queue_id: Option<String>,
    pub envelope_id: Option<String>,
    pub reporting_mta: Option<String>,
    /// Message-ID of the returned original (with angle brackets), when it is attached.
    pub original_message_id: Option<String>,
    pub recipients: Vec<RecipientReport>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// Address without its `rfc822;` type, lowercased.
    pub final_recipient: String,
    pub original_recipient: Option<String>,
    pub action: Action,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
    Other(String),
}

/// What a recipient's report means for its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Permanent failure: the recipient bounced with this (5.x.x) code.
    Bounced { dsn_code: String },
    /// The MTA gave up after temporary failures (a 4.x.x code with `Action: failed`).
    Failed { dsn_code: String },
    /// `delayed`, `delivered`, `relayed`, `expanded`: not a bounce.
    NotABounce,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    #[error("not a MIME message")]
    NotMime,
    #[error("no message/delivery-status part")]
    NoStatusPart,
    #[error("the delivery-status part names no recipient")]
    NoRecipients,
}

/// Parses a raw report.
pub fn parse_report(raw: &[u8]) -> Result<DeliveryReport, DsnError> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(DsnError::NotMime)?;
    let mut status_part = None;
    let mut original_message_id = None;
    for part in &message.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let subtype = ct.subtype().unwrap_or("").to_ascii_lowercase();
        match (ct.ctype().to_ascii_lowercase().as_str(), subtype.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") if status_part.is_none() => {
                status_part = Some(part.contents());
            }
            ("message", "rfc822" | "global") => {
                original_message_id = part.message().and_then(|m| m.message_id()).map(bracket);
            }
            ("text", "rfc822-headers") => {
                original_message_id = MessageParser::default()
                    .parse_headers(part.contents())
                    .and_then(|m| m.message_id().map(bracket));
            }
            _ => {}
        }
    }
    let fields = status_part.ok_or(DsnError::NoStatusPart)?;
    let text = String::from_utf8_lossy(fields);
    let mut groups = field_groups(&text).into_iter();
    let per_message = groups.next().unwrap_or_default();
    let recipients: Vec<RecipientReport> = groups.filter_map(recipient_report).collect();
    if recipients.is_empty() {
        return Err(DsnError::NoRecipients);
    }
    let verp_tag = message
        .headers_raw()
        .filter(|(name, _)| {
            name.eq_ignore_ascii_case("Delivered-To")
                || name.eq_ignore_ascii_case("X-Original-To")
                || name.eq_ignore_ascii_case("To")
        })
        .find_map(|(_, value)| verp_tag(value));
    Ok(DeliveryReport {
        verp_tag,
        queue_id: field(&per_message, "x-postfix-queue-id").map(str::to_owned),
        envelope_id: field(&per_message, "original-envelope-id").map(str::to_owned),
        reporting_mta: field(&per_message, "reporting-mta").map(strip_type),
        original_message_id,
        recipients,
    })
}

fn bracket(id: &str) -> String {
    format!(
        "<{}>",
        id.trim().trim_start_matches('<').trim_end_matches('>')
    )
}

/// `<tag>` from an address `bounces+<tag>@domain` anywhere in a header value.
pub fn verp_tag(header_value: &str) -> Option<String> {
    let (_, after) = header_value.split_once("bounces+")?;
    let end = after.find('@')?;
    let tag = after.get(..end)?;
    let valid = !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    valid.then(|| tag.to_ascii_lowercase())
}

type Group = Vec<(String, String)>;

/// Splits the status part into blank-line-separated groups of unfolded `Name: value` fields.
fn field_groups(text: &str) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut current: Group = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            // A folded continuation of the previous field.
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

fn field<'g>(group: &'g Group, name: &str) -> Option<&'g str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `rfc822; a@b` -> `a@b` (the address type is not needed to match our recipients).
fn strip_type(value: &str) -> String {
    value
        .split_once(';')
        .map_or(value, |(_, v)| v)
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

fn recipient_report(group: Group) -> Option<RecipientReport> {
    let final_recipient = strip_type(field(&group, "final-recipient")?).to_lowercase();
    if final_recipient.is_empty() {
        return None;
    }
    let action = match field(&group, "action")?.to_ascii_lowercase().as_str() {
        "failed" => Action::Failed,
        "delayed" => Action::Delayed,
        "delivered" => Action::Delivered,
        "relayed" => Action::Relayed,
        "expanded" => Action::Expanded,
        other => Action::Other(other.to_owned()),
    };
    Some(RecipientReport {
        final_recipient,
        original_recipient: field(&group, "original-recipient")
            .map(|v| strip_type(v).to_lowercase())
            .filter(|v| !v.is_empty()),
        action,
        status: field(&group, "status")
            .and_then(|s| s.split_whitespace().next())
            .map(str::to_owned),
        diagnostic: field(&group, "diagnostic-code").map(str::to_owned),
        remote_mta: field(&group, "remote-mta").map(strip_type),
    })
}

impl RecipientReport {
    /// Classifies the report: `Action: failed` is a bounce (5.x.x) or a give-up after temporary
    /// failures (4.x.x); a missing or bare `5.0.0` code is refined from the diagnostic text.
    pub fn outcome(&self) -> Outcome {
        if self.action != Action::Failed {
            return Outcome::NotABounce;
        }
        let code = self.status.as_deref().filter(|s| is_enhanced_code(s));
        match code {
            Some(c) if c.starts_with("4.") => Outcome::Failed {
                dsn_code: c.to_owned(),
            },
            Some(c) if c != "5.0.0" && c.starts_with("5.") => Outcome::Bounced {
                dsn_code: c.to_owned(),
            },
            // `Action: failed` is final whatever the code says; without a usable code the
            // diagnostic is the best evidence of why.
            _ => Outcome::Bounced {
                dsn_code: classify_diagnostic(self.diagnostic.as_deref().unwrap_or("")).to_owned(),
            },
        }
    }

    /// The fields, as stored in the event's evidence.
    pub fn evidence(&self, report: &DeliveryReport) -> String {
        let mut out = format!(
            "Final-Recipient: rfc822; {}\nAction: {}",
            self.final_recipient,
            match &self.action {
                Action::Failed => "failed",
                Action::Delayed => "delayed",
                Action::Delivered => "delivered",
                Action::Relayed => "relayed",
                Action::Expanded => "expanded",
                Action::Other(o) => o.as_str(),
            }
        );
        let optional = [
            ("Original-Recipient: rfc822; ", &self.original_recipient),
            ("Status: ", &self.status),
            ("Remote-MTA: dns; ", &self.remote_mta),
            ("Diagnostic-Code: ", &self.diagnostic),
            ("X-Postfix-Queue-ID: ", &report.queue_id),
            ("Reporting-MTA: dns; ", &report.reporting_mta),
            ("Original-Message-ID: ", &report.original_message_id),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                out.push('\n');
                out.push_str(name);
                out.push_str(v);
            }
        }
        out
    }
}

/// A code for a diagnostic that came with no specific one (`5.0.0`): an RFC 3463 code whose
/// class says the same as the text, so suppression and statistics treat it like a coded report.
pub fn classify_diagnostic(diagnostic: &str) -> &'static str {
    let text = diagnostic.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if has(&[
        "host not found",
        "domain not found",
        "name not found",
        "no mx",
        "name service error",
    ]) {
        "5.1.2"
    } else if has(&[
        "user unknown",
        "unknown user",
        "no such user",
        "user doesn't exist",
        "does not exist",
        "no such mailbox",
        "mailbox unavailable",
        "invalid recipient",
        "recipient address rejected",
        "address rejected",
        "not found",
    ]) {
        "5.1.1"
    } else if has(&[
        "mailbox full",
        "quota",
        "over quota",
        "insufficient storage",
    ]) {
        "5.2.2"
    } else if has(&["message too large", "size limit", "too big"]) {
        "5.3.4"
    } else if has(&[
        "spam",
        "blocked",
        "blacklist",
        "blocklist",
        "policy",
        "denied",
    ]) {
        "5.7.1"
    } else {
        "5.0.0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The real reports from `mail-samples/dsn-*.eml` (Postfix 3.7.11 to the `bounces` mailbox).
    const ERROR_TRANSPORT: &str = r#"Return-Path: <>
Delivered-To: bounces@mailapi.test
Received: from mail.mailapi.test
	by mail.mailapi.test with LMTP
	id cOpgOnWfBGtBXgAAg+zDdQ
	(envelope-from <>)
	for <bounces@mailapi.test>; Mon, 23 Nov 2026 20:17:57 +0000
Received: by mail.mailapi.test (Postfix)
	id 4jYHLY6w8Bz5n9v; Mon, 23 Nov 2026 20:17:57 +0000 (UTC)
Date: Mon, 23 Nov 2026 20:17:57 +0000 (UTC)
From: Mail Delivery System <MAILER-DAEMON@mailapi.test>
Subject: Undelivered Mail Returned to Sender
To: bounces@mailapi.test
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4jYHLY6pzRz5n9c.1795465077/mail.mailapi.test"
Content-Transfer-Encoding: 8bit
Message-Id: <4jYHLY6w8Bz5n9v@mail.mailapi.test>

This is a MIME-encapsulated message.

--4jYHLY6pzRz5n9c.1795465077/mail.mailapi.test
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mail.mailapi.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<gina@error.example>: mailapi-lab: simulated unknown user

--4jYHLY6pzRz5n9c.1795465077/mail.mailapi.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.mailapi.test
X-Postfix-Queue-ID: 4jYHLY6pzRz5n9c
X-Postfix-Sender: rfc822; bounces@mailapi.test
Arrival-Date: Mon, 23 Nov 2026 20:17:57 +0000 (UTC)

Final-Recipient: rfc822; gina@error.example
Original-Recipient: rfc822;gina@error.example
Action: failed
Status: 5.1.1
Diagnostic-Code: X-Postfix; mailapi-lab: simulated unknown user

--4jYHLY6pzRz5n9c.1795465077/mail.mailapi.test
Content-Description: Undelivered Message
Content-Type: message/rfc822
Content-Transfer-Encoding: 8bit

Return-Path: <bounces@mailapi.test>
Received: from verify.mailapi-lab (localhost [127.0.0.1])
	by mail.mailapi.test (Postfix) with ESMTPA id 4jYHLY6pzRz5n9c
	for <gina@error.example>; Mon, 23 Nov 2026 20:17:57 +0000 (UTC)
Date: Mon, 23 Nov 2026 20:17:57 +0000
To: gina@error.example
From: "Alice" <alice@mailapi.test>
Subject: mailapi-lab verify error_transport 20261123201756-24105
Message-Id: <verify-error_transport-20261123201756-24105@mailapi.test>
X-Mailer: swaks v20201014.0 jetmore.org/john/code/swaks/

mailapi-lab verify error_transport 20261123201756-24105



--4jYHLY6pzRz5n9c.1795465077/mail.mailapi.test--
"#;

    const EXTERNAL_HARD: &str = r#"Return-Path: <>
Delivered-To: bounces@mailapi.test
Received: from mail.mailapi.test
	by mail.mailapi.test with LMTP
	id CLcUJ3WfBGtBXgAAg+zDdQ
	(envelope-from <>)
	for <bounces@mailapi.test>; Mon, 23 Nov 2026 20:17:57 +0000
Received: by mail.mailapi.test (Postfix)
	id 4jYHLY4cZ7z5n8f; Mon, 23 Nov 2026 20:17:57 +0000 (UTC)
Date: Mon, 23 Nov 2026 20:17:57 +0000 (UTC)
From: Mail Delivery System <MAILER-DAEMON@mailapi.test>
Subject: Undelivered Mail Returned to Sender
To: bounces@mailapi.test
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4jYHLY4Yy3z5n8M.1795465077/mail.mailapi.test"
Content-Transfer-Encoding: 8bit
Message-Id: <4jYHLY4cZ7z5n8f@mail.mailapi.test>

This is a MIME-encapsulated message.

--4jYHLY4Yy3z5n8M.1795465077/mail.mailapi.test
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mail.mailapi.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<dave@bounce.example>: host 127.0.0.1[127.0.0.1] said: 550 5.1.1 Recipient
    address rejected: User unknown (smtp-sink) (in reply to RCPT TO command)

--4jYHLY4Yy3z5n8M.1795465077/mail.mailapi.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.mailapi.test
X-Postfix-Queue-ID: 4jYHLY4Yy3z5n8M
X-Postfix-Sender: rfc822; bounces@mailapi.test
Arrival-Date: Mon, 23 Nov 2026 20:17:57 +0000 (UTC)

Final-Recipient: rfc822; dave@bounce.example
Original-Recipient: rfc822;dave@bounce.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; 127.0.0.1
Diagnostic-Code: smtp; 550 5.1.1 Recipient address rejected: User unknown
    (smtp-sink)

--4jYHLY4Yy3z5n8M.1795465077/mail.mailapi.test
Content-Description: Undelivered Message
Content-Type: message/rfc822
Content-Transfer-Encoding: 8bit

Return-Path: <bounces@mailapi.test>
Received: from verify.mailapi-lab (localhost [127.0.0.1])
	by mail.mailapi.test (Postfix) with ESMTPA id 4jYHLY4Yy3z5n8M
	for <dave@bounce.example>; Mon, 23 Nov 2026 20:17:57 +0000 (UTC)
Date: Mon, 23 Nov 2026 20:17:57 +0000
To: dave@bounce.example
From: "Alice" <alice@mailapi.test>
Subject: mailapi-lab verify external_hard 20261123201756-24105
Message-Id: <verify-external_hard-20261123201756-24105@mailapi.test>
X-Mailer: swaks v20201014.0 jetmore.org/john/code/swaks/

mailapi-lab verify external_hard 20261123201756-24105



--4jYHLY4Yy3z5n8M.1795465077/mail.mailapi.test--
"#;

    const EXTERNAL_SOFT: &str = r#"Return-Path: <>
Delivered-To: bounces@mailapi.test
Received: from mail.mailapi.test
	by mail.mailapi.test with LMTP
	id 0GEsC3mfBGtBXgAAg+zDdQ
	(envelope-from <>)
	for <bounces@mailapi.test>; Mon, 23 Nov 2026 20:18:01 +0000
Received: by mail.mailapi.test (Postfix)
	id 4jYHLd1HTWz5nCm; Mon, 23 Nov 2026 20:18:01 +0000 (UTC)
Date: Mon, 23 Nov 2026 20:18:01 +0000 (UTC)
From: Mail Delivery System <MAILER-DAEMON@mailapi.test>
Subject: Undelivered Mail Returned to Sender
To: bounces@mailapi.test
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4jYHLY5PLrz5n8M.1795465081/mail.mailapi.test"
Content-Transfer-Encoding: 8bit
Message-Id: <4jYHLd1HTWz5nCm@mail.mailapi.test>

This is a MIME-encapsulated message.

--4jYHLY5PLrz5n8M.1795465081/mail.mailapi.test
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mail.mailapi.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<erin@defer.example>: host 127.0.0.1[127.0.0.1] said: 450 4.2.0 Mailbox busy,
    try again later (smtp-sink) (in reply to RCPT TO command)

--4jYHLY5PLrz5n8M.1795465081/mail.mailapi.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.mailapi.test
X-Postfix-Queue-ID: 4jYHLY5PLrz5n8M
X-Postfix-Sender: rfc822; bounces@mailapi.test
Arrival-Date: Mon, 23 Nov 2026 20:17:57 +0000 (UTC)

Final-Recipient: rfc822; erin@defer.example
Original-Recipient: rfc822;erin@defer.example
Action: failed
Status: 4.2.0
Remote-MTA: dns; 127.0.0.1
Diagnostic-Code: smtp; 450 4.2.0 Mailbox busy, try again later (smtp-sink)

--4jYHLY5PLrz5n8M.1795465081/mail.mailapi.test
Content-Description: Undelivered Message
Content-Type: message/rfc822
Content-Transfer-Encoding: 8bit

Return-Path: <bounces@mailapi.test>
Received: from verify.mailapi-lab (localhost [127.0.0.1])
	by mail.mailapi.test (Postfix) with ESMTPA id 4jYHLY5PLrz5n8M
	for <erin@defer.example>; Mon, 23 Nov 2026 20:17:57 +0000 (UTC)
Date: Mon, 23 Nov 2026 20:17:57 +0000
To: erin@defer.example
From: "Alice" <alice@mailapi.test>
Subject: mailapi-lab verify external_soft 20261123201756-24105
Message-Id: <verify-external_soft-20261123201756-24105@mailapi.test>
X-Mailer: swaks v20201014.0 jetmore.org/john/code/swaks/

mailapi-lab verify external_soft 20261123201756-24105



--4jYHLY5PLrz5n8M.1795465081/mail.mailapi.test--
"#;

    const UNKNOWN_LOCAL: &str = r#"Return-Path: <>
Delivered-To: bounces@mailapi.test
Received: from mail.mailapi.test
	by mail.mailapi.test with LMTP
	id aCVyFHWfBGtBXgAAg+zDdQ
	(envelope-from <>)
	for <bounces@mailapi.test>; Mon, 23 Nov 2026 20:17:57 +0000
Received: by mail.mailapi.test (Postfix)
	id 4jYHLY2P9zz5n8f; Mon, 23 Nov 2026 20:17:57 +0000 (UTC)
Date: Mon, 23 Nov 2026 20:17:57 +0000 (UTC)
From: Mail Delivery System <MAILER-DAEMON@mailapi.test>
Subject: Undelivered Mail Returned to Sender
To: bounces@mailapi.test
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4jYHLY2GC8z5n8M.1795465077/mail.mailapi.test"
Content-Transfer-Encoding: 8bit
Message-Id: <4jYHLY2P9zz5n8f@mail.mailapi.test>

This is a MIME-encapsulated message.

--4jYHLY2GC8z5n8M.1795465077/mail.mailapi.test
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mail.mailapi.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<nobody@mailapi.test>: host mail.mailapi.test[private/dovecot-lmtp] said: 550
    5.1.1 <nobody@mailapi.test> User doesn't exist: nobody@mailapi.test (in
    reply to RCPT TO command)

--4jYHLY2GC8z5n8M.1795465077/mail.mailapi.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.mailapi.test
X-Postfix-Queue-ID: 4jYHLY2GC8z5n8M
X-Postfix-Sender: rfc822; bounces@mailapi.test
Arrival-Date: Mon, 23 Nov 2026 20:17:57 +0000 (UTC)

Final-Recipient: rfc822; nobody@mailapi.test
Original-Recipient: rfc822;nobody@mailapi.test
Action: failed
Status: 5.1.1
Remote-MTA: dns; mail.mailapi.test
Diagnostic-Code: smtp; 550 5.1.1 <nobody@mailapi.test> User doesn't exist:
    nobody@mailapi.test

--4jYHLY2GC8z5n8M.1795465077/mail.mailapi.test
Content-Description: Undelivered Message
Content-Type: message/rfc822
Content-Transfer-Encoding: 8bit

Return-Path: <bounces@mailapi.test>
Received: from verify.mailapi-lab (localhost [127.0.0.1])
	by mail.mailapi.test (Postfix) with ESMTPA id 4jYHLY2GC8z5n8M
	for <nobody@mailapi.test>; Mon, 23 Nov 2026 20:17:57 +0000 (UTC)
Date: Mon, 23 Nov 2026 20:17:57 +0000
To: nobody@mailapi.test
From: "Alice" <alice@mailapi.test>
Subject: mailapi-lab verify unknown_local 20261123201756-24105
Message-Id: <verify-unknown_local-20261123201756-24105@mailapi.test>
X-Mailer: swaks v20201014.0 jetmore.org/john/code/swaks/

mailapi-lab verify unknown_local 20261123201756-24105



--4jYHLY2GC8z5n8M.1795465077/mail.mailapi.test--
"#;

    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    #[test]
    fn unknown_local_user() {
        let r = parse_report(&crlf(UNKNOWN_LOCAL)).unwrap();
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
        let r = parse_report(&crlf(EXTERNAL_HARD)).unwrap();
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
        let r = parse_report(&crlf(EXTERNAL_SOFT)).unwrap();
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
            ERROR_TRANSPORT,
            EXTERNAL_HARD,
            EXTERNAL_SOFT,
            UNKNOWN_LOCAL,
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
}
