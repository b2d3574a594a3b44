//! One line of a message list: what `FETCH (UID FLAGS RFC822.SIZE INTERNALDATE BODYSTRUCTURE
//! BODY.PEEK[HEADER.FIELDS (...)])` says about a message, decoded. The header fields are parsed
//! by mail-parser (RFC 2047 words in any charset, groups, obsolete syntax), the same parser the
//! full-message endpoint uses, so a list and a detail never disagree on a subject or a name.

use async_imap::imap_proto::BodyStructure;
use async_imap::types::{Fetch, Flag};
use chrono::{DateTime, Utc};
use mail_parser::{Address as ParsedAddress, MessageParser};
use serde::Serialize;

/// Items for a list page. `BODY.PEEK` so listing never sets `\Seen`.
pub const SUMMARY_ITEMS: &str = "(UID FLAGS RFC822.SIZE INTERNALDATE BODYSTRUCTURE \
     BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])";

/// A mailbox from an address header: its display name, if any, and the address as written.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Address {
    #[schema(required = true, example = "John Doe")]
    pub name: Option<String>,
    #[schema(example = "john@example.com")]
    pub email: String,
}

/// One message as a folder listing shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MessageSummary {
    #[schema(minimum = 1, example = 1234)]
    pub uid: u32,
    /// The `Message-ID` header, with its angle brackets.
    #[schema(required = true, example = "<abc123@example.com>")]
    pub message_id: Option<String>,
    #[schema(required = true)]
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub subject: String,
    /// The `Date` header, or the time the server received the message when it has none.
    #[schema(required = true, format = DateTime)]
    pub date: Option<String>,
    /// Bytes, as stored.
    pub size: u32,
    /// IMAP flags such as `\Seen` and `\Flagged` (`\Recent` is left out).
    pub flags: Vec<String>,
    pub has_attachments: bool,
}

impl MessageSummary {
    /// `None` for a FETCH without a UID (an unsolicited flag update mixed into the reply).
    pub fn from_fetch(f: &Fetch) -> Option<Self> {
        let uid = f.uid?;
        let parser = MessageParser::new();
        let header = f.header().unwrap_or_default();
        let parsed = parser.parse_headers(header);
        let (message_id, from, to, subject, date) = match &parsed {
            Some(m) => (
                m.message_id().map(|id| format!("<{id}>")),
                m.from().and_then(|a| addresses(a).into_iter().next()),
                m.to().map(addresses).unwrap_or_default(),
                m.subject().unwrap_or_default().to_owned(),
                m.date()
                    .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)),
            ),
            None => (None, None, Vec::new(), String::new(), None),
        };
        let date = date.or_else(|| f.internal_date().map(|d| d.with_timezone(&Utc)));
        Some(MessageSummary {
            uid,
            message_id,
            from,
            to,
            subject,
            date: date.as_ref().map(crate::time::format),
            size: f.size.unwrap_or(0),
            flags: flags(f),
            has_attachments: f.bodystructure().is_some_and(has_attachments),
        })
    }
}

/// Flags as IMAP writes them. `\Recent` is left out: it depends on which session looked first.
pub fn flags(f: &Fetch) -> Vec<String> {
    f.flags()
        .filter_map(|flag| {
            Some(match flag {
                Flag::Seen => "\\Seen".to_owned(),
                Flag::Answered => "\\Answered".to_owned(),
                Flag::Flagged => "\\Flagged".to_owned(),
                Flag::Deleted => "\\Deleted".to_owned(),
                Flag::Draft => "\\Draft".to_owned(),
                Flag::Custom(c) => c.into_owned(),
                _ => return None,
            })
        })
        .collect()
}

/// Every mailbox in an address header, groups flattened.
pub fn addresses(a: &ParsedAddress<'_>) -> Vec<Address> {
    a.iter()
        .filter_map(|addr| {
            Some(Address {
                name: addr
                    .name()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
                email: addr.address()?.to_owned(),
            })
        })
        .collect()
}

/// Whether a message has attachments, judged from its structure as most clients do: a part
/// marked `attachment`, a part with a file name, or a leaf that is neither text nor multipart
/// (an inline image, a PDF, a forwarded message).
pub fn has_attachments(b: &BodyStructure<'_>) -> bool {
    match b {
        BodyStructure::Multipart { bodies, .. } => bodies.iter().any(has_attachments),
        BodyStructure::Text { common, .. } => {
            let disposition = common.disposition.as_ref();
            disposition.is_some_and(|d| d.ty.eq_ignore_ascii_case("attachment"))
                || disposition.is_some_and(|d| has_param(&d.params, "filename"))
                || has_param(&common.ty.params, "name")
        }
        BodyStructure::Basic { .. } | BodyStructure::Message { .. } => true,
    }
}

fn has_param(params: &async_imap::imap_proto::BodyParams<'_>, key: &str) -> bool {
    params.as_ref().is_some_and(|ps| {
        ps.iter().any(|(k, _)| {
            // RFC 2231 splits long names into `filename*0*`, `filename*1`...
            k.eq_ignore_ascii_case(key) || k.to_ascii_lowercase().starts_with(&format!("{key}*"))
        })
    })
}
