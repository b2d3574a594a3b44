//! Validation of the `POST /mail/send` body into a message ([`SendRequest::validate`]). Every
//! rule fails with a 400 whose code is stable and whose `field` names the offending value
//! (`to[2]`, `attachments[0].content`). Nothing is stripped or repaired: a control character
//! anywhere a header is built from is an error, because silently "fixing" it is how header
//! injection slips through.

use std::collections::HashSet;

use shared::address::{AddressError, NamedAddress, has_control_chars, has_control_chars_decoded};
use shared::outgoing::{OutgoingAttachment, OutgoingMessage};

use super::attachments::{default_filename, normalise_base64};
use super::limits::{
    MAX_ATTACHMENTS, MAX_CUSTOM_HEADERS, MAX_HEADER_VALUE, MAX_SUBJECT, RESERVED_HEADERS,
};
use super::request::SendRequest;
use crate::error::ApiError;

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
    NamedAddress::parse(raw).map_err(|e| address_error(field, e))
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
