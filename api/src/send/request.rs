//! The `POST /mail/send` body and its validation. Every rule fails with a 400 whose code is
//! stable and whose `field` names the offending value (`to[2]`, `attachments[0].content`).
//! Nothing is stripped or repaired: a control character anywhere a header is built from is an
//! error, because silently "fixing" it is how header injection slips through.
//!
//! Forgiving where clients are sloppy: `null` means "absent" for every optional field (Python's
//! `None` and JavaScript's `null` are how clients leave a field out), and an attachment without a
//! filename is named `attachment-N.<ext>`. Exact where typos would hurt: an unknown field is a
//! 400 naming it, so `"bc": [...]` never silently drops recipients.

use std::collections::HashSet;

use base64::Engine as _;
use serde::Deserialize;
use shared::address::{AddressError, NamedAddress, has_control_chars, has_control_chars_decoded};
use shared::outgoing::{OutgoingAttachment, OutgoingMessage};

use crate::error::ApiError;

/// The schema states each rule below (formats, lengths, patterns, which fields may be null);
/// what it cannot state: at most `MAILAPI_MAX_RECIPIENTS` (default 100) distinct addresses in
/// `to`, `cc` and `bcc` together.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// `addr@domain` or `Name <addr@domain>`, on an active domain this token may send from.
    #[schema(format = Email, max_length = 254, example = "sender@yourdomain.com")]
    pub from: String,
    #[schema(min_items = 1, value_type = Vec<Recipient>)]
    pub to: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Recipient>>)]
    pub cc: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Recipient>>)]
    pub bcc: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Subject>)]
    pub subject: Option<String>,
    pub body: BodyRequest,
    #[serde(default)]
    #[schema(format = Email, max_length = 254)]
    pub reply_to: Option<String>,
    /// Custom headers: up to 50, names of letters, digits, `-` and `_` that are not structural
    /// (`From`, `Content-*`...), string values of at most 998 characters without control
    /// characters.
    #[serde(default)]
    #[schema(schema_with = headers_schema)]
    pub headers: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    #[schema(max_items = 100)]
    pub attachments: Option<Vec<AttachmentRequest>>,
}

/// A recipient's schema: `addr@domain` or `Name <addr@domain>` (the lists hold strings).
pub struct Recipient;

impl utoipa::PartialSchema for Recipient {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(254))
            .into()
    }
}

impl utoipa::ToSchema for Recipient {}

/// `text` and/or `html`: at least one of them non-empty (see [`BodyRequest::rules`]).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BodyRequest {
    #[serde(default)]
    #[schema(value_type = Option<BodyPart>)]
    pub text: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<BodyPart>)]
    pub html: Option<String>,
}

impl BodyRequest {
    /// One of the two must have content: [`SendRequest::validate`] refuses a body of neither.
    pub fn rules() -> Vec<utoipa::openapi::RefOr<utoipa::openapi::Schema>> {
        use crate::routes::common::rule;
        vec![rule::any_of(vec![
            rule::object([("text", rule::non_empty())], ["text"]),
            rule::object([("html", rule::non_empty())], ["html"]),
        ])]
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRequest {
    /// Named `attachment-N.<ext>` when absent, null or blank.
    #[serde(default)]
    #[schema(value_type = Option<Filename>)]
    pub filename: Option<String>,
    #[schema(value_type = Base64Content)]
    pub content: String,
    /// Default `application/octet-stream`.
    #[serde(default)]
    #[schema(value_type = Option<MimeType>)]
    pub content_type: Option<String>,
}

use crate::routes::common::{Text, text};

text!(
    Subject,
    "At most 2000 characters, no control characters.",
    Text {
        max: Some(MAX_SUBJECT),
        pattern: Some(NO_CONTROL),
        ..Text::default()
    }
);
text!(
    BodyPart,
    "Any text without a NUL character.",
    Text {
        pattern: Some(NO_NUL),
        ..Text::default()
    }
);
text!(
    Filename,
    "At most 255 characters, no control characters.",
    Text {
        max: Some(255),
        pattern: Some(NO_CONTROL),
        ..Text::default()
    }
);
text!(
    Base64Content,
    "The file in base64 (standard alphabet; padding optional; line breaks ignored).",
    Text {
        pattern: Some(BASE64),
        ..Text::default()
    }
);
text!(
    MimeType,
    "A MIME type, `type/subtype`.",
    Text {
        max: Some(255),
        pattern: Some(MIME_TYPE),
        ..Text::default()
    }
);

const NO_CONTROL: &str = crate::routes::common::patterns::NO_CONTROL;
const NO_NUL: &str = r"^[^\x00]*$";
/// Exactly what [`normalise_base64`] decodes: groups of four, an optional short last group with
/// its unused bits zero, canonical padding or none, ASCII blanks anywhere.
const BASE64: &str = r"^([\t\n\f\r ]*[A-Za-z0-9+/][\t\n\f\r ]*[A-Za-z0-9+/][\t\n\f\r ]*[A-Za-z0-9+/][\t\n\f\r ]*[A-Za-z0-9+/])*[\t\n\f\r ]*([A-Za-z0-9+/][\t\n\f\r ]*[AQgw]([\t\n\f\r ]*=[\t\n\f\r ]*=)?|[A-Za-z0-9+/][\t\n\f\r ]*[A-Za-z0-9+/][\t\n\f\r ]*[AEIMQUYcgkosw048]([\t\n\f\r ]*=)?)?[\t\n\f\r ]*$";
/// A MIME type without parameters, in the tokens the `mime` parser takes.
const MIME_TYPE: &str =
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}$";
/// A custom header's name: [`RESERVED_HEADERS`] and `Content-*` (any case) are left out.
const HEADER_NAME: &str = r"^(?![Cc][Oo][Nn][Tt][Ee][Nn][Tt]-)(?!([Ff][Rr][Oo][Mm]|[Tt][Oo]|[Cc][Cc]|[Bb][Cc][Cc]|[Ss][Uu][Bb][Jj][Ee][Cc][Tt]|[Rr][Ee][Pp][Ll][Yy]-[Tt][Oo]|[Ss][Ee][Nn][Dd][Ee][Rr]|[Mm][Ee][Ss][Ss][Aa][Gg][Ee]-[Ii][Dd]|[Dd][Aa][Tt][Ee]|[Mm][Ii][Mm][Ee]-[Vv][Ee][Rr][Ss][Ii][Oo][Nn]|[Dd][Kk][Ii][Mm]-[Ss][Ii][Gg][Nn][Aa][Tt][Uu][Rr][Ee]|[Rr][Ee][Tt][Uu][Rr][Nn]-[Pp][Aa][Tt][Hh]|[Rr][Ee][Cc][Ee][Ii][Vv][Ee][Dd]|[Dd][Ee][Ll][Ii][Vv][Ee][Rr][Ee][Dd]-[Tt][Oo]|[Xx]-[Oo][Rr][Ii][Gg][Ii][Nn][Aa][Ll]-[Tt][Oo])$)[A-Za-z0-9_-]{1,76}$";

/// `headers`: a map whose names and values follow the rules [`SendRequest::validate`] applies.
fn headers_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaType, Type};
    use utoipa::openapi::{RefOr, Schema};
    let value = ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .max_length(Some(MAX_HEADER_VALUE))
        .pattern(Some(NO_CONTROL))
        .build();
    let name = ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .pattern(Some(HEADER_NAME))
        .build();
    let mut headers = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(
            value,
        )))))
        .max_properties(Some(MAX_CUSTOM_HEADERS))
        .description(Some(
            "Custom headers: up to 50, names of letters, digits, `-` and `_` that are not \
             structural (`From`, `Content-*`...), string values of at most 998 characters \
             without control characters.",
        ))
        .build();
    headers.property_names = Some(Box::new(Schema::Object(name)));
    headers
}

/// Headers a client may not set: the message's structure, identity and trace are ours.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "reply-to",
    "sender",
    "message-id",
    "date",
    "mime-version",
    "dkim-signature",
    "return-path",
    "received",
    "delivered-to",
    "x-original-to",
];
const MAX_CUSTOM_HEADERS: usize = 50;
const MAX_HEADER_VALUE: usize = 998;
const MAX_SUBJECT: usize = 2_000;
const MAX_ATTACHMENTS: usize = 100;

fn address_error(field: String, e: AddressError) -> ApiError {
    let code = match e {
        AddressError::ControlCharacter => "INVALID_HEADER",
        _ => "INVALID_ADDRESS",
    };
    ApiError::invalid(code, Some(field.clone()), format!("{field} {e}"))
}

fn header_error(field: impl Into<String>, what: &str) -> ApiError {
    let field = field.into();
    ApiError::invalid(
        "INVALID_HEADER",
        Some(field.clone()),
        format!("{field} {what}"),
    )
}

fn attachment_error(field: String, what: &str) -> ApiError {
    ApiError::invalid(
        "INVALID_ATTACHMENT",
        Some(field.clone()),
        format!("{field} {what}"),
    )
}

fn parse_address(field: String, raw: &str) -> Result<NamedAddress, ApiError> {
    let (name, email) = NamedAddress::parse(raw).map_err(|e| address_error(field, e))?;
    Ok(NamedAddress {
        name,
        email: email.as_str().to_owned(),
    })
}

/// Accepts standard base64, with or without padding, ignoring line breaks a client's encoder may
/// have inserted (Python's `encodebytes` wraps at 76 columns). Returns the canonical form.
pub fn normalise_base64(raw: &str) -> Option<String> {
    let compact: String = raw.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::general_purpose::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(compact.as_bytes()).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The name of an attachment sent without one: `attachment-<N>` (N counts from 1, in request
/// order) with the extension mail clients expect for its content type, so the recipient's client
/// can open it.
fn default_filename(index: usize, content_type: &str) -> String {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let ext = match essence.as_str() {
        "application/pdf" => "pdf",
        "application/zip" => "zip",
        "application/gzip" => "gz",
        "application/json" => "json",
        "application/xml" | "text/xml" => "xml",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        "application/vnd.oasis.opendocument.text" => "odt",
        "application/vnd.oasis.opendocument.spreadsheet" => "ods",
        "application/rtf" | "text/rtf" => "rtf",
        "text/plain" => "txt",
        "text/html" => "html",
        "text/csv" => "csv",
        "text/calendar" => "ics",
        "text/markdown" => "md",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "audio/mpeg" => "mp3",
        "video/mp4" => "mp4",
        "message/rfc822" => "eml",
        _ => "bin",
    };
    format!("attachment-{}.{ext}", index + 1)
}

impl SendRequest {
    /// Validates everything and produces the stored form. `max_recipients` comes from settings.
    pub fn validate(self, max_recipients: usize) -> Result<OutgoingMessage, ApiError> {
        let from = parse_address("from".into(), &self.from)?;

        let mut seen = HashSet::new();
        let mut lists: [Vec<NamedAddress>; 3] = Default::default();
        let (cc, bcc) = (self.cc.unwrap_or_default(), self.bcc.unwrap_or_default());
        for (slot, (field, raws)) in [("to", &self.to), ("cc", &cc), ("bcc", &bcc)]
            .into_iter()
            .enumerate()
        {
            for (i, raw) in raws.iter().enumerate() {
                let a = parse_address(format!("{field}[{i}]"), raw)?;
                // An address listed twice (even in To and Bcc) is delivered once, by the MTA and
                // by us: keep its first, most visible, occurrence.
                if seen.insert(a.email.clone()) {
                    lists[slot].push(a);
                }
            }
        }
        let total = seen.len();
        if total == 0 {
            return Err(ApiError::invalid(
                "NO_RECIPIENTS",
                Some("to".into()),
                "At least one recipient (to, cc or bcc) is required",
            ));
        }
        if total > max_recipients {
            return Err(ApiError::invalid(
                "TOO_MANY_RECIPIENTS",
                Some("to".into()),
                format!("{total} recipients; at most {max_recipients} are allowed per message"),
            ));
        }
        let [to, cc, bcc] = lists;

        let subject = self.subject.unwrap_or_default();
        if has_control_chars_decoded(&subject) {
            return Err(header_error(
                "subject",
                "contains a control character (CR, LF, NUL or other), raw or in an encoded-word",
            ));
        }
        if subject.chars().count() > MAX_SUBJECT {
            return Err(header_error("subject", "is too long"));
        }

        let text = self.body.text.filter(|t| !t.is_empty());
        let html = self.body.html.filter(|h| !h.is_empty());
        if text.is_none() && html.is_none() {
            return Err(ApiError::validation("body", "needs text and/or html"));
        }
        for (field, part) in [("body.text", &text), ("body.html", &html)] {
            if part.as_deref().is_some_and(|p| p.contains('\0')) {
                return Err(ApiError::invalid(
                    "INVALID_BODY",
                    Some(field.into()),
                    format!("{field} contains a NUL character"),
                ));
            }
        }

        let reply_to = self
            .reply_to
            .map(|r| parse_address("reply_to".into(), &r))
            .transpose()?;

        let mut headers = Vec::new();
        for (name, value) in self.headers.unwrap_or_default() {
            let field = format!("headers.{name}");
            let valid_name = !name.is_empty()
                && name.len() <= 76
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_name {
                return Err(header_error(
                    field,
                    "is not a valid header name (letters, digits, '-' and '_' only)",
                ));
            }
            let lower = name.to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("content-") {
                return Err(header_error(
                    field,
                    "cannot be set: it is a structural header the API writes itself",
                ));
            }
            let serde_json::Value::String(value) = value else {
                return Err(header_error(field, "must be a string"));
            };
            if has_control_chars_decoded(&value) {
                return Err(header_error(
                    field,
                    "contains a control character (CR, LF, NUL or other), raw or in an encoded-word",
                ));
            }
            if value.chars().count() > MAX_HEADER_VALUE {
                return Err(header_error(field, "is too long"));
            }
            headers.push((name, value));
        }
        if headers.len() > MAX_CUSTOM_HEADERS {
            return Err(header_error("headers", "has too many entries"));
        }

        let requested = self.attachments.unwrap_or_default();
        if requested.len() > MAX_ATTACHMENTS {
            return Err(attachment_error(
                "attachments".into(),
                "has too many entries",
            ));
        }
        let mut attachments = Vec::with_capacity(requested.len());
        for (i, a) in requested.into_iter().enumerate() {
            let content_type = a
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into());
            // Checked before trimming, as the document's maxLength and pattern are.
            if a.filename
                .as_deref()
                .is_some_and(|f| has_control_chars_decoded(f) || f.chars().count() > 255)
            {
                return Err(attachment_error(
                    format!("attachments[{i}].filename"),
                    "contains a control character or is too long",
                ));
            }
            let filename = a
                .filename
                .map(|f| f.trim().to_owned())
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| default_filename(i, &content_type));
            let content_base64 = normalise_base64(&a.content).ok_or_else(|| {
                attachment_error(format!("attachments[{i}].content"), "is not valid base64")
            })?;
            let ct_ok = !has_control_chars(&content_type)
                && lettre::message::header::ContentType::parse(&content_type).is_ok();
            if !ct_ok {
                return Err(attachment_error(
                    format!("attachments[{i}].content_type"),
                    "is not a valid MIME type",
                ));
            }
            attachments.push(OutgoingAttachment {
                filename,
                content_type,
                content_base64,
            });
        }

        Ok(OutgoingMessage {
            from,
            to,
            cc,
            bcc,
            reply_to,
            subject,
            text,
            html,
            headers,
            attachments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unnamed_attachment_gets_a_name_with_its_type_s_extension() {
        assert_eq!(default_filename(0, "application/pdf"), "attachment-1.pdf");
        assert_eq!(
            default_filename(2, "Text/Plain; charset=utf-8"),
            "attachment-3.txt"
        );
        assert_eq!(
            default_filename(1, "application/x-unknown"),
            "attachment-2.bin"
        );
    }
}
