//! A whole message: fetched with `BODY.PEEK[]` (reading never sets `\Seen`), parsed once with
//! mail-parser, which decodes transfer encodings and converts every charset to UTF-8.
//!
//! Attachments are numbered in mail-parser's order (`Message::attachments`), the same order for
//! the listing and the download, so an index from one is valid for the other.

use std::borrow::Cow;
use std::collections::BTreeMap;

use async_imap::types::Fetch;
use chrono::DateTime;
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{
    Encoding, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};
use serde::Serialize;

use super::args::FolderName;
use super::error::ImapError;
use super::session::MailSession;
use super::summary::{Address, addresses, flags};

/// One whole message, decoded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageDetail {
    #[schema(minimum = 1, example = 1234)]
    pub uid: u32,
    pub folder: String,
    /// The `Message-ID` header, with its angle brackets.
    #[schema(required = true, example = "<abc123@example.com>")]
    pub message_id: Option<String>,
    #[schema(required = true)]
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub subject: String,
    #[schema(required = true, format = DateTime)]
    pub date: Option<String>,
    /// Top-level header fields, decoded; a field that occurs more than once has its values
    /// joined by a line feed.
    pub headers: BTreeMap<String, String>,
    pub body: Body,
    pub attachments: Vec<AttachmentInfo>,
    pub flags: Vec<String>,
    /// Bytes, as stored.
    pub size: usize,
}

/// The text and HTML bodies, converted to UTF-8; `null` when the message has no such part.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Body {
    #[schema(required = true)]
    pub text: Option<String>,
    #[schema(required = true)]
    pub html: Option<String>,
}

/// An attachment's metadata; `index` is what the download takes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttachmentInfo {
    pub index: usize,
    #[schema(required = true, example = "agenda.pdf")]
    pub filename: Option<String>,
    #[schema(example = "application/pdf")]
    pub content_type: String,
    /// Bytes, decoded.
    pub size: usize,
    /// The `Content-ID` without its angle brackets, for inline parts.
    #[schema(required = true)]
    pub content_id: Option<String>,
}

/// The raw message and its flags, as fetched.
pub struct RawMessage {
    pub uid: u32,
    fetch: Fetch,
}

impl RawMessage {
    pub fn bytes(&self) -> &[u8] {
        self.fetch.body().unwrap_or_default()
    }

    pub fn flags(&self) -> Vec<String> {
        flags(&self.fetch)
    }

    pub fn parse(&self) -> Option<Message<'_>> {
        MessageParser::new().parse(self.bytes())
    }
}

impl MailSession {
    /// The message `uid` of `folder`, or `NoSuchMessage`.
    pub async fn fetch_message(
        &mut self,
        folder: &FolderName,
        uid: u32,
    ) -> Result<RawMessage, ImapError> {
        self.examine(folder).await?;
        let fetched = self
            .fetch(true, &uid.to_string(), "(UID FLAGS BODY.PEEK[])")
            .await?;
        let fetch = fetched
            .into_iter()
            .find(|f| f.uid == Some(uid) && f.body().is_some())
            .ok_or(ImapError::NoSuchMessage)?;
        Ok(RawMessage { uid, fetch })
    }
}

/// The JSON view of a parsed message.
pub fn detail(raw: &RawMessage, folder: &FolderName) -> MessageDetail {
    let bytes = raw.bytes();
    let Some(m) = raw.parse() else {
        // mail-parser returns None only for input without any header: show what we know.
        return MessageDetail {
            uid: raw.uid,
            folder: folder.as_str().to_owned(),
            message_id: None,
            from: None,
            to: Vec::new(),
            cc: Vec::new(),
            subject: String::new(),
            date: None,
            headers: BTreeMap::new(),
            body: Body {
                text: Some(String::from_utf8_lossy(bytes).into_owned()),
                html: None,
            },
            attachments: Vec::new(),
            flags: raw.flags(),
            size: bytes.len(),
        };
    };
    MessageDetail {
        uid: raw.uid,
        folder: folder.as_str().to_owned(),
        message_id: m.message_id().map(|id| format!("<{id}>")),
        from: m.from().and_then(|a| addresses(a).into_iter().next()),
        to: m.to().map(addresses).unwrap_or_default(),
        cc: m.cc().map(addresses).unwrap_or_default(),
        subject: m.subject().unwrap_or_default().to_owned(),
        date: m
            .date()
            .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0))
            .as_ref()
            .map(crate::time::format),
        headers: header_map(&m),
        body: Body {
            text: m.body_text(0).map(Cow::into_owned),
            html: m.body_html(0).map(Cow::into_owned),
        },
        attachments: attachments(&m)
            .map(|(index, part)| AttachmentInfo {
                index,
                filename: part.attachment_name().map(str::to_owned),
                content_type: content_type(part),
                size: attachment_bytes(&m, part).len(),
                content_id: part.content_id().map(|c| {
                    c.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_owned()
                }),
            })
            .collect(),
        flags: raw.flags(),
        size: bytes.len(),
    }
}

/// The attachments, numbered.
pub fn attachments<'m>(
    m: &'m Message<'m>,
) -> impl Iterator<Item = (usize, &'m MessagePart<'m>)> + 'm {
    m.attachments().enumerate()
}

/// `type/subtype`, lowercase, with a default by kind.
pub fn content_type(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match &ct.c_subtype {
            Some(sub) => format!("{}/{}", ct.c_type, sub).to_ascii_lowercase(),
            None => ct.c_type.to_ascii_lowercase(),
        },
        None if part.is_message() => "message/rfc822".into(),
        None if part.is_text() => "text/plain".into(),
        None => "application/octet-stream".into(),
    }
}

/// The charset parameter of a text attachment, for the download's Content-Type.
pub fn charset(part: &MessagePart<'_>) -> Option<String> {
    part.content_type()?
        .attribute("charset")
        .map(|c| c.to_ascii_lowercase())
}

/// An attachment's bytes as the sender attached them: only the transfer encoding undone.
/// (mail-parser converts text parts to UTF-8; a download must not, or it would differ from the
/// file that was sent.)
pub fn attachment_bytes<'a>(m: &'a Message<'a>, part: &'a MessagePart<'a>) -> Cow<'a, [u8]> {
    match &part.body {
        PartType::Binary(b) | PartType::InlineBinary(b) => Cow::Borrowed(b.as_ref()),
        PartType::Message(inner) => Cow::Borrowed(inner.raw_message()),
        PartType::Multipart(_) => Cow::Borrowed(&[]),
        PartType::Text(_) | PartType::Html(_) => {
            let raw = m
                .raw_message()
                .get(part.raw_body_offset() as usize..part.raw_end_offset() as usize)
                .unwrap_or_default();
            let decoded = match part.encoding {
                Encoding::Base64 => base64_decode(raw),
                Encoding::QuotedPrintable => quoted_printable_decode(raw),
                Encoding::None => None,
            };
            match decoded {
                Some(d) => Cow::Owned(d),
                None => Cow::Borrowed(raw),
            }
        }
    }
}

/// Top-level headers: decoded text for unstructured and address fields, the unfolded raw value
/// for the rest. A field that occurs more than once (Received) has its values joined by "\n",
/// which cannot occur inside one unfolded value.
fn header_map(m: &Message<'_>) -> BTreeMap<String, String> {
    let raw = m.raw_message();
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for h in m.headers() {
        let value = match &h.value {
            HeaderValue::Text(t) => t.to_string(),
            HeaderValue::Address(a) => addresses(a)
                .iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{n} <{}>", a.email),
                    None => a.email.clone(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            _ => {
                let bytes = raw
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .unwrap_or_default();
                unfold(&String::from_utf8_lossy(bytes))
            }
        };
        map.entry(h.name.as_str().to_owned())
            .and_modify(|v| {
                v.push('\n');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    map
}

fn unfold(s: &str) -> String {
    s.split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("")
        .trim()
        .to_owned()
}

/// A downloadable attachment, owned.
pub struct AttachmentData {
    pub filename: Option<String>,
    pub content_type: String,
    pub charset: Option<String>,
    pub bytes: Vec<u8>,
}

/// Takes attachment `index` out of the parsed message, moving its decoded bytes rather than
/// copying them when the decoder already produced an owned buffer (base64, the common case).
pub fn take_attachment(mut m: Message<'_>, index: usize) -> Option<AttachmentData> {
    let id = *m.attachments.get(index)? as usize;
    let part = m.parts.get(id)?;
    let filename = part.attachment_name().map(str::to_owned);
    let content_type = content_type(part);
    let charset = charset(part).filter(|_| part.is_text());
    if part.is_text() {
        // Text needs the raw slice (see `attachment_bytes`), which borrows the message.
        let bytes = attachment_bytes(&m, part).into_owned();
        return Some(AttachmentData {
            filename,
            content_type,
            charset,
            bytes,
        });
    }
    let part = m.parts.swap_remove(id);
    let bytes = match part.body {
        PartType::Binary(b) | PartType::InlineBinary(b) => b.into_owned(),
        PartType::Message(inner) => inner.raw_message.into_owned(),
        _ => Vec::new(),
    };
    Some(AttachmentData {
        filename,
        content_type,
        charset,
        bytes,
    })
}
