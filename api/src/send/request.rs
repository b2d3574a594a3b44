//! The `POST /mail/send` body as it arrives, and its OpenAPI schema; `send::validate` turns it
//! into a message.
//!
//! Forgiving where clients are sloppy: `null` means "absent" for every optional field (Python's
//! `None` and JavaScript's `null` are how clients leave a field out), and an attachment without a
//! filename is named `attachment-N.<ext>`. Exact where typos would hurt: an unknown field is a
//! 400 naming it, so `"bc": [...]` never silently drops recipients.

use serde::Deserialize;

use super::limits::{MAX_CUSTOM_HEADERS, MAX_HEADER_VALUE, MAX_SUBJECT};

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
/// Exactly what [`super::attachments::normalise_base64`] decodes: groups of four, an optional short last group with
/// its unused bits zero, canonical padding or none, ASCII blanks anywhere.
const BASE64: &str = r"^([\t\n\f\r ]*[A-Za-z0-9+/][\t\n\f\r ]*[A-Za-z0-9+/][\t\n\f\r ]*[A-Za-z0-9+/][\t\n\f\r ]*[A-Za-z0-9+/])*[\t\n\f\r ]*([A-Za-z0-9+/][\t\n\f\r ]*[AQgw]([\t\n\f\r ]*=[\t\n\f\r ]*=)?|[A-Za-z0-9+/][\t\n\f\r ]*[A-Za-z0-9+/][\t\n\f\r ]*[AEIMQUYcgkosw048]([\t\n\f\r ]*=)?)?[\t\n\f\r ]*$";
/// A MIME type without parameters, in the tokens the `mime` parser takes.
const MIME_TYPE: &str =
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}$";
/// A custom header's name: [`super::limits::RESERVED_HEADERS`] and `Content-*` (any case) are left out.
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
