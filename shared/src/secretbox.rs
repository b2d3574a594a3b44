//! Secrets at rest: AES-256-GCM under a key derived from `MAILAPI_SECRET_KEY`, stored as
//! `nonce || ciphertext || tag`. Used for webhook signing secrets, which the worker must read
//! back (so they cannot be hashed like API tokens). A database dump without the key holds no
//! usable secret.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The shortest `MAILAPI_SECRET_KEY` accepted (the local stack writes 32 hex characters).
pub const MIN_KEY_CHARS: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretBoxError {
    #[error("MAILAPI_SECRET_KEY must be at least {MIN_KEY_CHARS} characters")]
    KeyTooShort,
    #[error(
        "a stored secret does not open with this MAILAPI_SECRET_KEY (changed, or the value is damaged)"
    )]
    CannotOpen,
    #[error("the secret could not be sealed")]
    CannotSeal,
}

pub struct SecretBox {
    key: LessSafeKey,
}

impl SecretBox {
    /// The box for `secret`: its key is SHA-256 of a fixed label and the secret, so the same
    /// setting opens on every process.
    pub fn new(secret: &SecretString) -> Result<Self, SecretBoxError> {
        let raw = secret.expose_secret();
        if raw.chars().count() < MIN_KEY_CHARS {
            return Err(SecretBoxError::KeyTooShort);
        }
        let digest = Sha256::new()
            .chain_update(b"mailapi.secretbox.v1:")
            .chain_update(raw.as_bytes())
            .finalize();
        let key =
            UnboundKey::new(&AES_256_GCM, &digest).map_err(|_| SecretBoxError::KeyTooShort)?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// `plaintext` sealed under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let mut out = nonce.to_vec();
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
            .map_err(|_| SecretBoxError::CannotSeal)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The plaintext of what [`SecretBox::seal`] made with the same key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        if sealed.len() < NONCE_LEN {
            return Err(SecretBoxError::CannotOpen);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretBoxError::CannotOpen)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .map_err(|_| SecretBoxError::CannotOpen)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn what_is_sealed_opens_with_the_same_key_only() {
        let a = SecretBox::new(&key("0123456789abcdef0123456789abcdef")).unwrap();
        let b = SecretBox::new(&key("fedcba9876543210fedcba9876543210")).unwrap();
        let sealed = a.seal(b"whsec_abc").unwrap();
        assert_ne!(&sealed[NONCE_LEN..], b"whsec_abc".as_slice());
        assert_eq!(a.open(&sealed).unwrap(), b"whsec_abc");
        assert_eq!(b.open(&sealed), Err(SecretBoxError::CannotOpen));
        // A fresh nonce each time: the same secret never looks the same twice.
        assert_ne!(a.seal(b"x").unwrap(), a.seal(b"x").unwrap());
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(a.open(&damaged), Err(SecretBoxError::CannotOpen));
        assert_eq!(a.open(&sealed[..5]), Err(SecretBoxError::CannotOpen));
    }

    #[test]
    fn a_short_key_is_refused() {
        assert_eq!(
            SecretBox::new(&key("too short")).err(),
            Some(SecretBoxError::KeyTooShort)
        );
    }
}
