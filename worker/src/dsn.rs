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
mod tests;
