//! Everything a client sends that ends up inside an IMAP command passes through here, so that no
//! input can end the command early or start another one: folder names become quoted modified
//! UTF-7, search terms become quoted strings (ASCII) or non-synchronising literals (anything
//! else), and CR, LF and NUL are refused before either.

use super::mutf7;

/// Longest folder name accepted; Dovecot's own limit is larger, this keeps commands small.
const MAX_FOLDER_CHARS: usize = 255;
/// Longest search term accepted, in characters (at most 2 KiB in a command).
const MAX_TERM_CHARS: usize = 512;

/// Why an argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("must not be empty")]
    Empty,
    #[error("is too long")]
    TooLong,
    #[error("must not contain control characters (CR, LF, NUL...)")]
    ControlCharacter,
}

/// A folder name as the client wrote it (UTF-8, `/` between levels), known to be safe to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderName {
    display: String,
    encoded: String,
    quoted: String,
}

impl FolderName {
    pub fn parse(name: &str) -> Result<Self, ArgError> {
        if name.is_empty() {
            return Err(ArgError::Empty);
        }
        if name.chars().count() > MAX_FOLDER_CHARS {
            return Err(ArgError::TooLong);
        }
        if name.chars().any(char::is_control) {
            return Err(ArgError::ControlCharacter);
        }
        // `INBOX` is case-insensitive in IMAP; one spelling keeps pooled sessions comparable.
        let display = if name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_owned()
        } else {
            name.to_owned()
        };
        let encoded = mutf7::encode(&display);
        let quoted = quote_ascii(&encoded);
        Ok(FolderName {
            display,
            encoded,
            quoted,
        })
    }

    /// A name the server listed (modified UTF-7), as the client should see it.
    pub fn from_server(encoded: &str) -> String {
        mutf7::decode(encoded).unwrap_or_else(|| encoded.to_owned())
    }

    pub fn inbox() -> Self {
        FolderName {
            display: "INBOX".into(),
            encoded: "INBOX".into(),
            quoted: "\"INBOX\"".into(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// Modified UTF-7, unquoted: for async-imap calls that quote their arguments themselves.
    pub fn encoded(&self) -> &str {
        &self.encoded
    }

    /// The IMAP argument: a quoted string of modified UTF-7.
    pub fn quoted(&self) -> &str {
        &self.quoted
    }
}

/// A search term, rendered as one IMAP `astring` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm {
    text: String,
    arg: String,
}

impl SearchTerm {
    pub fn parse(text: &str) -> Result<Self, ArgError> {
        if text.is_empty() {
            return Err(ArgError::Empty);
        }
        if text.chars().count() > MAX_TERM_CHARS {
            return Err(ArgError::TooLong);
        }
        if text.chars().any(char::is_control) {
            return Err(ArgError::ControlCharacter);
        }
        let arg = if text.is_ascii() {
            quote_ascii(text)
        } else {
            // Quoted strings are 7-bit in IMAP4rev1; 8-bit data travels as a literal. `{n+}` is
            // LITERAL+ (Dovecot announces it), so the command stays a single write. The length
            // is in bytes, so the server reads exactly these bytes as data, never as syntax.
            format!("{{{}+}}\r\n{}", text.len(), text)
        };
        Ok(SearchTerm {
            text: text.to_owned(),
            arg,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn arg(&self) -> &str {
        &self.arg
    }
}

/// A quoted string: `\` and `"` escaped. Callers guarantee no CR, LF or NUL.
fn quote_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_quoted_utf7() {
        assert_eq!(FolderName::parse("inbox").unwrap().quoted(), "\"INBOX\"");
        assert_eq!(
            FolderName::parse("Entwürfe").unwrap().quoted(),
            "\"Entw&APw-rfe\""
        );
        assert_eq!(
            FolderName::parse(r#"a"b\c"#).unwrap().quoted(),
            r#""a\"b\\c""#
        );
        assert_eq!(FolderName::parse("Ärger").unwrap().as_str(), "Ärger");
    }

    #[test]
    fn injection_is_refused() {
        for bad in ["INBOX\r\nA1 DELETE INBOX", "a\nb", "a\0b", "a\rb", "\t"] {
            assert_eq!(
                FolderName::parse(bad),
                Err(ArgError::ControlCharacter),
                "{bad:?}"
            );
            assert_eq!(
                SearchTerm::parse(bad),
                Err(ArgError::ControlCharacter),
                "{bad:?}"
            );
        }
        assert_eq!(FolderName::parse(""), Err(ArgError::Empty));
        assert_eq!(FolderName::parse(&"x".repeat(300)), Err(ArgError::TooLong));
    }

    #[test]
    fn search_terms() {
        assert_eq!(
            SearchTerm::parse(r#"say "hi""#).unwrap().arg(),
            r#""say \"hi\"""#
        );
        assert_eq!(SearchTerm::parse("grüße").unwrap().arg(), "{7+}\r\ngrüße");
    }
}
