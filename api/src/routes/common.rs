//! What the resources' handlers share: the error body every failure renders, the page parameters
//! of every list, the statuses several answers report, the parsers of path values (a domain),
//! and in [`input`] what a mailbox is made of. Each type here both produces the JSON clients see
//! and describes it in the OpenAPI document, so the two cannot disagree.
//!
//! Kept apart from `routes::docs` and from every handler on purpose: handlers and the document's
//! root import from here, this imports none of them, and no handler imports another.

use serde::Deserialize;
use shared::address::DomainName;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

/// Every failure's body; defined with the one place that renders it.
pub use crate::error::ErrorBody;

pub mod event;
pub mod input;

/// `limit` when the request has none.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// The largest page any list returns; a larger `limit` is capped to it (the spec's "max 200").
pub const MAX_PAGE_SIZE: i64 = 200;

/// `limit` and `offset` of every list. Both arrive as text and are parsed here, so a value that is
/// not a whole number is a 400 naming the parameter (the query extractor's own message names
/// nothing).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Items per page, 1 or more (default 50). The maximum page size is 200: a larger value is
    /// capped to 200, not refused.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    /// Items to skip, 0 or more (default 0).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub offset: Option<String>,
}

impl Page {
    /// `(limit, offset)`: `limit` defaults to 50 and is capped at 200; `offset` defaults to 0.
    pub fn resolve(&self) -> ApiResult<(i64, i64)> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => match whole_number(raw, "limit")? {
                Whole::Zero => {
                    return Err(ApiError::validation("limit", "must be 1 or more"));
                }
                Whole::Positive(n) => n.min(MAX_PAGE_SIZE),
            },
        };
        let offset = match self.offset.as_deref() {
            None => 0,
            Some(raw) => match whole_number(raw, "offset")? {
                Whole::Zero => 0,
                Whole::Positive(n) => n,
            },
        };
        Ok((limit, offset))
    }
}

enum Whole {
    Zero,
    Positive(i64),
}

/// A non-negative whole number in decimal (a leading `+` allowed, as JSON Schema integers may be
/// written). A negative number, a fraction or anything else is a 400 naming `param`.
fn whole_number(raw: &str, param: &str) -> ApiResult<Whole> {
    if let Some(rest) = raw.strip_prefix('-')
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ApiError::validation(param, "must not be negative"));
    }
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::validation(
            param,
            format!("must be a whole number, not {raw:?}"),
        ));
    }
    // The document's int64: a value past it is refused like any other out-of-range value.
    let value = digits
        .parse::<i64>()
        .map_err(|_| ApiError::validation(param, format!("must be at most {}", i64::MAX)))?;
    Ok(if value == 0 {
        Whole::Zero
    } else {
        Whole::Positive(value)
    })
}

/// The statuses answers report, defined once for both services.
pub use shared::status::{MessageStatus, RecipientStatus};

/// A domain name from the path; `VALIDATION_ERROR` naming `domain` when it cannot be one.
pub fn parse_domain(raw: &str) -> ApiResult<DomainName> {
    DomainName::parse(raw).map_err(|e| ApiError::validation("domain", e.to_string()))
}

/// Regular expressions for the document's `pattern`s, each the exact rule of a parser here, in
/// the dialect both JSON Schema (ECMA 262) and Python's `re` read the same way.
pub mod patterns {
    /// No control character except tab: `shared::address::has_control_chars` is false.
    pub const NO_CONTROL: &str = r"^[^\x00-\x08\x0A-\x1F\x7F-\x9F]*$";
    /// No control character at all, tab included (`char::is_control`): folder names, search terms.
    pub const NO_CONTROL_OR_TAB: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";
    /// [`NO_CONTROL`], with at least one character that `str::trim` keeps: a name that is not
    /// blank. The blanks listed are Unicode's White_Space characters that are not controls.
    pub const NAME: &str = r"^[^\x00-\x08\x0A-\x1F\x7F-\x9F]*[^\x00-\x1F\x7F-\x9F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x08\x0A-\x1F\x7F-\x9F]*$";
    /// A search term with at least two characters that are not blank (so 2 or more remain once
    /// trimmed) and no control character.
    pub const SEARCH_TERM: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\x00-\x1F\x7F-\x9F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]*[^\x00-\x1F\x7F-\x9F \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]*$";
    /// `imap::search::Fields::parse`: a comma-separated list of subject, from, body.
    pub const SEARCH_FIELDS: &str = r"^ *([Ss][Uu][Bb][Jj][Ee][Cc][Tt]|[Ff][Rr][Oo][Mm]|[Bb][Oo][Dd][Yy]) *(, *([Ss][Uu][Bb][Jj][Ee][Cc][Tt]|[Ff][Rr][Oo][Mm]|[Bb][Oo][Dd][Yy]) *)*$";
    /// `shared::address::DomainName::parse`: LDH labels of 1-63 characters, at least two, any
    /// letter case (the name is lowercased); with a `maxLength` of 253. (The parser also takes
    /// one final dot, which the document leaves out.)
    pub const DOMAIN: &str = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$";
}

/// A string schema: the pieces a field's `#[schema(...)]` cannot take from a constant.
#[derive(Default)]
pub struct Text {
    pub min: Option<usize>,
    pub max: Option<usize>,
    pub pattern: Option<&'static str>,
    pub format: Option<utoipa::openapi::KnownFormat>,
    pub description: Option<&'static str>,
}

impl Text {
    pub fn build(self) -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .min_length(self.min)
            .max_length(self.max)
            .pattern(self.pattern)
            .format(self.format.map(SchemaFormat::KnownFormat))
            .description(self.description)
            .into()
    }
}

/// A named string schema for fields and parameters: `text!(Name, "doc", Text { ... })`.
macro_rules! text {
    ($name:ident, $doc:literal, $text:expr) => {
        #[doc = $doc]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
                $crate::routes::common::Text {
                    description: Some($doc),
                    ..$text
                }
                .build()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use text;

text!(
    Domain,
    "A domain name: letters, digits and `-` in dot-separated labels of at most 63 characters.",
    Text {
        max: Some(253),
        pattern: Some(patterns::DOMAIN),
        ..Text::default()
    }
);
text!(
    NewPassword,
    "8 to 256 characters, no control characters.",
    Text {
        min: Some(8),
        max: Some(256),
        pattern: Some(patterns::NO_CONTROL_OR_TAB),
        ..Text::default()
    }
);
text!(
    DisplayName,
    "At most 200 characters, no control characters; blank means none.",
    Text {
        max: Some(200),
        pattern: Some(patterns::NO_CONTROL),
        ..Text::default()
    }
);
text!(
    Folder,
    "A folder name, `/` between levels: 1 to 255 characters, no control characters.",
    Text {
        min: Some(1),
        max: Some(255),
        pattern: Some(patterns::NO_CONTROL_OR_TAB),
        ..Text::default()
    }
);

/// Building blocks for rules between fields, which a struct's derived schema cannot state; a
/// request type lists its rules next to the code that enforces them, and `docs::spec` adds them
/// to its schema as `allOf` members.
pub mod rule {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type};
    use utoipa::openapi::{RefOr, Schema};

    /// An object whose listed properties, when present, match; `required` must be present.
    pub fn object<const P: usize, const R: usize>(
        properties: [(&str, RefOr<Schema>); P],
        required: [&str; R],
    ) -> RefOr<Schema> {
        let mut b = ObjectBuilder::new().schema_type(SchemaType::AnyValue);
        for (name, schema) in properties {
            b = b.property(name, schema);
        }
        for name in required {
            b = b.required(name);
        }
        RefOr::T(Schema::Object(b.build()))
    }

    /// Exactly this string.
    pub fn one_value(value: &str) -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .enum_values(Some([value]))
                .build(),
        ))
    }

    /// `null` (with `object`: the property is absent or null).
    pub fn null() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::Null))
                .build(),
        ))
    }

    /// A string (not null).
    pub fn non_null() -> RefOr<Schema> {
        of_type(Type::String)
    }

    /// A string of at least one character.
    pub fn non_empty() -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .min_length(Some(1))
                .build(),
        ))
    }

    /// Any value of this type (not null).
    pub fn of_type(t: Type) -> RefOr<Schema> {
        RefOr::T(Schema::Object(
            ObjectBuilder::new().schema_type(SchemaType::new(t)).build(),
        ))
    }

    pub fn one_of(items: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        let mut b = OneOfBuilder::new();
        for item in items {
            b = b.item(item);
        }
        RefOr::T(Schema::OneOf(b.build()))
    }

    pub fn any_of(items: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        let mut b = AnyOfBuilder::new();
        for item in items {
            b = b.item(item);
        }
        RefOr::T(Schema::AnyOf(b.build()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(limit: Option<&str>, offset: Option<&str>) -> ApiResult<(i64, i64)> {
        Page {
            limit: limit.map(str::to_owned),
            offset: offset.map(str::to_owned),
        }
        .resolve()
    }

    fn field(r: ApiResult<(i64, i64)>) -> Option<String> {
        match r {
            Err(ApiError::Invalid { field, .. }) => field,
            _ => None,
        }
    }

    #[test]
    fn pages_default_and_cap() {
        assert_eq!(page(None, None).unwrap(), (50, 0));
        assert_eq!(page(Some("200"), Some("0")).unwrap(), (200, 0));
        assert_eq!(page(Some("500"), Some("10")).unwrap(), (200, 10));
        assert_eq!(page(Some("+7"), None).unwrap(), (7, 0));
        assert_eq!(
            page(Some("9223372036854775807"), Some("9223372036854775807")).unwrap(),
            (200, i64::MAX)
        );
    }

    #[test]
    fn bad_pages_name_the_parameter() {
        for (limit, offset, name) in [
            (Some("0"), None, "limit"),
            (Some("-1"), None, "limit"),
            (Some("abc"), None, "limit"),
            (Some("1.5"), None, "limit"),
            (Some(""), None, "limit"),
            (None, Some("-1"), "offset"),
            (None, Some("x"), "offset"),
            (None, Some("-"), "offset"),
            (Some("9223372036854775808"), None, "limit"),
            (None, Some("9223372036854775808"), "offset"),
        ] {
            assert_eq!(
                field(page(limit, offset)).as_deref(),
                Some(name),
                "{limit:?} {offset:?}"
            );
        }
    }
}
