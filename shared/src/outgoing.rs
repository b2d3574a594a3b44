//! The stored form of an accepted message (`messages.payload`) and the MIME it becomes.
//!
//! The API validates a send request into an [`OutgoingMessage`] and builds it once to check its
//! size against the MTA's limit; the worker builds the same bytes again (the Message-ID and Date
//! are fixed at accept time) and DKIM-signs them. Bcc recipients never appear in headers, only
//! in the SMTP envelope.

use std::time::SystemTime;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, Message, MultiPart, SinglePart};
use lettre::{Address, address::Envelope};
use serde::{Deserialize, Serialize};

use crate::address::NamedAddress;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutgoingMessage {
    pub from: NamedAddress,
    pub to: Vec<NamedAddress>,
    #[serde(default)]
    pub cc: Vec<NamedAddress>,
    #[serde(default)]
    pub bcc: Vec<NamedAddress>,
    #[serde(default)]
    pub reply_to: Option<NamedAddress>,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    /// Custom headers in the order given; names and values were checked at accept time.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub attachments: Vec<OutgoingAttachment>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutgoingAttachment {
    pub filename: String,
    pub content_type: String,
    /// Standard base64, as the client sent it (already verified to decode).
    pub content_base64: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid address {0}")]
    Address(String),
    #[error("invalid header name {0}")]
    HeaderName(String),
    #[error("invalid content type {0}")]
    ContentType(String),
    #[error("attachment {0} is not valid base64")]
    Base64(String),
    #[error("message could not be built: {0}")]
    Build(#[from] lettre::error::Error),
}

fn mailbox(a: &NamedAddress) -> Result<Mailbox, BuildError> {
    let address: Address = a
        .email
        .as_str()
        .parse()
        .map_err(|_| BuildError::Address(a.email.to_string()))?;
    Ok(Mailbox::new(a.name.clone(), address))
}

impl OutgoingMessage {
    /// Every envelope recipient, To then Cc then Bcc.
    pub fn recipients(&self) -> impl Iterator<Item = (&'static str, &NamedAddress)> {
        self.to
            .iter()
            .map(|a| ("to", a))
            .chain(self.cc.iter().map(|a| ("cc", a)))
            .chain(self.bcc.iter().map(|a| ("bcc", a)))
    }

    /// The SMTP envelope: `return_path` as MAIL FROM, every recipient as RCPT TO.
    pub fn envelope(
        &self,
        return_path: &str,
        only: Option<&[String]>,
    ) -> Result<Envelope, BuildError> {
        let from: Address = return_path
            .parse()
            .map_err(|_| BuildError::Address(return_path.to_owned()))?;
        let mut rcpts = Vec::new();
        for (_, r) in self.recipients() {
            if only.is_some_and(|keep| !keep.iter().any(|k| k == r.email.as_str())) {
                continue;
            }
            rcpts.push(
                r.email
                    .as_str()
                    .parse()
                    .map_err(|_| BuildError::Address(r.email.to_string()))?,
            );
        }
        Envelope::new(Some(from), rcpts).map_err(BuildError::Build)
    }

    /// Builds the MIME message with the given Message-ID (`<id@domain>`) and Date.
    pub fn build(&self, rfc_message_id: &str, date: DateTime<Utc>) -> Result<Message, BuildError> {
        let mut b = Message::builder()
            .from(mailbox(&self.from)?)
            .subject(self.subject.clone())
            .message_id(Some(rfc_message_id.to_owned()))
            .date(SystemTime::from(date));
        for a in &self.to {
            b = b.to(mailbox(a)?);
        }
        for a in &self.cc {
            b = b.cc(mailbox(a)?);
        }
        if let Some(r) = &self.reply_to {
            b = b.reply_to(mailbox(r)?);
        }
        for (name, value) in &self.headers {
            let name = HeaderName::new_from_ascii(name.clone())
                .map_err(|_| BuildError::HeaderName(name.clone()))?;
            b = b.raw_header(HeaderValue::new(name, value.clone()));
        }
        // The envelope is set explicitly so that a message with only Bcc recipients builds, and so
        // that Bcc never reaches a header.
        b = b.envelope(self.envelope(self.from.email.as_str(), None)?);

        let content = match (&self.text, &self.html) {
            (Some(t), Some(h)) => {
                Content::Multi(MultiPart::alternative_plain_html(t.clone(), h.clone()))
            }
            (Some(t), None) => Content::Single(SinglePart::plain(t.clone())),
            (None, Some(h)) => Content::Single(SinglePart::html(h.clone())),
            (None, None) => Content::Single(SinglePart::plain(String::new())),
        };
        if self.attachments.is_empty() {
            return Ok(match content {
                Content::Single(p) => b.singlepart(p)?,
                Content::Multi(m) => b.multipart(m)?,
            });
        }
        let mut mixed = match content {
            Content::Single(p) => MultiPart::mixed().singlepart(p),
            Content::Multi(m) => MultiPart::mixed().multipart(m),
        };
        for a in &self.attachments {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&a.content_base64)
                .map_err(|_| BuildError::Base64(a.filename.clone()))?;
            let ct = ContentType::parse(&a.content_type)
                .map_err(|_| BuildError::ContentType(a.content_type.clone()))?;
            mixed = mixed.singlepart(Attachment::new(a.filename.clone()).body(bytes, ct));
        }
        Ok(b.multipart(mixed)?)
    }
}

enum Content {
    Single(SinglePart),
    Multi(MultiPart),
}

/// `<uuid@domain>`: globally unique, and tells the MTA's log line which message it is.
pub fn rfc_message_id(id: uuid::Uuid, domain: &str) -> String {
    format!("<{}@{}>", id.simple(), domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(e: &str) -> NamedAddress {
        NamedAddress {
            name: None,
            email: crate::address::EmailAddress::parse(e).unwrap(),
        }
    }

    fn sample() -> OutgoingMessage {
        OutgoingMessage {
            from: NamedAddress {
                name: Some("Sënder".into()),
                email: crate::address::EmailAddress::parse("s@a.test").unwrap(),
            },
            to: vec![addr("t@b.test")],
            cc: vec![addr("c@b.test")],
            bcc: vec![addr("hidden@b.test")],
            reply_to: Some(addr("r@a.test")),
            subject: "Grüße".into(),
            text: Some("line1\n.\nline3\r\n.\r\nend\n.".into()),
            html: Some("<p>hi</p>".into()),
            headers: vec![("X-Custom-Header".into(), "custom-value".into())],
            attachments: vec![OutgoingAttachment {
                filename: "a.bin".into(),
                content_type: "application/octet-stream".into(),
                content_base64: base64::engine::general_purpose::STANDARD.encode([0u8, 1, 2, 255]),
            }],
        }
    }

    #[test]
    fn builds_without_bcc_header_and_with_envelope() {
        let m = sample();
        let msg = m.build("<x@a.test>", Utc::now()).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <x@a.test>"));
        assert!(raw.contains("X-Custom-Header: custom-value"));
        assert!(!raw.to_lowercase().contains("hidden@b.test"));
        assert!(raw.contains("multipart/mixed"));
        assert!(raw.contains("multipart/alternative"));
        let env = m.envelope("s@a.test", None).unwrap();
        assert_eq!(env.to().len(), 3);
        // No bare LF anywhere: every LF is preceded by CR.
        let bytes = msg.formatted();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                assert_eq!(bytes[i - 1], b'\r', "bare LF at {i}");
            }
        }
    }

    #[test]
    fn bcc_only_message_builds() {
        let mut m = sample();
        m.to.clear();
        m.cc.clear();
        m.build("<y@a.test>", Utc::now()).unwrap();
    }

    #[test]
    fn same_input_same_bytes() {
        let m = sample();
        let date = Utc::now();
        // Boundaries are random in lettre, so compare everything but them: the headers block.
        let a = m.build("<z@a.test>", date).unwrap().formatted();
        let b = m.build("<z@a.test>", date).unwrap().formatted();
        let head = |v: &[u8]| {
            String::from_utf8_lossy(v)
                .split("\r\n\r\n")
                .next()
                .unwrap()
                .lines()
                .filter(|l| !l.contains("boundary"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(head(&a), head(&b));
    }
}
