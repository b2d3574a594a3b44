//! Parsed e-mail addresses and domain names. A value of these types is valid by construction:
//! the parsers are the only way to make one, and they refuse anything that could smuggle a line
//! break, an SMTP parameter or a header into a message.

use std::fmt;

/// Why an address or name was refused. The API turns these into 400s naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("contains a control character (CR, LF, NUL or other)")]
    ControlCharacter,
    #[error("is not a valid e-mail address")]
    Malformed,
    #[error("has an invalid domain")]
    BadDomain,
    #[error("is too long")]
    TooLong,
}

/// True for CR, LF, NUL and every other C0/C1 control character except horizontal tab.
pub fn has_control_chars(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\t')
}

/// [`has_control_chars`], or an RFC 2047 encoded-word (`=?charset?Q?...?=`, `=?charset?B?...?=`)
/// whose decoded bytes hold one. Such a word in a header is shown decoded by mail clients: a
/// subject `=?utf-8?q?Hi=0D=0ABcc:_x@y?=` would display as two header lines. Header text is
/// given to us as UTF-8 and we encode it ourselves, so a client never needs to send one that
/// decodes to a control character; it is refused like a raw one.
pub fn has_control_chars_decoded(s: &str) -> bool {
    has_control_chars(s) || encoded_words(s).any(|bytes| bytes.iter().any(|&b| is_control_byte(b)))
}

/// C0 controls but TAB, and DEL (the bytes an ASCII-compatible charset gives CR, LF, NUL...).
fn is_control_byte(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// The decoded text of each well-formed encoded-word in `s` (RFC 2047 §2: `=?` charset `?`
/// encoding `?` text `?=`, the charset optionally with `*language`). Malformed ones are plain
/// text to a reader, so they are skipped.
fn encoded_words(s: &str) -> impl Iterator<Item = Vec<u8>> + '_ {
    s.match_indices("=?").filter_map(move |(start, _)| {
        let rest = &s[start + 2..];
        let (charset, rest) = rest.split_once('?')?;
        if charset.is_empty() || charset.contains(|c: char| c.is_whitespace()) {
            return None;
        }
        let (encoding, rest) = rest.split_once('?')?;
        let end = rest.find("?=")?;
        let text = &rest[..end];
        if text.contains(|c: char| c.is_whitespace() || c == '?') {
            return None;
        }
        match encoding {
            "B" | "b" => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                    .ok()
            }
            "Q" | "q" => Some(decode_q(text)),
            _ => None,
        }
    })
}

/// RFC 2047 "Q": `_` is a space and `=XX` a byte; a broken `=` escape stays as it is.
fn decode_q(text: &str) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'_' => out.push(b' '),
            b'=' => match (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'='),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A lowercase DNS domain name: LDH labels of 1-63 characters, at least two labels, 253 in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        if has_control_chars(raw) {
            return Err(AddressError::ControlCharacter);
        }
        let d = raw.trim_end_matches('.').to_ascii_lowercase();
        if d.is_empty() || d.len() > 253 {
            return Err(AddressError::BadDomain);
        }
        let labels: Vec<&str> = d.split('.').collect();
        if labels.len() < 2 {
            return Err(AddressError::BadDomain);
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(AddressError::BadDomain);
            }
        }
        Ok(Self(d))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bare address `local@domain`, lowercased. Only dot-atom local parts are accepted (no quoted
/// strings, no comments): every real sender and mailbox fits, and nothing else can reach the
/// SMTP envelope.
///
/// Stored messages keep their addresses as text (`messages.payload`); reading one back parses
/// it again, so a value of this type is valid wherever it came from.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl TryFrom<String> for EmailAddress {
    type Error = AddressError;

    fn try_from(raw: String) -> Result<Self, AddressError> {
        EmailAddress::parse(&raw)
    }
}

impl From<EmailAddress> for String {
    fn from(a: EmailAddress) -> String {
        a.0
    }
}

const ATEXT_SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~";

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        if has_control_chars(raw) {
            return Err(AddressError::ControlCharacter);
        }
        if raw.len() > 254 {
            return Err(AddressError::TooLong);
        }
        let (local, domain) = raw.rsplit_once('@').ok_or(AddressError::Malformed)?;
        if local.is_empty() || local.len() > 64 {
            return Err(AddressError::Malformed);
        }
        let local_ok = local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(&b))
        });
        if !local_ok {
            return Err(AddressError::Malformed);
        }
        let domain = DomainName::parse(domain)?;
        Ok(Self(format!("{}@{}", local.to_ascii_lowercase(), domain)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map(|(l, _)| l).unwrap_or_default()
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An address with an optional display name, as written in `From`, `To` or `Reply-To`:
/// `addr@example.com` or `Display Name <addr@example.com>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NamedAddress {
    pub name: Option<String>,
    pub email: EmailAddress,
}

impl NamedAddress {
    pub fn parse(raw: &str) -> Result<NamedAddress, AddressError> {
        let (name, email) = Self::split(raw)?;
        Ok(NamedAddress { name, email })
    }

    fn split(raw: &str) -> Result<(Option<String>, EmailAddress), AddressError> {
        if has_control_chars_decoded(raw) {
            return Err(AddressError::ControlCharacter);
        }
        let raw = raw.trim();
        if let Some(open) = raw.rfind('<') {
            let inner = raw[open + 1..]
                .strip_suffix('>')
                .ok_or(AddressError::Malformed)?;
            let name = raw[..open].trim().trim_matches('"').trim();
            if name.contains(['<', '>', '"']) || name.len() > 256 {
                return Err(AddressError::Malformed);
            }
            let email = EmailAddress::parse(inner.trim())?;
            Ok(((!name.is_empty()).then(|| name.to_owned()), email))
        } else {
            Ok((None, EmailAddress::parse(raw)?))
        }
    }
}

/// Binding a parsed address or domain binds its text. (Reading one back goes through `parse`:
/// there is no `Decode`, so a value of these types never skips the rules.)
macro_rules! bind_as_text {
    ($t:ty) => {
        impl sqlx::Type<sqlx::Postgres> for $t {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }
    };
}

bind_as_text!(EmailAddress);
bind_as_text!(DomainName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_that_decode_to_controls_are_caught() {
        for bad in [
            "=?utf-8?q?Hi=0D=0ABcc:_x@y?=",
            "=?UTF-8?Q?a=0Ab?=",
            "before =?iso-8859-1?q?x=00y?= after",
            // "\r\nBcc: x@y"
            "=?utf-8?b?DQpCY2M6IHhAeQ==?=",
            "=?utf-8?B?DQpCY2M6IHhAeQ?=",
            "=?utf-8*en?q?=7F?=",
            "Name =?utf-8?q?=0a?= <a@b.test>",
        ] {
            assert!(has_control_chars_decoded(bad), "{bad}");
        }
        for fine in [
            "=?utf-8?q?Gr=C3=BC=C3=9Fe?=",
            "=?utf-8?b?R3LDvMOfZQ==?=",
            "=?utf-8?q?tab=09ok?=",
            "a =? b ?= c",
            "=?utf-8?x?=0A?=",
            "=?utf-8?q?=0?=",
            "=?utf-8?q?broken=ZZ?=",
            "plain subject = ? yes",
        ] {
            assert!(!has_control_chars_decoded(fine), "{fine}");
        }
        assert!(matches!(
            NamedAddress::parse("=?utf-8?q?x=0D=0ABcc:_y@z?= <a@b.test>"),
            Err(AddressError::ControlCharacter)
        ));
    }

    #[test]
    fn accepts_ordinary_addresses() {
        assert_eq!(
            EmailAddress::parse("Bob.Smith+tag@Example.COM")
                .unwrap()
                .as_str(),
            "bob.smith+tag@example.com"
        );
        assert_eq!(EmailAddress::parse("a@b.test").unwrap().domain(), "b.test");
    }

    #[test]
    fn refuses_injection_and_junk() {
        for bad in [
            "a@b.test\r\nRCPT TO:<x@y.test>",
            "a\n@b.test",
            "a\0@b.test",
            "a@b.test>",
            "<a@b.test>",
            "a b@b.test",
            "a@b",
            "@b.test",
            "a@",
            "a..b@c.test",
            "a@-b.test",
            "a@b_c.test",
            "\"quoted\"@b.test",
            "a@b.test SIZE=1",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn named_addresses() {
        let NamedAddress { name, email } =
            NamedAddress::parse("Jöhn Doe <john@example.com>").unwrap();
        assert_eq!(name.as_deref(), Some("Jöhn Doe"));
        assert_eq!(email.as_str(), "john@example.com");
        let name = NamedAddress::parse("\"Doe, John\" <john@example.com>")
            .unwrap()
            .name;
        assert_eq!(name.as_deref(), Some("Doe, John"));
        assert!(NamedAddress::parse("Evil\r\nBcc: x@y.test <john@example.com>").is_err());
        assert!(
            NamedAddress::parse("john@example.com")
                .unwrap()
                .name
                .is_none()
        );
    }
}
