//! Parser of Postfix log lines (`maillog_file` format, see `tests/fixtures/postfix-*.log`):
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
mod tests;
