//! Parser of Postfix log lines (`maillog_file` format, see `mail-samples/postfix-*.log`):
//! `Mon DD HH:MM:SS host postfix/<service>[pid]: <QID>: <payload>`.
//!
//! Plain string splitting, no regex: the follower parses every line of a busy MTA's log. Borrowed
//! fields keep it allocation-free. Lines we have no use for are [`Event::Other`]; a line that
//! claims to be one we use but is cut or mangled is a [`ParseError`]. Never panics: every index
//! comes from `find`/`split_once` on the same string, so slicing stays on char boundaries.

/// One parsed line: the syslog header and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// `Nov 23 20:17:57`: no year, no zone; see [`LogLine::timestamp`].
    pub time: &'a str,
    pub host: &'a str,
    /// The program as logged: `postfix/submission/smtpd`.
    pub program: &'a str,
    pub event: Event<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// `cleanup`: the queue id belongs to this Message-ID (with its angle brackets).
    Cleanup {
        qid: &'a str,
        message_id: &'a str,
    },
    /// `qmgr`: the queue file is committed and active.
    Qmgr {
        qid: &'a str,
        from: &'a str,
        size: Option<u64>,
        nrcpt: Option<u32>,
    },
    /// One recipient's delivery attempt.
    Delivery(Delivery<'a>),
    /// `status=expired` / `force-expired`: every recipient still open has failed.
    Expired {
        qid: &'a str,
        from: &'a str,
    },
    /// `reject: RCPT` by smtpd; `qid` is `None` for `NOQUEUE`.
    RcptReject {
        qid: Option<&'a str>,
        from: &'a str,
        to: &'a str,
        response: &'a str,
        client: &'a str,
    },
    /// `bounce`: the non-delivery report for `qid` was queued as `report_qid`.
    BounceNotification {
        qid: &'a str,
        report_qid: &'a str,
    },
    /// `qmgr`: every recipient is final and the queue file is gone.
    Removed {
        qid: &'a str,
    },
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<'a> {
    pub qid: &'a str,
    pub to: &'a str,
    pub orig_to: Option<&'a str>,
    pub relay: &'a str,
    pub delay: Option<&'a str>,
    pub dsn: Option<&'a str>,
    pub status: DeliveryStatus<'a>,
    /// The text in parentheses after the status, without them.
    pub response: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus<'a> {
    Sent,
    Deferred,
    Bounced,
    Expired,
    /// `deliverable`, `undeliverable` (address probes), `softbounce`, ...
    Other(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a syslog line")]
    NotSyslog,
    #[error("malformed {0} line")]
    Malformed(&'static str),
}

impl<'a> LogLine<'a> {
    /// The line's time as a naive local time in `year`; `None` when the header is not a time.
    pub fn timestamp(&self, year: i32) -> Option<chrono::NaiveDateTime> {
        let text = format!("{year} {}", self.time);
        chrono::NaiveDateTime::parse_from_str(&text, "%Y %b %e %H:%M:%S").ok()
    }
}

/// Parses one line (without its newline).
pub fn parse(line: &str) -> Result<LogLine<'_>, ParseError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (time, rest) = split_time(line).ok_or(ParseError::NotSyslog)?;
    let (host, rest) = rest.split_once(' ').ok_or(ParseError::NotSyslog)?;
    let (tag, payload) = rest.split_once(": ").ok_or(ParseError::NotSyslog)?;
    let program = tag.split_once('[').map_or(tag, |(p, _)| p);
    if host.is_empty() || program.is_empty() || program.contains(' ') {
        return Err(ParseError::NotSyslog);
    }
    let service = program.rsplit('/').next().unwrap_or(program);
    let event = parse_event(service, payload)?;
    Ok(LogLine {
        time,
        host,
        program,
        event,
    })
}

/// `Mon DD HH:MM:SS` (the day may be space-padded), then the rest after one space.
fn split_time(line: &str) -> Option<(&str, &str)> {
    let (month, after) = line.split_once(' ')?;
    let after_day = after.trim_start_matches(' ');
    let (day, after) = after_day.split_once(' ')?;
    let (clock, rest) = after.split_once(' ')?;
    let ok = month.len() == 3
        && month.bytes().all(|b| b.is_ascii_alphabetic())
        && !day.is_empty()
        && day.len() <= 2
        && day.bytes().all(|b| b.is_ascii_digit())
        && clock.len() == 8
        && clock.bytes().all(|b| b.is_ascii_digit() || b == b':');
    if !ok {
        return None;
    }
    let len = line.len() - rest.len() - 1;
    Some((line.get(..len)?, rest))
}

fn is_queue_id(s: &str) -> bool {
    (5..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn parse_event<'a>(service: &str, payload: &'a str) -> Result<Event<'a>, ParseError> {
    let Some((qid, body)) = payload.split_once(": ") else {
        return Ok(Event::Other);
    };
    let qid_opt = match qid {
        "NOQUEUE" => None,
        q if is_queue_id(q) => Some(q),
        _ => return Ok(Event::Other),
    };
    if let Some(rest) = body.strip_prefix("reject: RCPT from ") {
        return parse_reject(qid_opt, rest);
    }
    let Some(qid) = qid_opt else {
        return Ok(Event::Other);
    };
    if body.starts_with("to=<") {
        return parse_delivery(qid, body).map(Event::Delivery);
    }
    match service {
        "cleanup" => match body.strip_prefix("message-id=") {
            Some(id) => Ok(Event::Cleanup {
                qid,
                message_id: id.split(' ').next().unwrap_or(""),
            }),
            None => Ok(Event::Other),
        },
        "qmgr" if body == "removed" => Ok(Event::Removed { qid }),
        "qmgr" if body.starts_with("from=<") => parse_qmgr(qid, body),
        "bounce" => match body.strip_prefix("sender non-delivery notification: ") {
            Some(report) if is_queue_id(report.trim()) => Ok(Event::BounceNotification {
                qid,
                report_qid: report.trim(),
            }),
            Some(_) => Err(ParseError::Malformed("bounce")),
            None => Ok(Event::Other),
        },
        _ => Ok(Event::Other),
    }
}

/// `from=<a>, size=1, nrcpt=1 (queue active)` or `from=<a>, status=expired, returned to sender`.
fn parse_qmgr<'a>(qid: &'a str, body: &'a str) -> Result<Event<'a>, ParseError> {
    let fields = Fields::parse(body).ok_or(ParseError::Malformed("qmgr"))?;
    let from = fields.get("from").ok_or(ParseError::Malformed("qmgr"))?;
    if let Some(status) = fields.get("status") {
        return Ok(match status {
            "expired" | "force-expired" => Event::Expired { qid, from },
            _ => Event::Other,
        });
    }
    let nrcpt = fields
        .get("nrcpt")
        .map(|n| n.split(' ').next().unwrap_or(n));
    Ok(Event::Qmgr {
        qid,
        from,
        size: fields.get("size").and_then(|s| s.parse().ok()),
        nrcpt: nrcpt.and_then(|n| n.parse().ok()),
    })
}

/// `to=<a>, [orig_to=<b>,] relay=r, delay=d, delays=a/b/c/d, dsn=x.y.z, status=s (response)`.
fn parse_delivery<'a>(qid: &'a str, body: &'a str) -> Result<Delivery<'a>, ParseError> {
    let bad = ParseError::Malformed("delivery");
    let fields = Fields::parse(body).ok_or(bad.clone())?;
    let to = fields.get("to").ok_or(bad.clone())?;
    let status_word = fields.get("status").ok_or(bad.clone())?;
    let status = match status_word {
        "sent" => DeliveryStatus::Sent,
        "deferred" => DeliveryStatus::Deferred,
        "bounced" => DeliveryStatus::Bounced,
        "expired" => DeliveryStatus::Expired,
        "" => return Err(bad),
        other => DeliveryStatus::Other(other),
    };
    Ok(Delivery {
        qid,
        to,
        orig_to: fields.get("orig_to"),
        relay: fields.get("relay").unwrap_or(""),
        delay: fields.get("delay"),
        dsn: fields.get("dsn"),
        status,
        response: fields.tail,
    })
}

/// `localhost[127.0.0.1]: 550 5.1.1 <x>: Recipient address rejected: ...; from=<a> to=<b> ...`
fn parse_reject<'a>(qid: Option<&'a str>, rest: &'a str) -> Result<Event<'a>, ParseError> {
    let bad = ParseError::Malformed("reject");
    let (client, rest) = rest.split_once(": ").ok_or(bad.clone())?;
    // The response may quote client input; the envelope part Postfix appends comes last.
    let (response, envelope) = rest.rsplit_once("; from=<").ok_or(bad.clone())?;
    let (from, envelope) = envelope.split_once("> to=<").ok_or(bad.clone())?;
    let (to, _) = envelope.split_once('>').ok_or(bad)?;
    Ok(Event::RcptReject {
        qid,
        from,
        to,
        response,
        client,
    })
}

/// `key=value, key=<value>, ..., status=word (tail)` as found on qmgr and delivery lines.
struct Fields<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    /// The parenthesised text after `status=word`, without the parentheses.
    tail: &'a str,
}

impl<'a> Fields<'a> {
    fn parse(mut s: &'a str) -> Option<Self> {
        let mut pairs = Vec::with_capacity(8);
        let mut tail = "";
        while !s.is_empty() {
            let (key, rest) = s.split_once('=')?;
            if key.is_empty() || key.contains([' ', ',']) {
                return None;
            }
            let (value, rest) = if let Some(inner) = rest.strip_prefix('<') {
                // An address: up to the `>` that ends the field.
                match inner.find(">, ") {
                    Some(end) => (inner.get(..end)?, inner.get(end + 3..)?),
                    None => (inner.strip_suffix('>')?, ""),
                }
            } else if key == "status" {
                match rest.split_once(' ') {
                    Some((word, after)) => {
                        let after = after.trim();
                        tail = after
                            .strip_prefix('(')
                            .map(|t| t.strip_suffix(')').unwrap_or(t))
                            .unwrap_or(after);
                        (word.trim_end_matches(','), "")
                    }
                    None => (rest, ""),
                }
            } else {
                match rest.split_once(", ") {
                    Some((v, after)) => (v, after),
                    None => (rest, ""),
                }
            };
            pairs.push((key, value));
            s = rest;
        }
        Some(Self { pairs, tail })
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// The enhanced status code (`5.1.1`) in an SMTP reply text such as `550 5.1.1 <x>: ...`.
pub fn enhanced_code(response: &str) -> Option<&str> {
    response.split(' ').take(3).find(|t| is_enhanced_code(t))
}

pub fn is_enhanced_code(t: &str) -> bool {
    let mut parts = t.split('.');
    let class = parts.next().unwrap_or("");
    let (Some(subject), Some(detail), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    matches!(class, "2" | "4" | "5")
        && (1..=3).contains(&subject.len())
        && (1..=3).contains(&detail.len())
        && subject
            .bytes()
            .chain(detail.bytes())
            .all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The real samples from `mail-samples/postfix-*.log` (Postfix 3.7.11), one const per file.
    const ALIAS: &str = "\
Nov 23 20:17:59 mail postfix/smtpd[24114]: 4jYHLb3QyJz5nCT: client=localhost[127.0.0.1]\n\
Nov 23 20:17:59 mail postfix/cleanup[24122]: 4jYHLb3QyJz5nCT: message-id=<verify-alias-20261123201756-24105@mailapi.test>\n\
Nov 23 20:17:59 mail postfix/qmgr[23597]: 4jYHLb3QyJz5nCT: from=<bounces@mailapi.test>, size=526, nrcpt=1 (queue active)\n\
Nov 23 20:17:59 mail postfix/lmtp[24124]: 4jYHLb3QyJz5nCT: to=<admin@mailapi.test>, orig_to=<postmaster@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.02, delays=0/0/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 <admin@mailapi.test> kKVrHXefBGtBXgAAg+zDdQ Saved)\n\
Nov 23 20:17:59 mail postfix/qmgr[23597]: 4jYHLb3QyJz5nCT: removed\n";
    const ERROR_TRANSPORT: &str = "\
Nov 23 20:17:57 mail postfix/submission/smtpd[24142]: 4jYHLY6pzRz5n9c: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=alice@mailapi.test\n\
Nov 23 20:17:57 mail postfix/cleanup[24122]: 4jYHLY6pzRz5n9c: message-id=<verify-error_transport-20261123201756-24105@mailapi.test>\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY6pzRz5n9c: from=<bounces@mailapi.test>, size=547, nrcpt=1 (queue active)\n\
Nov 23 20:17:57 mail postfix/error[24229]: 4jYHLY6pzRz5n9c: to=<gina@error.example>, relay=none, delay=0.01, delays=0/0.01/0/0, dsn=5.1.1, status=bounced (mailapi-lab: simulated unknown user)\n\
Nov 23 20:17:57 mail postfix/bounce[24143]: 4jYHLY6pzRz5n9c: sender non-delivery notification: 4jYHLY6w8Bz5n9v\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY6pzRz5n9c: removed\n\
Nov 23 20:17:57 mail postfix/cleanup[24122]: 4jYHLY6w8Bz5n9v: message-id=<4jYHLY6w8Bz5n9v@mail.mailapi.test>\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY6w8Bz5n9v: from=<>, size=2471, nrcpt=1 (queue active)\n\
Nov 23 20:17:57 mail postfix/lmtp[24124]: 4jYHLY6w8Bz5n9v: to=<bounces@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 <bounces@mailapi.test> cOpgOnWfBGtBXgAAg+zDdQ Saved)\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY6w8Bz5n9v: removed\n";
    const EXPIRED: &str = "\
Nov 23 20:17:57 mail postfix/submission/smtpd[24142]: 4jYHLY5PLrz5n8M: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=alice@mailapi.test\n\
Nov 23 20:17:57 mail postfix/cleanup[24122]: 4jYHLY5PLrz5n8M: message-id=<verify-external_soft-20261123201756-24105@mailapi.test>\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY5PLrz5n8M: from=<bounces@mailapi.test>, size=541, nrcpt=1 (queue active)\n\
Nov 23 20:17:57 mail postfix/smtp[24165]: 4jYHLY5PLrz5n8M: to=<erin@defer.example>, relay=127.0.0.1[127.0.0.1]:2528, delay=0.02, delays=0.01/0/0/0.01, dsn=4.2.0, status=deferred (host 127.0.0.1[127.0.0.1] said: 450 4.2.0 Mailbox busy, try again later (smtp-sink) (in reply to RCPT TO command))\n\
Nov 23 20:18:01 mail postfix/postsuper[24372]: 4jYHLY5PLrz5n8M: expired\n\
Nov 23 20:18:01 mail postfix/qmgr[23597]: 4jYHLY5PLrz5n8M: from=<bounces@mailapi.test>, size=541, nrcpt=1 (queue active)\n\
Nov 23 20:18:01 mail postfix/qmgr[23597]: 4jYHLY5PLrz5n8M: from=<bounces@mailapi.test>, status=force-expired, returned to sender\n\
Nov 23 20:18:01 mail postfix/bounce[24197]: 4jYHLY5PLrz5n8M: sender non-delivery notification: 4jYHLd1HTWz5nCm\n\
Nov 23 20:18:01 mail postfix/qmgr[23597]: 4jYHLY5PLrz5n8M: removed\n\
Nov 23 20:18:01 mail postfix/cleanup[24122]: 4jYHLd1HTWz5nCm: message-id=<4jYHLd1HTWz5nCm@mail.mailapi.test>\n\
Nov 23 20:18:01 mail postfix/qmgr[23597]: 4jYHLd1HTWz5nCm: from=<>, size=2587, nrcpt=1 (queue active)\n\
Nov 23 20:18:01 mail postfix/lmtp[24124]: 4jYHLd1HTWz5nCm: to=<bounces@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 <bounces@mailapi.test> 0GEsC3mfBGtBXgAAg+zDdQ Saved)\n\
Nov 23 20:18:01 mail postfix/qmgr[23597]: 4jYHLd1HTWz5nCm: removed\n";
    const EXTERNAL_DOWN: &str = "\
Nov 23 20:17:57 mail postfix/submission/smtpd[24142]: 4jYHLY66Z1z5n90: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=alice@mailapi.test\n\
Nov 23 20:17:57 mail postfix/cleanup[24122]: 4jYHLY66Z1z5n90: message-id=<verify-external_down-20261123201756-24105@mailapi.test>\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY66Z1z5n90: from=<bounces@mailapi.test>, size=541, nrcpt=1 (queue active)\n\
Nov 23 20:17:57 mail postfix/smtp[24165]: 4jYHLY66Z1z5n90: to=<frank@down.example>, relay=none, delay=0, delays=0/0/0/0, dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:2529: Connection refused)\n";
    const EXTERNAL_HARD: &str = "\
Nov 23 20:17:57 mail postfix/submission/smtpd[24142]: 4jYHLY4Yy3z5n8M: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=alice@mailapi.test\n\
Nov 23 20:17:57 mail postfix/cleanup[24122]: 4jYHLY4Yy3z5n8M: message-id=<verify-external_hard-20261123201756-24105@mailapi.test>\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY4Yy3z5n8M: from=<bounces@mailapi.test>, size=543, nrcpt=1 (queue active)\n\
Nov 23 20:17:57 mail postfix/smtp[24165]: 4jYHLY4Yy3z5n8M: to=<dave@bounce.example>, relay=127.0.0.1[127.0.0.1]:2527, delay=0.01, delays=0/0/0/0, dsn=5.1.1, status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1 Recipient address rejected: User unknown (smtp-sink) (in reply to RCPT TO command))\n\
Nov 23 20:17:57 mail postfix/bounce[24143]: 4jYHLY4Yy3z5n8M: sender non-delivery notification: 4jYHLY4cZ7z5n8f\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY4Yy3z5n8M: removed\n\
Nov 23 20:17:57 mail postfix/cleanup[24122]: 4jYHLY4cZ7z5n8f: message-id=<4jYHLY4cZ7z5n8f@mail.mailapi.test>\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY4cZ7z5n8f: from=<>, size=2619, nrcpt=1 (queue active)\n\
Nov 23 20:17:57 mail postfix/lmtp[24124]: 4jYHLY4cZ7z5n8f: to=<bounces@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.01, delays=0/0/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 <bounces@mailapi.test> CLcUJ3WfBGtBXgAAg+zDdQ Saved)\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY4cZ7z5n8f: removed\n";
    const EXTERNAL_OK: &str = "\
Nov 23 20:17:57 mail postfix/submission/smtpd[24142]: 4jYHLY3rhwz5n8M: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=alice@mailapi.test\n\
Nov 23 20:17:57 mail postfix/cleanup[24122]: 4jYHLY3rhwz5n8M: message-id=<verify-external_ok-20261123201756-24105@mailapi.test>\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY3rhwz5n8M: from=<bounces@mailapi.test>, size=533, nrcpt=1 (queue active)\n\
Nov 23 20:17:57 mail postfix/smtp[24165]: 4jYHLY3rhwz5n8M: to=<carol@example.com>, relay=127.0.0.1[127.0.0.1]:2526, delay=0.02, delays=0/0.01/0/0, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY3rhwz5n8M: removed\n";
    const EXTERNAL_SOFT: &str = "\
Nov 23 20:17:57 mail postfix/submission/smtpd[24142]: 4jYHLY5PLrz5n8M: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=alice@mailapi.test\n\
Nov 23 20:17:57 mail postfix/cleanup[24122]: 4jYHLY5PLrz5n8M: message-id=<verify-external_soft-20261123201756-24105@mailapi.test>\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY5PLrz5n8M: from=<bounces@mailapi.test>, size=541, nrcpt=1 (queue active)\n\
Nov 23 20:17:57 mail postfix/smtp[24165]: 4jYHLY5PLrz5n8M: to=<erin@defer.example>, relay=127.0.0.1[127.0.0.1]:2528, delay=0.02, delays=0.01/0/0/0.01, dsn=4.2.0, status=deferred (host 127.0.0.1[127.0.0.1] said: 450 4.2.0 Mailbox busy, try again later (smtp-sink) (in reply to RCPT TO command))\n";
    const LOCAL: &str = "\
Nov 23 20:17:57 mail postfix/smtpd[24114]: 4jYHLY0Qbrz5n8M: client=localhost[127.0.0.1]\n\
Nov 23 20:17:57 mail postfix/cleanup[24122]: 4jYHLY0Qbrz5n8M: message-id=<verify-local-20261123201756-24105@mailapi.test>\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY0Qbrz5n8M: from=<bounces@mailapi.test>, size=516, nrcpt=1 (queue active)\n\
Nov 23 20:17:57 mail postfix/lmtp[24124]: 4jYHLY0Qbrz5n8M: to=<alice@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.09, delays=0.06/0.01/0.01/0, dsn=2.0.0, status=sent (250 2.0.0 <alice@mailapi.test> RHVIBnWfBGtBXgAAg+zDdQ Saved)\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY0Qbrz5n8M: removed\n";
    const MULTI: &str = "\
Nov 23 20:17:58 mail postfix/submission/smtpd[24142]: 4jYHLZ2QFrz5nBr: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=alice@mailapi.test\n\
Nov 23 20:17:58 mail postfix/cleanup[24122]: 4jYHLZ2QFrz5nBr: message-id=<verify-multi-20261123201756-24105@mailapi.test>\n\
Nov 23 20:17:58 mail postfix/qmgr[23597]: 4jYHLZ2QFrz5nBr: from=<bounces@mailapi.test>, size=565, nrcpt=5 (queue active)\n\
Nov 23 20:17:58 mail postfix/lmtp[24124]: 4jYHLZ2QFrz5nBr: to=<nobody@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.02, delays=0.01/0.01/0/0, dsn=5.1.1, status=bounced (host mail.mailapi.test[private/dovecot-lmtp] said: 550 5.1.1 <nobody@mailapi.test> User doesn't exist: nobody@mailapi.test (in reply to RCPT TO command))\n\
Nov 23 20:17:58 mail postfix/smtp[24165]: 4jYHLZ2QFrz5nBr: to=<ivan@example.com>, relay=127.0.0.1[127.0.0.1]:2526, delay=0.02, delays=0.01/0.01/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n\
Nov 23 20:17:58 mail postfix/lmtp[24124]: 4jYHLZ2QFrz5nBr: to=<alice@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.03, delays=0.01/0.01/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 <alice@mailapi.test> 0G9BFXafBGtBXgAAg+zDdQ Saved)\n\
Nov 23 20:17:58 mail postfix/lmtp[24124]: 4jYHLZ2QFrz5nBr: to=<bob@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.03, delays=0.01/0.01/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 <bob@mailapi.test> 0G9BFXafBGtBXgAAg+zDdQ:R2 Saved)\n\
Nov 23 20:17:58 mail postfix/smtp[24165]: 4jYHLZ2QFrz5nBr: to=<judy@defer.example>, relay=127.0.0.1[127.0.0.1]:2528, delay=0.03, delays=0.01/0.02/0/0.01, dsn=4.2.0, status=deferred (host 127.0.0.1[127.0.0.1] said: 450 4.2.0 Mailbox busy, try again later (smtp-sink) (in reply to RCPT TO command))\n\
Nov 23 20:17:58 mail postfix/bounce[24143]: 4jYHLZ2QFrz5nBr: sender non-delivery notification: 4jYHLZ2dm7z5nCC\n\
Nov 23 20:17:58 mail postfix/cleanup[24122]: 4jYHLZ2dm7z5nCC: message-id=<4jYHLZ2dm7z5nCC@mail.mailapi.test>\n\
Nov 23 20:17:58 mail postfix/qmgr[23597]: 4jYHLZ2dm7z5nCC: from=<>, size=2691, nrcpt=1 (queue active)\n\
Nov 23 20:17:58 mail postfix/lmtp[24124]: 4jYHLZ2dm7z5nCC: to=<bounces@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.01, delays=0/0/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 <bounces@mailapi.test> MHt1FnafBGtBXgAAg+zDdQ Saved)\n\
Nov 23 20:17:58 mail postfix/qmgr[23597]: 4jYHLZ2dm7z5nCC: removed\n";
    const RCPT_REJECT: &str = "\
Nov 23 20:17:58 mail postfix/smtpd[24114]: NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 <nobody@mailapi.test>: Recipient address rejected: User unknown in virtual mailbox table; from=<bounces@mailapi.test> to=<nobody@mailapi.test> proto=ESMTP helo=<verify.mailapi-lab>\n";
    const RETRY_TRANSPORT: &str = "\
Nov 23 20:17:58 mail postfix/submission/smtpd[24142]: 4jYHLZ18yXz5nBD: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=alice@mailapi.test\n\
Nov 23 20:17:58 mail postfix/cleanup[24122]: 4jYHLZ18yXz5nBD: message-id=<verify-retry_transport-20261123201756-24105@mailapi.test>\n\
Nov 23 20:17:58 mail postfix/qmgr[23597]: 4jYHLZ18yXz5nBD: from=<bounces@mailapi.test>, size=547, nrcpt=1 (queue active)\n\
Nov 23 20:17:58 mail postfix/error[24246]: 4jYHLZ18yXz5nBD: to=<hank@retry.example>, relay=none, delay=0.01, delays=0/0.01/0/0, dsn=4.4.1, status=deferred (mailapi-lab: simulated temporary failure)\n";
    const SENDMAIL: &str = "\
Nov 23 20:18:01 mail postfix/pickup[23596]: 4jYHLd0pt5z5nCp: uid=0 from=<bounces@mailapi.test>\n\
Nov 23 20:18:01 mail postfix/cleanup[24122]: 4jYHLd0pt5z5nCp: message-id=<verify-sendmail-20261123201756-24105@mailapi.test>\n\
Nov 23 20:18:01 mail postfix/qmgr[23597]: 4jYHLd0pt5z5nCp: from=<bounces@mailapi.test>, size=334, nrcpt=1 (queue active)\n\
Nov 23 20:18:01 mail postfix/lmtp[24124]: 4jYHLd0pt5z5nCp: to=<alice@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.01, delays=0/0/0/0.01, dsn=2.0.0, status=sent (250 2.0.0 <alice@mailapi.test> sOsgB3mfBGtBXgAAg+zDdQ Saved)\n\
Nov 23 20:18:01 mail postfix/qmgr[23597]: 4jYHLd0pt5z5nCp: removed\n";
    const UNKNOWN_LOCAL: &str = "\
Nov 23 20:17:57 mail postfix/submission/smtpd[24142]: 4jYHLY2GC8z5n8M: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=alice@mailapi.test\n\
Nov 23 20:17:57 mail postfix/cleanup[24122]: 4jYHLY2GC8z5n8M: message-id=<verify-unknown_local-20261123201756-24105@mailapi.test>\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY2GC8z5n8M: from=<bounces@mailapi.test>, size=543, nrcpt=1 (queue active)\n\
Nov 23 20:17:57 mail postfix/lmtp[24124]: 4jYHLY2GC8z5n8M: to=<nobody@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.02, delays=0.01/0/0/0.01, dsn=5.1.1, status=bounced (host mail.mailapi.test[private/dovecot-lmtp] said: 550 5.1.1 <nobody@mailapi.test> User doesn't exist: nobody@mailapi.test (in reply to RCPT TO command))\n\
Nov 23 20:17:57 mail postfix/bounce[24143]: 4jYHLY2GC8z5n8M: sender non-delivery notification: 4jYHLY2P9zz5n8f\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY2GC8z5n8M: removed\n\
Nov 23 20:17:57 mail postfix/cleanup[24122]: 4jYHLY2P9zz5n8f: message-id=<4jYHLY2P9zz5n8f@mail.mailapi.test>\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY2P9zz5n8f: from=<>, size=2669, nrcpt=1 (queue active)\n\
Nov 23 20:17:57 mail postfix/lmtp[24124]: 4jYHLY2P9zz5n8f: to=<bounces@mailapi.test>, relay=mail.mailapi.test[private/dovecot-lmtp], delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (250 2.0.0 <bounces@mailapi.test> aCVyFHWfBGtBXgAAg+zDdQ Saved)\n\
Nov 23 20:17:57 mail postfix/qmgr[23597]: 4jYHLY2P9zz5n8f: removed\n";

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
        let no_status =
            "Nov 23 20:17:57 mail postfix/smtp[1]: 4jYHLY3rhwz5n8M: to=<c@d.e>, relay=x";
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
}
