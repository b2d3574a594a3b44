//! What a mailbox is made of, parsed once: its address inside a given domain, its password and
//! its display name. Shared by signup and the `manage_users` endpoints so both refuse the same
//! things with the same codes.

use shared::address::{AddressError, EmailAddress, has_control_chars};
use sqlx::PgConnection;

use crate::error::{ApiError, ApiResult};

/// Shortest password accepted (the spec: "at least 8 characters").
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted; hashing cost grows with length, and nothing real is longer.
pub const MAX_PASSWORD_CHARS: usize = 256;
pub const MAX_NAME_CHARS: usize = 200;

/// A password that meets the rules; only its hash is ever stored.
pub struct Password(String);

impl Password {
    /// `INVALID_PASSWORD` naming `password` when too short, too long, or holding a control
    /// character (which no IMAP client could send in a LOGIN command).
    pub fn parse(raw: &str) -> ApiResult<Self> {
        let chars = raw.chars().count();
        let problem = if chars < MIN_PASSWORD_CHARS {
            Some(format!(
                "Password must be at least {MIN_PASSWORD_CHARS} characters"
            ))
        } else if chars > MAX_PASSWORD_CHARS {
            Some(format!(
                "Password must be at most {MAX_PASSWORD_CHARS} characters"
            ))
        } else if raw.chars().any(char::is_control) {
            Some("Password must not contain control characters".to_owned())
        } else {
            None
        };
        match problem {
            Some(msg) => Err(ApiError::invalid(
                "INVALID_PASSWORD",
                Some("password".to_owned()),
                msg,
            )),
            None => Ok(Self(raw.to_owned())),
        }
    }

    /// `{SHA512-CRYPT}` hash that Dovecot verifies. CPU-bound (5,000 rounds), so it runs on
    /// the blocking pool rather than an async worker thread.
    pub async fn hash(self) -> ApiResult<String> {
        tokio::task::spawn_blocking(move || shared::password::hash_password(&self.0))
            .await
            .map_err(|e| ApiError::Internal(e.into()))
    }
}

/// An address that must belong to `domain`: `INVALID_EMAIL` naming `email` otherwise.
pub fn address_in_domain(raw: &str, domain: &str) -> ApiResult<EmailAddress> {
    let email = EmailAddress::parse(raw.trim()).map_err(|e| {
        let why = match e {
            AddressError::TooLong => "is too long",
            _ => "is not a valid e-mail address",
        };
        ApiError::invalid(
            "INVALID_EMAIL",
            Some("email".to_owned()),
            format!("Email {why}"),
        )
    })?;
    if email.domain() != domain {
        return Err(ApiError::invalid(
            "INVALID_EMAIL",
            Some("email".to_owned()),
            format!("Email must end with @{domain}"),
        ));
    }
    Ok(email)
}

/// An optional display name: trimmed, at most 200 characters, no control characters (it may
/// end up in a header). Empty means none.
///
/// Checked before trimming, as the document's `maxLength` and `pattern` are.
pub fn display_name(raw: Option<&str>) -> ApiResult<Option<String>> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if raw.chars().count() > MAX_NAME_CHARS || has_control_chars(raw) {
        return Err(ApiError::validation(
            "name",
            format!("must be at most {MAX_NAME_CHARS} printable characters"),
        ));
    }
    let name = raw.trim();
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

/// Inserts a mailbox; `MAILBOX_EXISTS` (409) when the address is taken.
pub async fn insert_mailbox(
    conn: &mut PgConnection,
    domain_id: i64,
    email: &EmailAddress,
    name: Option<&str>,
    password_hash: &str,
    active: bool,
) -> ApiResult<i64> {
    sqlx::query_scalar(
        "insert into mailboxes (domain_id, local_part, email, name, password_hash, active)
         values ($1, $2, $3, $4, $5, $6) returning id",
    )
    .bind(domain_id)
    .bind(email.local_part())
    .bind(email.as_str())
    .bind(name)
    .bind(password_hash)
    .bind(active)
    .fetch_one(conn)
    .await
    .map_err(|e| {
        if constraint(&e) == Some("mailboxes_email_key") {
            ApiError::Conflict {
                code: "MAILBOX_EXISTS",
                message: format!("Mailbox {email} already exists"),
            }
        } else {
            e.into()
        }
    })
}

/// The name of the constraint a database error violated, if any.
pub fn constraint(e: &sqlx::Error) -> Option<&str> {
    e.as_database_error().and_then(|d| d.constraint())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        // Characters, not bytes: seven two-byte characters are still too short.
        assert!(Password::parse("ééééééé").is_err());
        assert!(Password::parse("good pass\nword").is_err());
        assert!(Password::parse(&"x".repeat(257)).is_err());
        let err = Password::parse("short").err().unwrap();
        assert_eq!(err.code(), "INVALID_PASSWORD");
    }

    #[test]
    fn addresses_must_be_in_the_domain() {
        assert_eq!(
            address_in_domain("Admin@Example.com", "example.com")
                .unwrap()
                .as_str(),
            "admin@example.com"
        );
        for bad in [
            "admin@other.com",
            "admin@sub.example.com",
            "admin",
            "a b@example.com",
        ] {
            let err = address_in_domain(bad, "example.com").err().unwrap();
            assert_eq!(err.code(), "INVALID_EMAIL", "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(
            display_name(Some("  Ann  ")).unwrap().as_deref(),
            Some("Ann")
        );
        assert_eq!(display_name(Some("   ")).unwrap(), None);
        assert!(display_name(Some("a\r\nBcc: x")).is_err());
    }
}
