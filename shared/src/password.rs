//! Password hashes in the scheme Dovecot verifies: `{SHA512-CRYPT}$6$<salt>$<hash>`.

use sha_crypt::{Sha512Params, sha512_check, sha512_simple};

const SCHEME: &str = "{SHA512-CRYPT}";

/// Hashes a mailbox password for the `mailboxes.password_hash` column.
pub fn hash_password(password: &str) -> String {
    // 5,000 rounds is the SHA-crypt default and what `openssl passwd -6` uses.
    let params = Sha512Params::new(5_000).expect("5000 rounds is within SHA-crypt's range");
    let hash = sha512_simple(password, &params).expect("hashing with valid params cannot fail");
    format!("{SCHEME}{hash}")
}

/// Checks a password against a stored hash (used by tests and by future login endpoints).
pub fn verify_password(password: &str, stored: &str) -> bool {
    stored
        .strip_prefix(SCHEME)
        .is_some_and(|h| sha512_check(password, h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("{SHA512-CRYPT}$6$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
    }
}
